/**
 * Reads `wrangler.toml` with wrangler's own reader, so local tooling sees exactly the configuration
 * that `wrangler dev` and `wrangler deploy` see (one source of truth, no second TOML parser).
 */

/** The Cron Trigger expressions of `[triggers] crons`, in file order. */
export async function readCrons(configPath = "wrangler.toml"): Promise<string[]> {
  // Loaded lazily: wrangler's bundle takes about two seconds to import.
  const { unstable_readConfig } = await import("wrangler");
  return [...(unstable_readConfig({ config: configPath }).triggers.crons ?? [])];
}

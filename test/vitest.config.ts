import { fileURLToPath } from "node:url";
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { buildAssets } from "../scripts/build-assets.ts";

// `npm run test:clock`: this process keeps the real clock; everything it starts runs shifted.
if (process.env.CLOCK_SHIFT_PRELOAD) process.env.LD_PRELOAD = process.env.CLOCK_SHIFT_PRELOAD;

// wrangler.toml's [assets] folder must exist before the Workers plugin reads the config (cheap, idempotent).
await buildAssets();

/**
 * Three projects: `unit` (pure domain code in Node, fakes behind interfaces), `tooling` (Node
 * scripts against the real local servers) and `integration` (the Worker inside workerd against the
 * real servers). The global setup brings the local stack up once and provides the bindings.
 */
export default defineConfig({
  root: fileURLToPath(new URL("..", import.meta.url)),
  test: {
    globalSetup: ["./test/setup/global.ts"],
    hookTimeout: 120_000,
    // Request logs are JSON lines on stdout; show them only for failing tests.
    silent: "passed-only",
    projects: [
      { extends: true, test: { name: "unit", include: ["test/unit/**/*.test.ts"], environment: "node" } },
      {
        extends: true,
        test: { name: "tooling", include: ["test/tooling/**/*.test.ts"], environment: "node", testTimeout: 240_000 },
      },
      {
        extends: true,
        plugins: [
          cloudflareTest(async ({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            // The inbound drainer's alarm would otherwise poll every second in the background; tests
            // drive it with runDurableObjectAlarm instead.
            // Webhook tests deliver to the local receiver over http and exercise 1 s timeouts.
            miniflare: {
              // A shifted clock behind wrangler.toml's compatibility date, unless this process kept
              // the real one (`npm run test:clock`'s default): then Miniflare takes the configured date.
              ...(process.env.TEST_COMPATIBILITY_DATE && !process.env.CLOCK_SHIFT_PRELOAD
                ? { compatibilityDate: process.env.TEST_COMPATIBILITY_DATE }
                : {}),
              bindings: {
                ...inject<Record<string, string>>("bindings"),
                ENVIRONMENT: "test",
                EVENTS_INBOUND_POLL_MS: "3600000",
                WEBHOOK_ALLOW_LOCAL_HTTP: "true",
                WEBHOOK_TIMEOUT_MS: "1000",
                // Retries and cooldowns far in the future: tests move time with timeTravel(), so no
                // alarm fires behind their back.
                WEBHOOK_BACKOFF_BASE_MS: "60000",
                // The usage aggregator folds when a test runs its alarm, never behind a test's back
                // (a fold of every organization's rows, racing another test's fault injection).
                USAGE_FOLD_INTERVAL_MS: "3600000",
                RECEIVER_URL: inject<string>("receiverUrl"),
                // test/integration/platform/fuzz.test.ts: `npm run chaos` asks for more cases.
                FUZZ_RUNS: process.env.FUZZ_RUNS ?? "",
                FUZZ_SEED: process.env.FUZZ_SEED ?? "",
              },
            },
          })),
        ],
        test: { name: "integration", include: ["test/integration/**/*.test.ts"], testTimeout: 30_000 },
      },
    ],
  },
});

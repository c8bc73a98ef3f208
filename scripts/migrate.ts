import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { closePgProxy, withPg } from "./lib/pg.ts";
import { readDevVars } from "./lib/dev-vars.ts";

/**
 * Forward-only migration runner for `migrations/NNNN_name.sql`. Runs from Node (never from the
 * Worker): one transaction per file, a ledger with checksums (an edited, already-applied file is
 * an error, not a silent skip), and a session advisory lock so concurrent runners serialise.
 */

/** A migration file. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

/** Outcome of {@link migrate}. */
export interface MigrateResult {
  applied: string[];
  alreadyApplied: string[];
}

const FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/;
// Any constant works; it only has to be the same for every runner of this project.
const LOCK_KEY = 7_245_113_001;

/** Reads and orders the migration files of a directory. */
export async function loadMigrations(dir: string): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".sql")).sort();
  const out: Migration[] = [];
  for (const file of files) {
    const m = FILE.exec(file);
    if (!m) throw new Error(`migration ${file} must be named NNNN_name.sql`);
    const sql = await readFile(join(dir, file), "utf8");
    const version = Number(m[1]);
    if (out.some((x) => x.version === version)) throw new Error(`duplicate migration version ${m[1]}`);
    out.push({ version, name: m[2]!, sql, checksum: createHash("sha256").update(sql).digest("hex") });
  }
  return out;
}

/** Applies pending migrations to `databaseUrl`. */
export async function migrate(
  databaseUrl: string,
  dir = "migrations",
  log: (m: string) => void = () => {},
): Promise<MigrateResult> {
  const migrations = await loadMigrations(dir);
  return withPg(databaseUrl, async (db) => {
    await db.query("select pg_advisory_lock($1)", [LOCK_KEY]);
    try {
      await db.query(`create table if not exists schema_migrations (
        version integer primary key,
        name text not null,
        checksum text not null,
        applied_at timestamptz not null default now())`);
      const { rows } = await db.query<{ version: number; name: string; checksum: string }>(
        "select version, name, checksum from schema_migrations",
      );
      const done = new Map(rows.map((r) => [r.version, r]));
      const result: MigrateResult = { applied: [], alreadyApplied: [] };
      for (const m of migrations) {
        const label = `${String(m.version).padStart(4, "0")}_${m.name}`;
        const prior = done.get(m.version);
        if (prior) {
          if (prior.checksum !== m.checksum)
            throw new Error(`migration ${label} was edited after it was applied (checksum mismatch)`);
          result.alreadyApplied.push(label);
          continue;
        }
        try {
          await db.query("begin");
          await db.query(m.sql);
          await db.query("insert into schema_migrations (version, name, checksum) values ($1, $2, $3)", [
            m.version,
            m.name,
            m.checksum,
          ]);
          await db.query("commit");
        } catch (err) {
          await db.query("rollback").catch(() => undefined);
          throw new Error(`migration ${label} failed: ${(err as Error).message}`, { cause: err });
        }
        log(`applied ${label}`);
        result.applied.push(label);
      }
      return result;
    } finally {
      await db.query("select pg_advisory_unlock($1)", [LOCK_KEY]).catch(() => undefined);
    }
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const url = process.env.DATABASE_URL ?? (await readDevVars()).DATABASE_URL;
  if (!url) {
    console.error("DATABASE_URL is not set (and no .dev.vars): export it or run `npm run dev` once");
    process.exit(1);
  }
  try {
    const r = await migrate(url, "migrations", console.log);
    console.log(`migrations: ${r.applied.length} applied, ${r.alreadyApplied.length} already applied`);
  } finally {
    await closePgProxy();
  }
}

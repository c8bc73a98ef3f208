import { randomBytes } from "node:crypto";
import { mkdtemp, writeFile, cp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, inject, it } from "vitest";
import { closePgProxy, createDatabase, databaseUrl, dropDatabase, withPg } from "../../scripts/lib/pg.ts";
import { loadMigrations, migrate } from "../../scripts/migrate.ts";

const serverUrl = inject("bindings").DATABASE_URL!;
const created: string[] = [];

async function freshDb(): Promise<string> {
  const name = `cm_mig_${randomBytes(5).toString("hex")}`;
  await createDatabase(serverUrl, name);
  created.push(name);
  return databaseUrl(serverUrl, name);
}

afterAll(async () => {
  for (const name of created) await dropDatabase(serverUrl, name);
  await closePgProxy();
});

describe("migration runner", () => {
  it("applies every migration once, then nothing on a second run", async () => {
    const url = await freshDb();
    const files = await loadMigrations("migrations");
    const first = await migrate(url);
    expect(first.applied).toHaveLength(files.length);
    const second = await migrate(url);
    expect(second.applied).toEqual([]);
    expect(second.alreadyApplied).toEqual(first.applied);
  });

  it("is safe when several runners start at once", async () => {
    const url = await freshDb();
    const results = await Promise.all([migrate(url), migrate(url), migrate(url)]);
    const appliedTotal = results.reduce((n, r) => n + r.applied.length, 0);
    expect(appliedTotal).toBe((await loadMigrations("migrations")).length);
    const rows = await withPg(url, (c) =>
      c.query("select version, count(*)::int as n from schema_migrations group by version"),
    );
    expect(rows.rows.every((r: { n: number }) => r.n === 1)).toBe(true);
  });

  it("refuses an applied migration whose file changed", async () => {
    const url = await freshDb();
    const dir = await mkdtemp(join(tmpdir(), "cm-mig-"));
    await writeFile(join(dir, "0001_a.sql"), "create table a (id int);");
    await migrate(url, dir);
    await writeFile(join(dir, "0001_a.sql"), "create table a (id bigint);");
    await expect(migrate(url, dir)).rejects.toThrow(/edited after it was applied/);
  });

  it("rolls a failing file back entirely and keeps earlier ones", async () => {
    const url = await freshDb();
    const dir = await mkdtemp(join(tmpdir(), "cm-mig-"));
    await cp("migrations", dir, { recursive: true });
    await writeFile(join(dir, "9998_ok.sql"), "create table ok_t (id int);");
    await writeFile(join(dir, "9999_bad.sql"), "create table half_t (id int); select * from no_such_table;");
    await expect(migrate(url, dir)).rejects.toThrow(/9999_bad failed/);
    const tables = await withPg(url, (c) =>
      c.query("select tablename from pg_tables where tablename in ('ok_t','half_t')"),
    );
    expect(tables.rows.map((r: { tablename: string }) => r.tablename)).toEqual(["ok_t"]);
  });

  it("rejects badly named files", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cm-mig-"));
    await writeFile(join(dir, "init.sql"), "select 1;");
    await expect(loadMigrations(dir)).rejects.toThrow(/NNNN_name.sql/);
  });
});

/**
 * Schema versions for a Durable Object's SQLite: an ordered list of migrations, the number applied
 * kept in the object's own `_schema` table (never `PRAGMA user_version`, which Durable Objects
 * reserve). Run it inside `blockConcurrencyWhile` in the constructor: it is synchronous, and a
 * migration either applies whole (one `transactionSync`) or not at all.
 */

/** The part of `ctx.storage` a migration run needs (structural, so domain code stays Workers-free). */
export interface SqliteStorage {
  sql: { exec(query: string, ...bindings: unknown[]): { toArray(): Record<string, unknown>[] } };
  transactionSync<T>(fn: () => T): T;
}

/**
 * Applies the migrations not applied yet, in order.
 * @param migrations - SQL scripts; append only, never edit one that shipped
 * @returns the schema version now in place
 */
export function migrateSqlite(storage: SqliteStorage, migrations: readonly string[]): number {
  storage.sql.exec("create table if not exists _schema (version integer not null)");
  const row = storage.sql.exec("select version from _schema").toArray()[0];
  let version = row ? Number(row.version) : 0;
  if (!row) storage.sql.exec("insert into _schema (version) values (0)");
  for (; version < migrations.length; version++) {
    const next = version + 1;
    storage.transactionSync(() => {
      storage.sql.exec(migrations[version]!);
      storage.sql.exec("update _schema set version = ?", next);
    });
  }
  return version;
}

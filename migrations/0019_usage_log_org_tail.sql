-- The log's tail of one organization (every read, every reconciliation adds it) as an index range:
-- (organization_id, txid >= the watermark's xmin). Through the primary key alone a tail read visits
-- every log row the organization has within the dedup horizon, so reads grew with the organization's
-- history instead of with what is not yet aggregated.
create index usage_log_org_txid on usage_log (organization_id, txid);
-- The planner cannot know the watermark (a scalar subquery) and guesses a third of the
-- organization's rows for the tail; for a large organization that buys a parallel plan whose workers
-- take longer to start (~30 ms) than the index range takes to read. The log is read by such ranges
-- and written by appends only: never in parallel.
alter table usage_log set (parallel_workers = 0);
-- For the same reason the planner's cost of a read of a large organization crosses the JIT
-- thresholds, and compiling the plan took ~2 s for a query that runs in milliseconds (measured at
-- 10 M events). This database serves short reads and bounded folds: no JIT for its sessions.
do $$ begin execute format('alter database %I set jit = off', current_database()); end $$;

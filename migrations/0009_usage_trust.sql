-- Usage trust pass: reconciliation of the organization objects and bounded, index-backed retention.

-- Reconciliation reads an organization's unsettled tail by arrival time. The (organization,
-- occurred_at) index it replaces is a prefix of the primary key, so the event log keeps two indexes.
drop index usage_events_org_time_idx;
create index usage_events_org_received_idx on usage_events (organization_id, received_at);

-- Retention purges by time, in bounded batches that an index serves.
create index usage_event_ids_received_idx on usage_event_ids (received_at);
create index usage_agg_minute_time_idx on usage_agg_minute (bucket);
-- Whole months of raw events are dropped as partitions; only the default partition is purged by rows.
create index usage_events_default_time_idx on usage_events_default (occurred_at);

-- Usage ingestion at the Postgres limit: one append-only, deduplicating event log written with one
-- statement per batch; aggregates are built from it asynchronously past a watermark, and every read
-- adds the log's tail beyond the watermark, so totals are exact at read time.

-- The log: one row per (organization, event id) for the whole dedup horizon. `txid` is the writing
-- transaction (pg_current_xact_id): with the snapshot the aggregator folded in, it says exactly
-- whether a row is in the aggregates — a late commit is never skipped.
create table usage_log (
  organization_id  text not null,
  event_id         text not null,
  event_type       text not null,
  user_id          text,
  resource_id      text,
  resource_type    text,
  quantity         double precision not null,
  metadata         jsonb not null default '{}'::jsonb,
  occurred_at      timestamptz not null,
  received_at      timestamptz not null default now(),
  txid             bigint not null default (pg_current_xact_id()::text::bigint),
  primary key (organization_id, event_id)
);
-- Appends arrive in txid order, so a BRIN index finds the tail at almost no cost per insert.
create index usage_log_txid_brin on usage_log using brin (txid) with (pages_per_range = 16);
-- Retention of dedup keys by arrival (bounded batches).
create index usage_log_received_brin on usage_log using brin (received_at) with (pages_per_range = 32);

-- The aggregator's position, as a snapshot: the log rows of transactions below `snap_xmin`, and of
-- those in [snap_xmin, snap_xmax) not listed in `snap_xip`, are in the aggregates (and in the
-- partitioned raw table); every other row is the tail every read adds. A snapshot, not a single txid: a transaction still running
-- when the aggregator passed is simply listed, so one long transaction never holds the others back.
-- `exact_since`: the 15-minute and per-user aggregates below are complete from this instant (they
-- were built from the raw events still kept when this migration ran).
create table usage_watermark (
  id           integer primary key default 1 check (id = 1),
  snap_xmin    bigint not null,
  snap_xmax    bigint not null,
  snap_xip     bigint[] not null default '{}',
  exact_since  timestamptz not null
);

-- Exact 15-minute aggregates: every time zone's offset is a multiple of 15 minutes, so days and
-- months in any zone (Asia/Kolkata, Asia/Kathmandu …) come out whole, over any range.
create table usage_agg_quarter (
  organization_id text not null, event_type text not null, resource_type text not null default '',
  bucket timestamptz not null, quantity double precision not null, events bigint not null,
  primary key (organization_id, event_type, resource_type, bucket));
create index usage_agg_quarter_bucket_idx on usage_agg_quarter (organization_id, bucket);

-- Per-user daily sums, so a userId breakdown is exact beyond the raw-event retention.
create table usage_agg_user_day (
  organization_id text not null, event_type text not null, user_id text not null, bucket timestamptz not null,
  quantity double precision not null, events bigint not null,
  primary key (organization_id, event_type, user_id, bucket));
create index usage_agg_user_day_bucket_idx on usage_agg_user_day (organization_id, bucket);

-- Events per user and per document each month: the dashboard's top-N, exact (the aggregator keeps them).
create table usage_agg_top_month (
  organization_id text not null, month timestamptz not null, kind text not null check (kind in ('user', 'document')),
  member text not null, events bigint not null,
  primary key (organization_id, month, kind, member));
create index usage_agg_top_month_rank_idx on usage_agg_top_month (organization_id, month, kind, events desc);

-- What was recorded before the log: its dedup keys and payloads move in; they are aggregated already.
insert into usage_log (organization_id, event_id, event_type, user_id, resource_id, resource_type, quantity,
                       metadata, occurred_at, received_at, txid)
select e.organization_id, e.event_id, e.event_type, e.user_id, e.resource_id, e.resource_type, e.quantity,
       e.metadata, e.occurred_at, coalesce(k.received_at, e.received_at), 0
from usage_events e left join usage_event_ids k using (organization_id, event_id)
on conflict do nothing;
insert into usage_agg_quarter (organization_id, event_type, resource_type, bucket, quantity, events)
select organization_id, event_type, coalesce(resource_type, ''),
       date_bin('15 minutes', occurred_at, timestamptz '2000-01-01 00:00:00+00'), sum(quantity), count(*)
from usage_events group by 1, 2, 3, 4;
insert into usage_agg_user_day (organization_id, event_type, user_id, bucket, quantity, events)
select organization_id, event_type, user_id, date_trunc('day', occurred_at, 'UTC'), sum(quantity), count(*)
from usage_events where user_id is not null group by 1, 2, 3, 4;
insert into usage_agg_top_month (organization_id, month, kind, member, events)
select organization_id, date_trunc('month', occurred_at, 'UTC'), 'user', user_id, count(*)
from usage_events where user_id is not null group by 1, 2, 3, 4
union all
select organization_id, date_trunc('month', occurred_at, 'UTC'), 'document', resource_id, count(*)
from usage_events where resource_id is not null and event_type like 'document.%' group by 1, 2, 3, 4;
insert into usage_watermark (snap_xmin, snap_xmax, exact_since)
select pg_current_xact_id()::text::bigint, pg_current_xact_id()::text::bigint,
       coalesce((select min(occurred_at) from usage_events), now());
drop table usage_event_ids;
-- The raw table is now written by the aggregator only, in bulk; reconciliation reads the log.
drop index usage_events_org_received_idx;

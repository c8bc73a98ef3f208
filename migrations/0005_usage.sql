-- Usage analytics: raw events (dedup key, late-event replays), exact aggregates per granularity,
-- distinct-user sets for unique counts, rollup bookkeeping, quota alerts, reports.

-- Raw events, partitioned by month of occurrence so time-range scans and retention touch few rows.
create table usage_events (
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
  primary key (organization_id, occurred_at, event_id)
) partition by range (occurred_at);
create index usage_events_org_time_idx on usage_events (organization_id, occurred_at);

-- Dedup is per organization and event id, independent of the (possibly wrong) timestamp.
create table usage_event_ids (
  organization_id  text not null,
  event_id         text not null,
  received_at      timestamptz not null default now(),
  primary key (organization_id, event_id)
);

-- Sums and counts per bucket, by event type and resource type (the pre-aggregated dimension).
-- minute and hour are maintained exactly at ingestion; day and month by the rollup job.
create table usage_agg_minute (
  organization_id text not null, event_type text not null, resource_type text not null default '',
  bucket timestamptz not null, quantity double precision not null, events bigint not null,
  primary key (organization_id, event_type, resource_type, bucket));
create table usage_agg_hour (like usage_agg_minute including all);
create table usage_agg_day (like usage_agg_minute including all);
create table usage_agg_month (like usage_agg_minute including all);
create index usage_agg_minute_bucket_idx on usage_agg_minute (organization_id, bucket);
create index usage_agg_hour_bucket_idx on usage_agg_hour (organization_id, bucket);
create index usage_agg_day_bucket_idx on usage_agg_day (organization_id, bucket);
create index usage_agg_month_bucket_idx on usage_agg_month (organization_id, bucket);

-- Distinct users per hour and per UTC day: unique counts are computed from these, never summed.
create table usage_user_hours (organization_id text not null, bucket timestamptz not null, user_id text not null,
  primary key (organization_id, bucket, user_id));
create table usage_user_days (organization_id text not null, bucket timestamptz not null, user_id text not null,
  primary key (organization_id, bucket, user_id));

-- Day/month buckets whose hours changed since they were last rolled up (late events included).
create table usage_dirty_buckets (
  organization_id text not null, event_type text not null, granularity text not null check (granularity in ('day', 'month')),
  bucket timestamptz not null, marked_at timestamptz not null default now(),
  primary key (organization_id, event_type, granularity, bucket));

-- Threshold alert subscriptions and the alerts fired (exactly once per subscription, threshold and period).
create table usage_alert_subscriptions (
  id text primary key, organization_id text not null, metric_type text not null,
  threshold double precision not null check (threshold > 0 and threshold <= 100),
  notification_channels text[] not null, notify_email text, created_by text, created_at timestamptz not null default now(),
  deleted_at timestamptz);
create index usage_alert_subscriptions_org_idx on usage_alert_subscriptions (organization_id) where deleted_at is null;
create table usage_alerts_fired (
  subscription_id text not null, period_start timestamptz not null, fired_at timestamptz not null default now(),
  used double precision not null, usage_limit double precision not null,
  primary key (subscription_id, period_start));
create table usage_quota_exceeded (
  organization_id text not null, metric_type text not null, period_start timestamptz not null, fired_at timestamptz not null default now(),
  primary key (organization_id, metric_type, period_start));

-- In-app notifications (the `in_app` channel).
create table notifications (
  id bigserial primary key, organization_id text not null, kind text not null, title text not null,
  body jsonb not null, created_at timestamptz not null default now(), read_at timestamptz);
create index notifications_org_idx on notifications (organization_id, created_at desc);

-- Billing reports: each generation is a new revision with an as-of watermark and the diff to the previous one.
create table usage_reports (
  id text primary key, organization_id text not null, period_start timestamptz not null, period_end timestamptz not null,
  revision integer not null, as_of timestamptz not null, events_counted bigint not null,
  summary jsonb not null, line_items jsonb not null, changes jsonb, generated_at timestamptz not null default now(),
  unique (organization_id, period_start, period_end, revision));

-- Monthly partitions: created ahead by the rollup cron (and here, around the migration date);
-- the default partition only catches what no month partition exists for.
create table usage_events_default partition of usage_events default;
create function usage_ensure_partitions(from_month date, months integer) returns integer language plpgsql as $$
declare
  m date;
  created integer := 0;
  name text;
begin
  for i in 0 .. months - 1 loop
    m := (date_trunc('month', from_month) + make_interval(months => i))::date;
    name := format('usage_events_%s', to_char(m, 'YYYY_MM'));
    if to_regclass(name) is null then
      execute format('create table %I partition of usage_events for values from (%L) to (%L)', name, m, (m + interval '1 month')::date);
      created := created + 1;
    end if;
  end loop;
  return created;
end $$;
select usage_ensure_partitions((date_trunc('month', now()) - interval '13 months')::date, 17);

-- Webhooks trust pass.

-- The endpoint object owns the breaker; it mirrors each transition here so the cron sweep can skip
-- endpoints whose deliveries are held (open until circuit_half_open_at).
alter table webhooks
  add column circuit_state text not null default 'closed' check (circuit_state in ('closed', 'open', 'half_open')),
  add column circuit_half_open_at timestamptz;

-- A replay (retryDelivery, recover) starts a fresh retry schedule while attempt_count keeps the
-- total: schedule_base is attempt_count when the current schedule started.
alter table webhook_deliveries add column schedule_base integer not null default 0;

-- Events that arrive while a webhook is disabled are recorded as 'held' (not handed to the endpoint
-- object), so recover can send them once it is re-enabled.
alter table webhook_deliveries drop constraint webhook_deliveries_status_check;
alter table webhook_deliveries add constraint webhook_deliveries_status_check
  check (status in ('pending', 'in_progress', 'succeeded', 'failed', 'cancelled', 'held'));
-- Matching now includes disabled webhooks.
drop index webhooks_events_idx;
create index webhooks_events_idx on webhooks using gin (events) where deleted_at is null;
-- recover reads failed and held deliveries by creation time.
drop index webhook_deliveries_failed_idx;
create index webhook_deliveries_recoverable_idx on webhook_deliveries (webhook_id, created_at)
  where status in ('failed', 'held');

-- webhook_stats is kept by triggers, so every path that changes a delivery or adds an attempt
-- (the endpoint objects, retry, recover, delete, a hand-written UPDATE) counts the same way:
--   total_deliveries       deliveries attempted at least once (attempt_count > 0)
--   successful_deliveries  deliveries whose current status is 'succeeded'
--   failed_deliveries      deliveries whose current status is 'failed'
--   attempts, total_response_time_ms, last_delivery_at/status   per attempt row
-- A delivery's contribution is a function of its row, so an UPDATE adds (new − old): a failed
-- delivery replayed to success moves from failed to succeeded, a resent success changes nothing.
-- Deliveries are inserted pending or held with no attempts (they contribute nothing until updated).
create function webhook_delivery_stats() returns trigger language plpgsql as $$
begin
  insert into webhook_stats as s (webhook_id, total_deliveries, successful_deliveries, failed_deliveries)
  select webhook_id, sum(attempted), sum(succeeded), sum(failed)
  from (
    select webhook_id, (attempt_count > 0)::int as attempted, (status = 'succeeded')::int as succeeded,
      (status = 'failed')::int as failed
    from new_deliveries
    union all
    select webhook_id, -(attempt_count > 0)::int, -(status = 'succeeded')::int, -(status = 'failed')::int
    from old_deliveries
  ) change
  group by webhook_id
  having sum(attempted) <> 0 or sum(succeeded) <> 0 or sum(failed) <> 0
  order by webhook_id -- one lock order for concurrent statements
  on conflict (webhook_id) do update set
    total_deliveries = s.total_deliveries + excluded.total_deliveries,
    successful_deliveries = s.successful_deliveries + excluded.successful_deliveries,
    failed_deliveries = s.failed_deliveries + excluded.failed_deliveries;
  return null;
end $$;

create trigger webhook_deliveries_stats after update on webhook_deliveries
  referencing old table as old_deliveries new table as new_deliveries
  for each statement execute function webhook_delivery_stats();

create function webhook_attempt_stats() returns trigger language plpgsql as $$
begin
  insert into webhook_stats as s (webhook_id, attempts, total_response_time_ms, last_delivery_at, last_delivery_status)
  select webhook_id, count(*), sum(response_time_ms), max(attempted_at),
    (array_agg(case when success then 'succeeded' else 'failed' end order by attempted_at desc, id desc))[1]
  from new_attempts
  group by webhook_id
  order by webhook_id
  on conflict (webhook_id) do update set
    attempts = s.attempts + excluded.attempts,
    total_response_time_ms = s.total_response_time_ms + excluded.total_response_time_ms,
    last_delivery_at = greatest(s.last_delivery_at, excluded.last_delivery_at),
    last_delivery_status = case when s.last_delivery_at is null or excluded.last_delivery_at >= s.last_delivery_at
      then excluded.last_delivery_status else s.last_delivery_status end;
  return null;
end $$;

create trigger webhook_attempts_stats after insert on webhook_attempts
  referencing new table as new_attempts
  for each statement execute function webhook_attempt_stats();

-- Recount what the old per-attempt counting inflated.
insert into webhook_stats as s (webhook_id, total_deliveries, successful_deliveries, failed_deliveries,
  attempts, total_response_time_ms, last_delivery_at, last_delivery_status)
select w.id, coalesce(d.attempted, 0), coalesce(d.succeeded, 0), coalesce(d.failed, 0),
  coalesce(a.n, 0), coalesce(a.ms, 0), a.last_at, a.last_status
from webhooks w
left join (
  select webhook_id, count(*) filter (where attempt_count > 0) as attempted,
    count(*) filter (where status = 'succeeded') as succeeded, count(*) filter (where status = 'failed') as failed
  from webhook_deliveries group by webhook_id
) d on d.webhook_id = w.id
left join (
  select webhook_id, count(*) as n, sum(response_time_ms) as ms, max(attempted_at) as last_at,
    (array_agg(case when success then 'succeeded' else 'failed' end order by attempted_at desc, id desc))[1] as last_status
  from webhook_attempts group by webhook_id
) a on a.webhook_id = w.id
where d.webhook_id is not null or a.webhook_id is not null
on conflict (webhook_id) do update set
  total_deliveries = excluded.total_deliveries,
  successful_deliveries = excluded.successful_deliveries,
  failed_deliveries = excluded.failed_deliveries,
  attempts = excluded.attempts,
  total_response_time_ms = excluded.total_response_time_ms,
  last_delivery_at = excluded.last_delivery_at,
  last_delivery_status = excluded.last_delivery_status;

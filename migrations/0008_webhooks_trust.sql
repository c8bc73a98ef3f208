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

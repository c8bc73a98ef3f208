-- Webhooks trust pass.

-- The endpoint object owns the breaker; it mirrors each transition here so the cron sweep can skip
-- endpoints whose deliveries are held (open until circuit_half_open_at).
alter table webhooks
  add column circuit_state text not null default 'closed' check (circuit_state in ('closed', 'open', 'half_open')),
  add column circuit_half_open_at timestamptz;

-- A replay (retryDelivery, recover) starts a fresh retry schedule while attempt_count keeps the
-- total: schedule_base is attempt_count when the current schedule started.
alter table webhook_deliveries add column schedule_base integer not null default 0;

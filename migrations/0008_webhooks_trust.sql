-- Webhooks trust pass.

-- The endpoint object owns the breaker; it mirrors each transition here so the cron sweep can skip
-- endpoints whose deliveries are held (open until circuit_half_open_at).
alter table webhooks
  add column circuit_state text not null default 'closed' check (circuit_state in ('closed', 'open', 'half_open')),
  add column circuit_half_open_at timestamptz;

-- Webhooks at scale: per-endpoint settings, gap-free sequence numbers, the attempt log (request and
-- response headers), idempotent batched attempt writes, retention indexes, auto-disable e-mail.

-- Per-endpoint overrides of the global WEBHOOK_* settings (absent key = the global default):
-- maxAttempts, backoffBaseMs, backoffCapMs, timeoutMs, circuitFailureThreshold,
-- circuitSuccessThreshold, circuitCooldownMs, rateLimitPerSecond, ordered, disableAfterFailingMs.
alter table webhooks
  add column settings jsonb not null default '{}'::jsonb,
  -- The last sequence number given to one of its deliveries (gap-free per endpoint).
  add column delivery_seq bigint not null default 0,
  -- Who hears about an auto-disable: notification_email, else the creator's e-mail from the token.
  add column created_by_email text,
  add column notification_email text;

alter table webhook_deliveries add column sequence bigint;
-- Number what exists, per endpoint in creation order, and move each counter past it.
update webhook_deliveries d set sequence = x.rn
from (select id, row_number() over (partition by webhook_id order by created_at, id) as rn from webhook_deliveries) x
where d.id = x.id;
update webhooks w set delivery_seq = x.n
from (select webhook_id, max(sequence) as n from webhook_deliveries group by webhook_id) x
where w.id = x.webhook_id;
create unique index webhook_deliveries_sequence_idx on webhook_deliveries (webhook_id, sequence);

-- Attempts are written in batches, possibly twice after a crash: (delivery, attempt number) is the
-- identity. Older duplicates (an attempt repeated before it was recorded) keep their first row.
delete from webhook_attempts a using webhook_attempts b
where a.delivery_id = b.delivery_id and a.attempt_number = b.attempt_number and a.id > b.id;
drop index webhook_attempts_delivery_idx;
create unique index webhook_attempts_delivery_idx on webhook_attempts (delivery_id, attempt_number);

-- The attempt log: what was sent (signature redacted) and what came back.
alter table webhook_attempts
  add column request_headers jsonb,
  add column response_headers jsonb;

-- Retention (WEBHOOK_RETENTION_DAYS): attempts by time, finished deliveries by creation time.
create index webhook_attempts_time_idx on webhook_attempts (attempted_at);
create index webhook_deliveries_retention_idx on webhook_deliveries (created_at)
  where status not in ('pending', 'in_progress');

-- Webhook endpoints, their deliveries (one per event and endpoint), every attempt, and running stats.
create table webhooks (
  id                          text primary key,
  organization_id             text not null,
  url                         text not null,
  events                      text[] not null,
  secret                      text not null,
  -- After a rotation the previous secret keeps signing (a second v1 entry) until it expires.
  previous_secret             text,
  previous_secret_expires_at  timestamptz,
  active                      boolean not null default true,
  disabled_reason             text,
  description                 text not null default '',
  headers                     jsonb not null default '{}'::jsonb,
  created_by                  text not null,
  created_at                  timestamptz not null default now(),
  updated_at                  timestamptz not null default now(),
  deleted_at                  timestamptz
);
create index webhooks_org_idx on webhooks (organization_id, created_at, id) where deleted_at is null;
create index webhooks_events_idx on webhooks using gin (events) where deleted_at is null and active;

create table webhook_deliveries (
  id               text primary key,      -- the webhook-id header; stable across retries
  webhook_id       text not null references webhooks(id),
  organization_id  text not null,
  event_id         text not null,
  event_type       text not null,
  payload          text not null,         -- the exact body that is signed and sent
  status           text not null default 'pending'
                   check (status in ('pending', 'in_progress', 'succeeded', 'failed', 'cancelled')),
  attempt_count    integer not null default 0,
  scheduled_at     timestamptz not null default now(),
  last_attempt_at  timestamptz,
  response_status  integer,
  response_time_ms integer,
  error_message    text,
  created_at       timestamptz not null default now(),
  completed_at     timestamptz,
  unique (webhook_id, event_id)
);
create index webhook_deliveries_webhook_idx on webhook_deliveries (webhook_id, created_at desc, id desc);
create index webhook_deliveries_event_idx on webhook_deliveries (event_id);
create index webhook_deliveries_due_idx on webhook_deliveries (scheduled_at) where status = 'pending';
create index webhook_deliveries_failed_idx on webhook_deliveries (webhook_id, created_at) where status = 'failed';

create table webhook_attempts (
  id                bigserial primary key,
  delivery_id       text not null references webhook_deliveries(id),
  webhook_id        text not null,
  attempt_number    integer not null,
  attempted_at      timestamptz not null,
  success           boolean not null,
  response_status   integer,
  response_time_ms  integer not null,
  response_body     text,
  error_type        text,
  error_message     text
);
create index webhook_attempts_webhook_time_idx on webhook_attempts (webhook_id, attempted_at);
create index webhook_attempts_delivery_idx on webhook_attempts (delivery_id, attempt_number);

-- Kept current in the same statement that records attempts (WebhookStats).
create table webhook_stats (
  webhook_id              text primary key references webhooks(id),
  total_deliveries        bigint not null default 0,
  successful_deliveries   bigint not null default 0,
  failed_deliveries       bigint not null default 0,
  total_response_time_ms  bigint not null default 0,
  attempts                bigint not null default 0,
  last_delivery_at        timestamptz,
  last_delivery_status    text
);

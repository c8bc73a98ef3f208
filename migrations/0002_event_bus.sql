-- Transactional outbox: producers insert in the same transaction as their writes; the relay
-- publishes pending rows in seq order to the Cloudflare Queue and RabbitMQ, then marks them.
create table outbox (
  seq              bigserial primary key,
  id               text not null unique,
  type             text not null,
  organization_id  text not null,
  event            json not null,          -- json, not jsonb: relayed as stored text, never queried inside
  created_at       timestamptz not null default now(),
  published_at     timestamptz,
  attempts         integer not null default 0,
  last_error       text,
  next_attempt_at  timestamptz not null default now()
);
create index outbox_pending_idx on outbox (seq) where published_at is null;
create index outbox_published_idx on outbox (published_at) where published_at is not null;

-- Consumer idempotency: a consumer claims (consumer, event id) in the transaction of its effect.
create table processed_events (
  consumer      text not null,
  event_id      text not null,
  processed_at  timestamptz not null default now(),
  primary key (consumer, event_id)
);

-- Archive of every platform event seen on the bus (audit, webhook payloads, replay).
create table events (
  id               text primary key,
  type             text not null,
  source           text not null,
  organization_id  text not null,
  subject          text,
  time             timestamptz not null,
  data             jsonb not null,
  received_at      timestamptz not null default now()
);
create index events_org_time_idx on events (organization_id, time desc);
create index events_type_time_idx on events (type, time desc);

-- Messages a consumer gave up on (invalid, or retries exhausted), for operators.
create table dead_letters (
  id           bigserial primary key,
  source       text not null,          -- queue name or amqp queue
  message_id   text,
  event_id     text,
  reason       text not null,
  body         jsonb,
  attempts     integer,
  created_at   timestamptz not null default now()
);
create index dead_letters_created_idx on dead_letters (created_at desc);

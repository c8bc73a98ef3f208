-- Idempotency-Key support for mutating POSTs: same key + same request → the stored response for 24 h.
create table idempotency_keys (
  organization_id  text not null,
  key              text not null,
  request_hash     text not null,
  status           integer,            -- null while the first request is in flight
  response         jsonb,
  created_at       timestamptz not null default now(),
  primary key (organization_id, key)
);
create index idempotency_keys_created_idx on idempotency_keys (created_at);

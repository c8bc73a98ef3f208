-- Every e-mail the platform sends (usage alerts, invitations): the provider's answer, or `captured`
-- when no provider is configured (development and tests read them at GET /v1/dev/emails).
create table outbound_emails (
  id               bigserial primary key,
  organization_id  text,
  to_address       text not null,
  subject          text not null,
  body_text        text not null,
  kind             text not null,
  status           text not null check (status in ('captured', 'sent', 'failed')),
  provider_id      text,
  error            text,
  created_at       timestamptz not null default now()
);
create index outbound_emails_to_idx on outbound_emails (to_address, created_at desc);

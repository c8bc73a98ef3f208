-- outbound_emails becomes the e-mail outbox: rows are written in the transaction of the change they
-- are about, a sender claims due rows with a lease, retries with backoff, and records the outcome.
alter table outbound_emails drop constraint outbound_emails_status_check;
alter table outbound_emails add constraint outbound_emails_status_check
  check (status in ('pending', 'sending', 'sent', 'captured', 'failed', 'cancelled'));
alter table outbound_emails
  add column attempts integer not null default 0,
  add column next_attempt_at timestamptz not null default now(),
  add column sent_at timestamptz,
  add column updated_at timestamptz not null default now(),
  -- Inputs of the token the body's {{token}} stands for; the token itself is derived at send time.
  add column token_for jsonb,
  -- What the message belongs to (an invitation id), so re-sending or revoking it cancels it.
  add column ref text;
create index outbound_emails_due_idx on outbound_emails (next_attempt_at, id) where status in ('pending', 'sending');
create index outbound_emails_ref_idx on outbound_emails (ref) where ref is not null;

-- Bodies written before this migration carried invitation tokens in plain text: blank them out.
update outbound_emails
   set body_text = regexp_replace(body_text, '[A-Za-z0-9_-]{43}', '(token removed)', 'g')
 where kind = 'invitation';

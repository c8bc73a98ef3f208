-- Organizations and the plans both usage (quotas) and teams (team limits) read.
-- limits: metric -> maximum per billing period (absent = unlimited); prices: metric -> overage unit price in USD.
create table plans (
  id          text primary key,
  name        text not null,
  limits      jsonb not null default '{}'::jsonb,
  included    jsonb not null default '{}'::jsonb,
  prices      jsonb not null default '{}'::jsonb,
  updated_at  timestamptz not null default now()
);

insert into plans (id, name, limits, included, prices) values
  ('free', 'Free',
   '{"api_calls": 10000, "storage": 1073741824, "collaborators": 5, "documents": 100, "teams": 3}',
   '{"api_calls": 10000, "storage": 1073741824, "collaborators": 5, "documents": 100}',
   '{}'),
  ('pro', 'Pro',
   '{"api_calls": 1000000, "storage": 107374182400, "collaborators": 100, "documents": 100000, "teams": 100}',
   '{"api_calls": 500000, "storage": 53687091200, "collaborators": 50, "documents": 50000}',
   '{"api_calls": 0.0001, "storage": 0.00000000002, "collaborators": 8, "documents": 0.001}'),
  ('enterprise', 'Enterprise',
   '{"teams": 10000}',
   '{"api_calls": 10000000, "storage": 1099511627776, "collaborators": 1000, "documents": 1000000}',
   '{"api_calls": 0.00005, "storage": 0.00000000001, "collaborators": 6, "documents": 0.0005}');

create table organizations (
  id              text primary key,
  plan_id         text not null default 'free' references plans(id),
  -- Billing periods start on this instant's day-of-month and time (UTC), clamped to short months.
  billing_anchor  timestamptz not null default date_trunc('month', now()),
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now()
);

-- Operators and billing without SQL: plans listed through the API, per-organization overrides of a
-- plan's terms, and indexes for the notification and report listings.

-- Plans are listed oldest first (keyset over (created_at, id)); existing plans get the migration time.
alter table plans add column created_at timestamptz not null default now();
create index plans_created_idx on plans (created_at, id);
-- Who is on a plan: its organization count, the delete check, and the refresh after a plan change.
create index organizations_plan_idx on organizations (plan_id);

-- Per-organization terms merged over the organization's plan, key by key. A limit of JSON null means
-- "unlimited whatever the plan says"; included allowances and prices are plain numbers.
create table organization_plan_overrides (
  organization_id  text primary key references organizations(id) on delete cascade,
  limits           jsonb not null default '{}'::jsonb,
  included         jsonb not null default '{}'::jsonb,
  prices           jsonb not null default '{}'::jsonb,
  updated_by       text,
  updated_at       timestamptz not null default now()
);

-- In-app notifications newest first with a keyset cursor, and the unread filter/count.
create index notifications_org_page_idx on notifications (organization_id, created_at desc, id desc);
create index notifications_unread_idx on notifications (organization_id, created_at desc, id desc) where read_at is null;
drop index notifications_org_idx;

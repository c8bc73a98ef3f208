-- Teams inside organizations: a hierarchy (parent links, walked with recursive CTEs), memberships
-- with roles, and invitations whose tokens are stored only as SHA-256 hashes.
create table teams (
  id               text primary key,
  organization_id  text not null,
  name             text not null,
  description      text,
  parent_team_id   text references teams(id),
  visibility       text not null check (visibility in ('public', 'private', 'secret')),
  settings         jsonb not null default '{}'::jsonb,
  created_by       text not null,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now(),
  check (parent_team_id is null or parent_team_id <> id)
);
create unique index teams_org_name_idx on teams (organization_id, lower(name));
create index teams_parent_idx on teams (parent_team_id);
create index teams_org_idx on teams (organization_id, created_at, id);

create table team_memberships (
  team_id    text not null references teams(id) on delete cascade,
  user_id    text not null,
  role       text not null check (role in ('member', 'admin', 'owner')),
  joined_at  timestamptz not null default now(),
  added_by   text not null,
  primary key (team_id, user_id)
);
create index team_memberships_user_idx on team_memberships (user_id, team_id);

create table team_invitations (
  id               text primary key,
  team_id          text not null references teams(id) on delete cascade,
  organization_id  text not null,
  email            text not null,              -- lower-cased
  role             text not null check (role in ('member', 'admin', 'owner')),
  token_hash       text not null unique,       -- hex SHA-256 of the 256-bit token
  invited_by       text not null,
  message          text,
  status           text not null default 'pending' check (status in ('pending', 'accepted', 'expired', 'revoked')),
  created_at       timestamptz not null default now(),
  expires_at       timestamptz not null,
  accepted_by      text,
  accepted_at      timestamptz
);
create index team_invitations_team_idx on team_invitations (team_id, status, created_at desc);
create index team_invitations_expiry_idx on team_invitations (expires_at) where status = 'pending';

-- Teams as the authorization layer for document sharing: typed resources with parent pointers
-- (project ⊃ folder ⊃ document), custom roles per organization, grants of a role on a resource to
-- a team or a user, a per-organization revision counter (read-your-writes tokens), and a small user
-- directory for member search.

-- Resources the documents service registers; a grant on one covers everything below it.
create table authz_resources (
  organization_id  text not null,
  type             text not null check (type in ('project', 'folder', 'document')),
  id               text not null,
  parent_type      text check (parent_type in ('project', 'folder')),
  parent_id        text,
  created_by       text not null,
  created_at       timestamptz not null default now(),
  primary key (organization_id, type, id),
  check ((parent_type is null) = (parent_id is null)),
  check (type <> 'project' or parent_type is null)
);
create index authz_resources_parent_idx on authz_resources (organization_id, parent_type, parent_id, type, id);

-- Custom roles (and extensions of the built-in owner/admin/member, which only ever add permissions).
create table authz_roles (
  organization_id  text not null,
  name             text not null,
  description      text,
  permissions      text[] not null,
  created_by       text not null,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now(),
  primary key (organization_id, name)
);

-- One role per subject and resource; the subject is a team of the organization or a user.
create table authz_grants (
  id               text primary key,
  organization_id  text not null,
  resource_type    text not null,
  resource_id      text not null,
  subject_type     text not null check (subject_type in ('team', 'user')),
  subject_id       text not null,
  role             text not null,
  created_by       text not null,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now(),
  foreign key (organization_id, resource_type, resource_id) references authz_resources (organization_id, type, id) on delete cascade
);
create unique index authz_grants_resource_subject_idx
  on authz_grants (organization_id, resource_type, resource_id, subject_type, subject_id);
create index authz_grants_subject_idx on authz_grants (organization_id, subject_type, subject_id);
create index authz_grants_role_idx on authz_grants (organization_id, role);

-- The organization's authorization revision: every write that can change a check increments it in
-- its transaction (the row lock orders those writes), and returns it as the revision token.
create table authz_revisions (
  organization_id  text primary key,
  revision         bigint not null
);

-- Names and e-mails for member search (pushed by the users service, filled on invitation accept).
create table user_directory (
  user_id     text primary key,
  name        text,
  email       text,
  updated_at  timestamptz not null default now()
);
create index user_directory_email_idx on user_directory (lower(email));

-- Teams trust pass: derived invitation tokens, one pending invitation per address and team, and the
-- organization's policy on who may create root teams.

-- The token is HMAC(secret, id, nonce), derived when the e-mail is sent; only its hash is stored.
alter table team_invitations add column token_nonce text;

-- At most one pending invitation per team and e-mail address (older duplicates are revoked first).
update team_invitations i set status = 'revoked'
 where status = 'pending' and exists (
   select 1 from team_invitations j
    where j.team_id = i.team_id and j.email = i.email and j.status = 'pending' and (j.created_at, j.id) > (i.created_at, i.id));
create unique index team_invitations_pending_email_idx on team_invitations (team_id, email) where status = 'pending';

-- Who may create teams at the root of the hierarchy: every member (GitHub's default) or org admins.
alter table organizations add column root_team_creation text not null default 'members'
  check (root_team_creation in ('members', 'admins'));

/** @jsxImportSource hono/jsx */
import { Hono } from "hono";
import { z } from "zod";
import type { EffectivePermissions, Team, TeamHierarchy, TeamInvitation, TeamMembership } from "../teams/schemas.ts";
import { ApiError, orgPath } from "./api.ts";
import type { ConsoleContext, ConsoleEnv } from "./kit.ts";
import { act, pageContext, readForm, render } from "./kit.ts";
import type { PageContext } from "./layout.tsx";
import { ActionButton, FlashMessage, Form, Layout, fmtTime } from "./layout.tsx";

/**
 * Teams pages: the hierarchy as a tree (what the API lets the caller see: secret teams only for
 * those who reach them), a team's members (direct and inherited, with roles), invitations, moving
 * a team (a cycle or depth error shown next to the form), and effective permissions with sources.
 */

const roles = ["member", "admin", "owner"] as const;
const base = (c: ConsoleContext) => orgPath(c.var.session.principal.organizationId);
const teamUrl = (id: string) => `/console/teams/${encodeURIComponent(id)}`;
const canWrite = (ctx: PageContext) => !ctx.session.scoped || ctx.session.scoped.access === "write";

/** Every team the caller may see (the API's visibility rule), following cursors. */
async function visibleTeams(c: ConsoleContext): Promise<Team[]> {
  const out: Team[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 10; page++) {
    const r = await c.var.api.get<{ teams: Team[]; nextCursor: string | null }>(`${base(c)}/teams`, {
      limit: "200",
      cursor,
    });
    out.push(...r.teams);
    if (!r.nextCursor) break;
    cursor = r.nextCursor;
  }
  return out;
}

interface Node {
  team: Team;
  children: Node[];
}

/** The visible teams as a forest: a team whose parent is not visible (or absent) is a root. */
export function forest(teams: Team[]): Node[] {
  const nodes = new Map(teams.map((t) => [t.id, { team: t, children: [] as Node[] }]));
  const roots: Node[] = [];
  for (const n of nodes.values()) {
    const parent = n.team.parentTeamId ? nodes.get(n.team.parentTeamId) : undefined;
    (parent ? parent.children : roots).push(n);
  }
  const sort = (list: Node[]) => {
    list.sort((a, b) => a.team.name.localeCompare(b.team.name));
    for (const n of list) sort(n.children);
  };
  sort(roots);
  return roots;
}

function Tree(props: { nodes: Node[]; root?: boolean }) {
  if (!props.nodes.length) return null;
  return (
    // Nested lists of links: every team is a Tab stop, no ARIA tree (it would need arrow-key code).
    <ul class="tree" aria-label={props.root ? "Teams" : undefined}>
      {props.nodes.map((n) => (
        <li data-team={n.team.id}>
          <a href={teamUrl(n.team.id)}>{n.team.name}</a> <span class="muted">({n.team.visibility})</span>
          <Tree nodes={n.children} />
        </li>
      ))}
    </ul>
  );
}

function TeamsPage(props: { ctx: PageContext; teams: Team[] }) {
  const { ctx } = props;
  return (
    <Layout ctx={ctx} title="Teams">
      <section aria-labelledby="tree-h">
        <h2 id="tree-h">Hierarchy</h2>
        {props.teams.length ? <Tree nodes={forest(props.teams)} root /> : <p>No teams you can see.</p>}
      </section>
      {canWrite(ctx) ? (
        <section aria-labelledby="new-team-h">
          <h2 id="new-team-h">Create a team</h2>
          <FlashMessage flash={ctx.flash} field="create" />
          <Form ctx={ctx} action="/console/teams" label="Create a team">
            <label for="t-name">Name</label>
            <input id="t-name" name="name" required maxlength={100} />
            <label for="t-visibility">Visibility</label>
            <select id="t-visibility" name="visibility">
              <option value="public">public</option>
              <option value="private" selected>
                private
              </option>
              <option value="secret">secret</option>
            </select>
            <label for="t-parent">Parent team</label>
            <select id="t-parent" name="parentTeamId">
              <option value="">(none: a root team)</option>
              {props.teams.map((t) => (
                <option value={t.id}>{t.name}</option>
              ))}
            </select>
            <button type="submit">Create team</button>
          </Form>
        </section>
      ) : null}
    </Layout>
  );
}

interface TeamData {
  team: Team;
  hierarchy: TeamHierarchy;
  inherited: (TeamMembership & { fromTeam: string })[];
  invitations: TeamInvitation[];
  invitationStatus: string;
  teams: Team[];
  permissions?: EffectivePermissions;
  permissionsError?: string;
  who?: string;
}

function TeamPage(props: { ctx: PageContext; d: TeamData }) {
  const { ctx, d } = props;
  const t = d.team;
  const path = teamUrl(t.id);
  const write = canWrite(ctx);
  const moveError = ctx.flash?.field === "move" && ctx.flash.kind === "error";
  return (
    <Layout ctx={ctx} title={`Team ${t.name}`}>
      <nav aria-label="Breadcrumb">
        <a href="/console/teams">Teams</a>
        {d.hierarchy.ancestors.map((a) => (
          <>
            {" / "}
            <a href={teamUrl(a.id)}>{a.name}</a>
          </>
        ))}
        {" / "}
        <span aria-current="page">{t.name}</span>
      </nav>
      <p>
        {t.visibility} team{t.description ? ` — ${t.description}` : ""}; created {fmtTime(t.createdAt)} by {t.createdBy}
        .
      </p>
      <section aria-labelledby="sub-h">
        <h2 id="sub-h">Subteams</h2>
        {d.hierarchy.descendants.length ? (
          <Tree
            nodes={d.hierarchy.descendants.map(function conv(n): Node {
              return { team: n.team, children: n.children.map(conv) };
            })}
            root
          />
        ) : (
          <p>None you can see.</p>
        )}
      </section>

      <section aria-labelledby="members-h">
        <h2 id="members-h">Members</h2>
        <FlashMessage flash={ctx.flash} field="members" />
        <table>
          <thead>
            <tr>
              <th scope="col">User</th>
              <th scope="col">Role</th>
              <th scope="col">Membership</th>
              <th scope="col">Joined</th>
              {write ? <th scope="col">Actions</th> : null}
            </tr>
          </thead>
          <tbody>
            {(t.members ?? []).map((m) => (
              <tr data-member={m.userId}>
                <td>{m.user?.name ?? m.userId}</td>
                <td>{m.role}</td>
                <td>direct</td>
                <td>{fmtTime(m.joinedAt)}</td>
                {write ? (
                  <td>
                    <Form
                      ctx={ctx}
                      action={`${path}/members/${encodeURIComponent(m.userId)}/role`}
                      class="inline"
                      label={`Role of ${m.userId}`}
                    >
                      <label for={`role-${m.userId}`}>Role of {m.userId}</label>
                      <select id={`role-${m.userId}`} name="role">
                        {roles.map((r) => (
                          <option value={r} selected={m.role === r}>
                            {r}
                          </option>
                        ))}
                      </select>
                      <button type="submit">Change</button>
                    </Form>
                    <ActionButton
                      ctx={ctx}
                      action={`${path}/members/${encodeURIComponent(m.userId)}/remove`}
                      label={`Remove ${m.userId}`}
                      danger
                    />
                  </td>
                ) : null}
              </tr>
            ))}
            {d.inherited.map((m) => (
              <tr data-member={m.userId} data-inherited="true">
                <td>{m.user?.name ?? m.userId}</td>
                <td>{m.role}</td>
                <td>inherited from {m.fromTeam}</td>
                <td>{fmtTime(m.joinedAt)}</td>
                {write ? <td /> : null}
              </tr>
            ))}
          </tbody>
        </table>
        {write ? (
          <Form ctx={ctx} action={`${path}/members`} label="Add a member">
            <label for="m-user">User id</label>
            <input id="m-user" name="userId" required />
            <label for="m-role">Role</label>
            <select id="m-role" name="role">
              {roles.map((r) => (
                <option value={r}>{r}</option>
              ))}
            </select>
            <button type="submit">Add member</button>
          </Form>
        ) : null}
      </section>

      <section aria-labelledby="inv-h">
        <h2 id="inv-h">Invitations</h2>
        <FlashMessage flash={ctx.flash} field="invite" />
        <form method="get" action={path} class="filters" aria-label="Invitation status">
          <label for="inv-status">Status</label>
          <select id="inv-status" name="invitations">
            {["pending", "accepted", "expired", "revoked"].map((s) => (
              <option value={s} selected={d.invitationStatus === s}>
                {s}
              </option>
            ))}
          </select>
          <button type="submit">Show</button>
        </form>
        <table>
          <thead>
            <tr>
              <th scope="col">E-mail</th>
              <th scope="col">Role</th>
              <th scope="col">Status</th>
              <th scope="col">Expires</th>
              {write ? <th scope="col">Actions</th> : null}
            </tr>
          </thead>
          <tbody>
            {d.invitations.map((i) => (
              <tr data-invitation={i.id}>
                <td>{i.email}</td>
                <td>{i.role}</td>
                <td>{i.status}</td>
                <td>{fmtTime(i.expiresAt)}</td>
                {write ? (
                  <td>
                    {i.status === "pending" ? (
                      <>
                        <ActionButton
                          ctx={ctx}
                          action={`${path}/invitations/${encodeURIComponent(i.id)}/resend`}
                          label={`Resend to ${i.email}`}
                        />
                        <ActionButton
                          ctx={ctx}
                          action={`${path}/invitations/${encodeURIComponent(i.id)}/revoke`}
                          label={`Revoke ${i.email}`}
                          danger
                        />
                      </>
                    ) : null}
                  </td>
                ) : null}
              </tr>
            ))}
          </tbody>
        </table>
        {write ? (
          <Form ctx={ctx} action={`${path}/invitations`} label="Invite by e-mail">
            <label for="i-email">E-mail</label>
            <input id="i-email" name="email" type="email" required />
            <label for="i-role">Role</label>
            <select id="i-role" name="role">
              {roles.map((r) => (
                <option value={r}>{r}</option>
              ))}
            </select>
            <button type="submit">Send invitation</button>
          </Form>
        ) : null}
      </section>

      {write ? (
        <section aria-labelledby="move-h">
          <h2 id="move-h">Move</h2>
          <Form ctx={ctx} action={`${path}/move`} label="Move this team">
            <label for="move-parent">New parent</label>
            <select
              id="move-parent"
              name="newParentId"
              aria-describedby={moveError ? "move-error" : undefined}
              aria-invalid={moveError ? "true" : undefined}
            >
              <option value="">(none: make it a root team)</option>
              {d.teams
                .filter((x) => x.id !== t.id)
                .map((x) => (
                  <option value={x.id} selected={x.id === t.parentTeamId}>
                    {x.name}
                  </option>
                ))}
            </select>
            <FlashMessage flash={ctx.flash} field="move" id="move-error" />
            <button type="submit">Move team</button>
          </Form>
        </section>
      ) : null}

      <section aria-labelledby="perm-h">
        <h2 id="perm-h">Why can this user do that here?</h2>
        <form method="get" action={path} aria-label="Effective permissions" class="filters">
          <label for="perm-user">User id</label>
          <input id="perm-user" name="who" value={d.who ?? ""} required />
          <button type="submit">Explain</button>
        </form>
        {d.permissionsError ? (
          <p class="flash error" role="alert">
            {d.permissionsError}
          </p>
        ) : null}
        {d.permissions ? (
          <>
            <p>
              <strong>{d.permissions.userId}</strong>: role here {d.permissions.role ?? "none"}.
            </p>
            <table id="permissions">
              <thead>
                <tr>
                  <th scope="col">Permission</th>
                  <th scope="col">Source</th>
                </tr>
              </thead>
              <tbody>
                {d.permissions.permissions.map((p) => {
                  const s = d.permissions?.sources[p];
                  const from = s?.teamId ? (d.teams.find((x) => x.id === s.teamId)?.name ?? s.teamId) : undefined;
                  return (
                    <tr data-permission={p}>
                      <td>
                        <code>{p}</code>
                      </td>
                      <td>
                        {s?.type === "direct"
                          ? `direct: ${s.role} of this team`
                          : s?.type === "inherited"
                            ? `inherited: ${s.role} of ${from}`
                            : s?.type === "organization_admin"
                              ? "organization admin"
                              : "—"}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </>
        ) : null}
      </section>
    </Layout>
  );
}

const invitationStatus = z.enum(["pending", "accepted", "expired", "revoked"]).catch("pending");

async function loadTeam(c: ConsoleContext, id: string): Promise<TeamData> {
  const api = c.var.api;
  const t = `${base(c)}/teams/${encodeURIComponent(id)}`;
  const status = invitationStatus.parse(c.req.query("invitations"));
  const who = z.string().min(1).max(200).optional().catch(undefined).parse(c.req.query("who"));
  const hierarchyCall = api.get<TeamHierarchy>(`${t}/hierarchy`);
  const [team, hierarchy, ancestors, invitations, teams, why] = await Promise.all([
    api.get<Team>(t, { includeMembers: "true" }),
    hierarchyCall,
    // The ancestors' members as soon as the hierarchy names them, not after the slowest call.
    hierarchyCall.then((h) =>
      Promise.all(
        [...h.ancestors]
          .reverse()
          .map((a) =>
            api
              .get<Team>(`${base(c)}/teams/${encodeURIComponent(a.id)}`, { includeMembers: "true" })
              .catch(() => undefined),
          ),
      ),
    ),
    api
      .get<{ invitations: TeamInvitation[] }>(`${t}/invitations`, { status })
      .catch((e: unknown) => (e instanceof ApiError && e.status === 403 ? { invitations: [] } : Promise.reject(e))),
    visibleTeams(c),
    // "Why can this user…": its own question, asked with the others.
    who
      ? api.get<EffectivePermissions>(`${t}/permissions/${encodeURIComponent(who)}`).then(
          (permissions) => ({ permissions }),
          (e: unknown) => {
            if (e instanceof ApiError) return { permissionsError: `${e.code}: ${e.message}` };
            throw e;
          },
        )
      : {},
  ]);
  // Inherited members: those of the (visible) ancestors, nearest first, unless a direct member.
  const direct = new Set((team.members ?? []).map((m) => m.userId));
  const inherited: TeamData["inherited"] = [];
  for (const a of ancestors) {
    for (const m of a?.members ?? []) {
      if (direct.has(m.userId) || m.inherited) continue;
      direct.add(m.userId);
      inherited.push({ ...m, fromTeam: a!.name });
    }
  }
  return {
    team,
    hierarchy,
    inherited,
    invitations: invitations.invitations,
    invitationStatus: status,
    teams,
    ...why,
    ...(who ? { who } : {}),
  };
}

const csrfOnly = z.object({ _csrf: z.string() }).passthrough();

/** Resend or revoke one invitation of the team in the path (the same form, check and redirect). */
async function invitationAction(c: ConsoleContext, method: "POST" | "DELETE", suffix: string, message: string) {
  await readForm(c, csrfOnly);
  const id = c.req.param("id") ?? "";
  const inv = encodeURIComponent(c.req.param("inv") ?? "");
  return act(
    c,
    teamUrl(id),
    async () => {
      await c.var.api.send(method, `${base(c)}/teams/${encodeURIComponent(id)}/invitations/${inv}${suffix}`);
      return { message };
    },
    "invite",
  );
}

/** The teams section of the console. */
export const teamPages = new Hono<ConsoleEnv>()
  .get("/", async (c) => render(c, <TeamsPage ctx={pageContext(c, "teams")} teams={await visibleTeams(c)} />))
  .post("/", async (c) => {
    const f = await readForm(
      c,
      z.object({
        _csrf: z.string(),
        name: z.string().min(1).max(100),
        visibility: z.enum(["public", "private", "secret"]),
        parentTeamId: z.string().max(200).default(""),
      }),
    );
    return act(
      c,
      "/console/teams",
      async () => {
        const t = await c.var.api.send<Team>("POST", `${base(c)}/teams`, {
          name: f.name,
          visibility: f.visibility,
          ...(f.parentTeamId ? { parentTeamId: f.parentTeamId } : {}),
        });
        return { message: `Team ${t.name} created.`, location: teamUrl(t.id) };
      },
      "create",
    );
  })
  .get("/:id", async (c) =>
    render(c, <TeamPage ctx={pageContext(c, "teams")} d={await loadTeam(c, c.req.param("id"))} />),
  )
  .post("/:id/move", async (c) => {
    const f = await readForm(c, z.object({ _csrf: z.string(), newParentId: z.string().max(200) }));
    const id = c.req.param("id");
    return act(
      c,
      teamUrl(id),
      async () => {
        await c.var.api.send("POST", `${base(c)}/teams/${encodeURIComponent(id)}/move`, {
          newParentId: f.newParentId || null,
        });
        return { message: "Team moved." };
      },
      "move",
    );
  })
  .post("/:id/members", async (c) => {
    const f = await readForm(
      c,
      z.object({ _csrf: z.string(), userId: z.string().min(1).max(200), role: z.enum(roles) }),
    );
    const id = c.req.param("id");
    return act(
      c,
      teamUrl(id),
      async () => {
        await c.var.api.send("POST", `${base(c)}/teams/${encodeURIComponent(id)}/members`, {
          userId: f.userId,
          role: f.role,
        });
        return { message: `${f.userId} added as ${f.role}.` };
      },
      "members",
    );
  })
  .post("/:id/members/:user/role", async (c) => {
    const f = await readForm(c, z.object({ _csrf: z.string(), role: z.enum(roles) }));
    const id = c.req.param("id");
    const user = c.req.param("user");
    return act(
      c,
      teamUrl(id),
      async () => {
        await c.var.api.send(
          "PATCH",
          `${base(c)}/teams/${encodeURIComponent(id)}/members/${encodeURIComponent(user)}`,
          { role: f.role },
        );
        return { message: `${user} is now ${f.role}.` };
      },
      "members",
    );
  })
  .post("/:id/members/:user/remove", async (c) => {
    await readForm(c, csrfOnly);
    const id = c.req.param("id");
    const user = c.req.param("user");
    return act(
      c,
      teamUrl(id),
      async () => {
        await c.var.api.send(
          "DELETE",
          `${base(c)}/teams/${encodeURIComponent(id)}/members/${encodeURIComponent(user)}`,
        );
        return { message: `${user} removed.` };
      },
      "members",
    );
  })
  .post("/:id/invitations", async (c) => {
    const f = await readForm(c, z.object({ _csrf: z.string(), email: z.email().max(320), role: z.enum(roles) }));
    const id = c.req.param("id");
    return act(
      c,
      teamUrl(id),
      async () => {
        await c.var.api.send("POST", `${base(c)}/teams/${encodeURIComponent(id)}/invitations`, {
          email: f.email,
          role: f.role,
        });
        return { message: `Invitation sent to ${f.email}.` };
      },
      "invite",
    );
  })
  .post("/:id/invitations/:inv/resend", (c) =>
    invitationAction(c, "POST", "/resend", "Invitation re-sent (the previous link stopped working)."),
  )
  .post("/:id/invitations/:inv/revoke", (c) => invitationAction(c, "DELETE", "", "Invitation revoked."));

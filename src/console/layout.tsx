/** @jsxImportSource hono/jsx */
import type { Child } from "hono/jsx";
import { CONSOLE_ASSETS } from "./assets.ts";
import type { ConsoleSession, Section } from "./session.ts";
import { offersSection } from "./session.ts";

/** The outcome of the previous action, shown once (from the flash cookie). */
export interface Flash {
  kind: "ok" | "error";
  message: string;
  /** The API's error code, when the action failed. */
  code?: string;
  /** Which form the message belongs to, so it is shown next to it (e.g. `move`). */
  field?: string;
}

/** What every page needs: the session, its CSRF token, the section and the flash message. */
export interface PageContext {
  session: ConsoleSession;
  csrf: string;
  section: Section | "links";
  flash?: Flash;
}

const nav: { section: Section | "links"; href: string; label: string }[] = [
  { section: "webhooks", href: "/console/webhooks", label: "Webhooks" },
  { section: "usage", href: "/console/usage", label: "Usage" },
  { section: "teams", href: "/console/teams", label: "Teams" },
  { section: "links", href: "/console/links", label: "Embeddable links" },
];

/** A form that posts to the console with its CSRF token. */
export function Form(props: { ctx: PageContext; action: string; children?: Child; class?: string; label?: string }) {
  return (
    <form method="post" action={props.action} class={props.class} aria-label={props.label}>
      <input type="hidden" name="_csrf" value={props.ctx.csrf} />
      {props.children}
    </form>
  );
}

/** A one-button form (an action without inputs). */
export function ActionButton(props: { ctx: PageContext; action: string; label: string; danger?: boolean }) {
  return (
    <Form ctx={props.ctx} action={props.action} class="inline">
      <button type="submit" class={props.danger ? "danger" : undefined}>
        {props.label}
      </button>
    </Form>
  );
}

/** The flash message for `field` (or the page-level one when `field` is unset). */
export function FlashMessage(props: { flash?: Flash; field?: string; id?: string }) {
  const f = props.flash;
  if (!f || (f.field ?? undefined) !== props.field) return null;
  return (
    <p id={props.id} class={`flash ${f.kind}`} role={f.kind === "error" ? "alert" : "status"}>
      {f.code ? <code>{f.code}</code> : null} {f.message}
    </p>
  );
}

/** Page shell: navigation (only the sections the session may open), sign-out, flash, content. */
export function Layout(props: {
  ctx: PageContext;
  title: string;
  children?: Child;
  scripts?: string[];
  styles?: string[];
}) {
  const { ctx } = props;
  const p = ctx.session.principal;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="csrf-token" content={ctx.csrf} />
        {/* live.js reads it: a script's request says nothing of its frame, so it names the session. */}
        {ctx.session.embedded ? <meta name="console-session" content="embed" /> : null}
        <title>{`${props.title} · CloudMatrix console`}</title>
        <link rel="icon" href="data:," />
        <link rel="stylesheet" href={CONSOLE_ASSETS.css} />
        {(props.styles ?? []).map((s) => (
          <link rel="stylesheet" href={s} />
        ))}
      </head>
      <body>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header>
          <span class="brand">CloudMatrix</span>
          <nav aria-label="Sections">
            <ul>
              {nav
                .filter((n) => (n.section === "links" ? !ctx.session.scoped : offersSection(ctx.session, n.section)))
                .map((n) => (
                  <li>
                    <a href={n.href} aria-current={ctx.section === n.section ? "page" : undefined}>
                      {n.label}
                    </a>
                  </li>
                ))}
            </ul>
          </nav>
          <span class="who">
            {p.userId} · {p.organizationId}
            {ctx.session.scoped ? ` · scoped link (${ctx.session.scoped.access})` : ""}
          </span>
          <Form ctx={ctx} action="/console/logout" class="inline">
            <button type="submit">Sign out</button>
          </Form>
        </header>
        <main id="main" tabindex={-1}>
          <h1>{props.title}</h1>
          <FlashMessage flash={ctx.flash} />
          {props.children}
        </main>
        {(props.scripts ?? []).map((s) => (
          <script src={s} defer />
        ))}
      </body>
    </html>
  );
}

/** The sign-in page (no session yet). */
export function LoginPage(props: { error?: string; csrf: string }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>Sign in · CloudMatrix console</title>
        <link rel="icon" href="data:," />
        <link rel="stylesheet" href={CONSOLE_ASSETS.css} />
      </head>
      <body>
        <main id="main" class="narrow">
          <h1>Sign in to the CloudMatrix console</h1>
          {props.error ? (
            <p class="flash error" role="alert" id="login-error">
              {props.error}
            </p>
          ) : null}
          <form method="post" action="/console/login" id="login">
            <input type="hidden" name="_csrf" value={props.csrf} />
            <label for="token">Bearer token</label>
            <textarea
              id="token"
              name="token"
              rows={5}
              required
              autocomplete="off"
              spellcheck={false}
              aria-describedby={props.error ? "login-error token-help" : "token-help"}
            />
            <p id="token-help" class="help">
              A token of your identity provider (in development: <code>npm run token</code> prints a link that signs you
              in).
            </p>
            <button type="submit">Sign in</button>
          </form>
        </main>
        <script src={CONSOLE_ASSETS.login} defer />
      </body>
    </html>
  );
}

/**
 * The page an embed URL opens in its frame: a sign-in form that `login.js` fills with the fragment's
 * token and submits (nothing to click, so nothing to trick a user into clicking), or why it cannot.
 */
export function EmbedPage(props: { csrf?: string; error?: string; message?: string }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>CloudMatrix console</title>
        <link rel="icon" href="data:," />
        <link rel="stylesheet" href={CONSOLE_ASSETS.css} />
      </head>
      <body>
        <main id="main" class="narrow">
          <h1>CloudMatrix console</h1>
          {props.error ? (
            <p class="flash error" role="alert">
              {props.error}
            </p>
          ) : props.message ? (
            <p role="status">{props.message}</p>
          ) : (
            <form method="post" action="/console/embed" id="login">
              <input type="hidden" name="_csrf" value={props.csrf} />
              <input type="hidden" name="token" id="token" />
              <p role="status">Opening the console…</p>
              <noscript>
                <p>This embedded console needs JavaScript to sign in.</p>
              </noscript>
            </form>
          )}
        </main>
        {props.csrf && !props.error ? <script src={CONSOLE_ASSETS.login} defer /> : null}
      </body>
    </html>
  );
}

/** Formats an ISO time for tables (UTC, to the second). */
export const fmtTime = (iso: string | null | undefined) => (iso ? `${iso.slice(0, 19).replace("T", " ")} UTC` : "—");

/**
 * Data for a client island, as a non-executing `<script type="application/json">` (allowed by the
 * CSP, unlike inline code). `<` is escaped so no `</script>` or `<!--` inside the data can close it.
 */
export function JsonData(props: { id: string; data: unknown }) {
  const json = JSON.stringify(props.data).replace(/</g, "\\u003c");
  return <script type="application/json" id={props.id} dangerouslySetInnerHTML={{ __html: json }} />;
}

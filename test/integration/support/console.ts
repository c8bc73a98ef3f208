import { exports } from "cloudflare:workers";
import { expect } from "vitest";

/** What the console's workerd tests share: requests to the Worker as a browser sends them. */

/** The origin the console's workerd tests send their requests to. */
export const ORIGIN = "http://edge.test";

/** Cookie `name` from Set-Cookie headers: its value and attributes (lower-cased). */
export function cookie(res: Response, name: string): { value: string; attrs: string[] } | undefined {
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(";").map((s) => s.trim());
    const [k, v] = pair!.split("=");
    if (k === name) return { value: v ?? "", attrs: attrs.map((a) => a.toLowerCase()) };
  }
  return undefined;
}

/** A request to the Worker under test; redirects are returned, not followed. */
export const fetchWorker = (path: string, init: RequestInit = {}) =>
  exports.default.fetch(new Request(`${ORIGIN}${path}`, { redirect: "manual", ...init }));

/** Signs in through the form, as a browser does; returns the session cookie header. */
export async function signIn(token: string): Promise<string> {
  const page = await fetchWorker("/console/login");
  const nonce = cookie(page, "cm_console_login")!.value;
  const res = await fetchWorker("/console/login", {
    method: "POST",
    headers: {
      cookie: `cm_console_login=${nonce}`,
      "content-type": "application/x-www-form-urlencoded",
      "sec-fetch-site": "same-origin",
    },
    body: new URLSearchParams({ _csrf: nonce, token }),
  });
  expect(res.status).toBe(303);
  return `cm_console=${cookie(res, "cm_console")!.value}`;
}

/** The CSRF token a page carries (its `<meta name="csrf-token">`). */
export async function csrfOf(session: string, path = "/console/webhooks"): Promise<string> {
  const html = await (await fetchWorker(path, { headers: { cookie: session } })).text();
  return html.match(/<meta name="csrf-token" content="([^"]+)"/)![1]!;
}

/** A same-origin form POST of the session (a record, or pairs for repeated names). */
export const form = (
  session: string,
  body: Record<string, string> | [string, string][],
  headers: Record<string, string> = {},
): RequestInit => ({
  method: "POST",
  headers: {
    cookie: session,
    "content-type": "application/x-www-form-urlencoded",
    "sec-fetch-site": "same-origin",
    ...headers,
  },
  body: new URLSearchParams(body),
});

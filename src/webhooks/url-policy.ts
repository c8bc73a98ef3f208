/**
 * Which URLs may receive webhooks: checked when an endpoint is registered or changed and again
 * before each delivery (a policy change must also stop old endpoints). Guards against SSRF, i.e.
 * customers pointing our deliveries at loopback, private networks or cloud metadata services.
 *
 * Only literal hosts can be judged here. A DNS name that resolves to a private address (including
 * DNS rebinding after registration) cannot be checked from a Worker: there is no DNS API to call
 * before `fetch`, and `fetch` resolves on its own. The second layer is Cloudflare's edge, which
 * refuses to connect Workers to private and reserved ranges.
 */
import { ValidationError } from "../platform/errors.ts";

/** Deployment-dependent parts of the policy. */
export interface UrlPolicy {
  /** allow http://127.0.0.1 / http://localhost / http://[::1] (and those loopback targets) for local runs only */
  allowLocalHttp: boolean;
}

/** Outcome of {@link checkWebhookUrl}: the normalised URL, or why it is refused. */
export type UrlVerdict =
  | { ok: true; url: URL }
  | { ok: false; reason: string; code: "invalid_url" | "insecure_scheme" | "credentials" | "ssrf_blocked" };

type HostProblem = { code: "invalid_url" | "ssrf_blocked"; reason: string };

/** Longest URL accepted; receivers and logs choke on more, and nothing legitimate needs it. */
const MAX_URL_LENGTH = 2048;

// ---------------------------------------------------------------------------------------------
// IPv4

/** Strict dotted quad ("a.b.c.d", decimal, no leading zeros), as inside IPv6 literals. */
function parseDottedQuad(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let addr = 0;
  for (const p of parts) {
    if (!/^(?:0|[1-9]\d{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    addr = addr * 256 + n;
  }
  return addr;
}

/** One IPv4 number in the WHATWG sense: `0x` hex, leading-zero octal or decimal. */
function parseIPv4Number(text: string): number | null {
  if (/^0x[0-9a-f]*$/i.test(text)) return text.length === 2 ? 0 : parseInt(text.slice(2), 16);
  if (/^0[0-7]+$/.test(text)) return parseInt(text.slice(1), 8);
  if (/^\d+$/.test(text)) return /^0\d/.test(text) ? null : Number(text);
  return null;
}

/** WHATWG "ends in a number": such a host is an IPv4 address or invalid, never a DNS name. */
function endsInNumber(host: string): boolean {
  const parts = host.split(".");
  if (parts.length > 1 && parts[parts.length - 1] === "") parts.pop();
  const last = parts[parts.length - 1] ?? "";
  return last !== "" && (/^\d+$/.test(last) || parseIPv4Number(last) !== null);
}

/**
 * WHATWG IPv4 host parser (1–4 parts, each hex/octal/decimal, the last filling the remaining
 * bytes). `URL` has already applied it to hostnames; this covers bare input to isBlockedAddress.
 */
function parseIPv4(host: string): number | null {
  const parts = host.split(".");
  if (parts.length > 1 && parts[parts.length - 1] === "") parts.pop();
  if (parts.length === 0 || parts.length > 4) return null;
  const nums: number[] = [];
  for (const p of parts) {
    const n = parseIPv4Number(p);
    if (n === null) return null;
    nums.push(n);
  }
  const last = nums.pop() ?? 0;
  if (nums.some((n) => n > 255) || last >= 256 ** (4 - nums.length)) return null;
  let addr = last;
  for (const [i, n] of nums.entries()) addr += n * 256 ** (3 - i);
  return addr;
}

function formatIPv4(addr: number): string {
  return [addr >>> 24, (addr >>> 16) & 255, (addr >>> 8) & 255, addr & 255].join(".");
}

function v4Range(cidr: string, label: string): readonly [number, number, string] {
  const [base = "", prefix = ""] = cidr.split("/");
  const addr = parseDottedQuad(base);
  if (addr === null) throw new Error(`bad CIDR ${cidr}`);
  return [addr, Number(prefix), `${label} ${cidr}`];
}

/** Special-purpose IPv4 ranges (IANA registry) a webhook must never reach. */
const BLOCKED_V4 = [
  v4Range("0.0.0.0/8", "'this network'"),
  v4Range("10.0.0.0/8", "private"),
  v4Range("100.64.0.0/10", "carrier-grade NAT"), // also Alibaba Cloud metadata 100.100.100.200
  v4Range("127.0.0.0/8", "loopback"),
  v4Range("169.254.0.0/16", "link-local"), // AWS/GCP/Azure metadata 169.254.169.254
  v4Range("172.16.0.0/12", "private"),
  v4Range("192.0.0.0/24", "IETF protocol assignments"), // Oracle Cloud metadata 192.0.0.192
  v4Range("192.0.2.0/24", "documentation"),
  v4Range("192.168.0.0/16", "private"),
  v4Range("198.18.0.0/15", "benchmarking"),
  v4Range("198.51.100.0/24", "documentation"),
  v4Range("203.0.113.0/24", "documentation"),
  v4Range("224.0.0.0/4", "multicast"),
  v4Range("240.0.0.0/4", "reserved"), // includes broadcast 255.255.255.255
];

function inV4Range(addr: number, base: number, prefix: number): boolean {
  if (prefix === 0) return true;
  return (addr ^ base) >>> (32 - prefix) === 0;
}

function ipv4Problem(addr: number, via = ""): string | null {
  for (const [base, prefix, label] of BLOCKED_V4) {
    if (inV4Range(addr, base, prefix)) return `${via}${formatIPv4(addr)} is in a blocked range (${label})`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// IPv6

/**
 * Parses an IPv6 literal (optionally in brackets) into its 8 16-bit groups: hex groups, at most
 * one `::`, an optional trailing dotted quad. No zone ids (`URL` rejects them too).
 */
function parseIPv6(input: string): number[] | null {
  let s = input;
  if (s.startsWith("[")) {
    if (!s.endsWith("]")) return null;
    s = s.slice(1, -1);
  }
  const lastColon = s.lastIndexOf(":");
  if (lastColon < 0) return null;
  const tail = s.slice(lastColon + 1);
  if (tail.includes(".")) {
    // Rewrite the dotted quad as two hex groups so one grammar handles the rest.
    const v4 = parseDottedQuad(tail);
    if (v4 === null) return null;
    s = `${s.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const gap = s.indexOf("::");
  if (gap !== s.lastIndexOf("::")) return null; // two gaps, or ":::"
  let head: string[];
  let rest: string[] = [];
  if (gap >= 0) {
    const before = s.slice(0, gap);
    const after = s.slice(gap + 2);
    head = before === "" ? [] : before.split(":");
    rest = after === "" ? [] : after.split(":");
    if (head.length + rest.length > 7) return null; // `::` stands for at least one group
  } else {
    head = s.split(":");
    if (head.length !== 8) return null;
  }
  const toGroup = (g: string): number | null => (/^[0-9a-f]{1,4}$/i.test(g) ? parseInt(g, 16) : null);
  const groups: number[] = [];
  for (const g of head) {
    const n = toGroup(g);
    if (n === null) return null;
    groups.push(n);
  }
  const fill = 8 - head.length - rest.length;
  for (let i = 0; i < fill; i++) groups.push(0);
  for (const g of rest) {
    const n = toGroup(g);
    if (n === null) return null;
    groups.push(n);
  }
  return groups;
}

const v4At = (g: readonly number[], i: number): number => ((g[i] ?? 0) * 0x10000 + (g[i + 1] ?? 0)) >>> 0;
const zeros = (g: readonly number[], from: number, to: number): boolean => g.slice(from, to).every((x) => x === 0);

function ipv6Problem(g: readonly number[]): string | null {
  const [g0 = 0, g1 = 0, g2 = 0] = g;
  if (zeros(g, 0, 8)) return "[::] is the unspecified address";
  if (zeros(g, 0, 7) && g[7] === 1) return "[::1] is the loopback address";
  // Forms that carry an IPv4 address: judge the IPv4 address (a public one is fine).
  if (zeros(g, 0, 5) && g[5] === 0xffff) return ipv4Problem(v4At(g, 6), "IPv4-mapped address of ");
  if (zeros(g, 0, 4) && g[4] === 0xffff && g[5] === 0) return ipv4Problem(v4At(g, 6), "IPv4-translated address of ");
  if (zeros(g, 0, 6)) return ipv4Problem(v4At(g, 6), "IPv4-compatible address of ");
  if (g0 === 0x64 && g1 === 0xff9b && zeros(g, 2, 6)) return ipv4Problem(v4At(g, 6), "NAT64 address of ");
  if (g0 === 0x2002) return ipv4Problem(v4At(g, 1), "6to4 address of ");
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 1) return "64:ff9b:1::/48 is local-use NAT64";
  if (g0 === 0x2001 && g1 === 0) return "2001::/32 is Teredo (tunnels to an unknown IPv4 host)";
  if (g0 === 0x2001 && g1 === 0xdb8) return "2001:db8::/32 is documentation";
  if (g0 === 0x2001 && g1 === 2 && g2 === 0) return "2001:2::/48 is benchmarking";
  if ((g0 & 0xfff0) === 0x3ff0) return "3fff::/20 is documentation";
  if (g0 === 0x100 && zeros(g, 1, 4)) return "100::/64 is discard-only";
  if ((g0 & 0xfe00) === 0xfc00) return "fc00::/7 is unique-local (private)"; // incl. AWS metadata fd00:ec2::254
  if ((g0 & 0xffc0) === 0xfe80) return "fe80::/10 is link-local";
  if ((g0 & 0xffc0) === 0xfec0) return "fec0::/10 is site-local";
  if ((g0 & 0xff00) === 0xff00) return "ff00::/8 is multicast";
  // Defence in depth: only 2000::/3 is allocated as global unicast; the rest is reserved.
  if ((g0 & 0xe000) !== 0x2000) return "address is outside global unicast 2000::/3";
  return null;
}

// ---------------------------------------------------------------------------------------------
// Hostnames

/** Names that only ever resolve to the host itself, a LAN or a cloud metadata service. */
const BLOCKED_NAMES = new Set([
  "localhost",
  "localhost.localdomain",
  "ip6-localhost",
  "ip6-loopback",
  "metadata",
  "instance-data",
]);

/**
 * Suffixes for loopback (RFC 6761), mDNS (RFC 6762), cloud-internal DNS (`metadata.google.internal`,
 * `*.ec2.internal`), reverse/home DNS under `.arpa` (incl. `home.arpa`, RFC 8375) and the private
 * TLDs RFC 6762 Appendix G lists, none of which is publicly resolvable.
 */
const BLOCKED_SUFFIXES = [
  ".localhost",
  ".local",
  ".internal",
  ".arpa",
  ".localdomain",
  ".lan",
  ".intranet",
  ".corp",
  ".home",
  ".private",
];

function hostnameProblem(name: string): HostProblem | null {
  if (name === "") return { code: "invalid_url", reason: "host is empty" };
  if (name.length > 253) return { code: "invalid_url", reason: "host name is longer than 253 characters" };
  const labels = name.split(".");
  if (labels.some((l) => l === "" || l.length > 63))
    return { code: "invalid_url", reason: `host ${name} is not a valid DNS name` };
  if (BLOCKED_NAMES.has(name)) return { code: "ssrf_blocked", reason: `host ${name} is a local or metadata name` };
  const suffix = BLOCKED_SUFFIXES.find((s) => name.endsWith(s));
  if (suffix)
    return { code: "ssrf_blocked", reason: `host ${name} is under ${suffix}, which is not publicly resolvable` };
  if (labels.length === 1)
    return { code: "ssrf_blocked", reason: `single-label host ${name} only resolves on internal networks` };
  return null;
}

/** Why a host (URL.hostname form, or a bare IP) must not be contacted; null if it may. */
function hostProblem(host: string): HostProblem | null {
  const h = host.toLowerCase();
  if (h.startsWith("[") || h.includes(":")) {
    const groups = parseIPv6(h);
    if (groups === null) return { code: "invalid_url", reason: `host ${host} is not a valid IPv6 address` };
    const reason = ipv6Problem(groups);
    return reason === null ? null : { code: "ssrf_blocked", reason: `host ${host} is blocked: ${reason}` };
  }
  // DNS treats "name." and "name" alike; strip so "localhost." cannot slip past the name rules.
  const name = h.replace(/\.+$/, "");
  if (endsInNumber(name)) {
    const addr = parseIPv4(name);
    if (addr === null) return { code: "invalid_url", reason: `host ${host} is not a valid IPv4 address` };
    const reason = ipv4Problem(addr);
    return reason === null ? null : { code: "ssrf_blocked", reason };
  }
  return hostnameProblem(name);
}

function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h.startsWith("[")) {
    const g = parseIPv6(h);
    return g !== null && zeros(g, 0, 7) && g[7] === 1;
  }
  const name = h.replace(/\.+$/, "");
  if (name === "localhost") return true;
  const addr = endsInNumber(name) ? parseIPv4(name) : null;
  return addr !== null && addr >>> 24 === 127;
}

// ---------------------------------------------------------------------------------------------
// Public API

/**
 * True if the host must not receive webhooks: a blocked IPv4/IPv6 range (also when embedded in an
 * IPv6 form), a local/internal/metadata name, a single-label name, or anything unparseable (fails
 * closed).
 * @param host - `URL.hostname` form (IPv6 in brackets) or a bare IP address
 */
export function isBlockedAddress(host: string): boolean {
  return hostProblem(host) !== null;
}

/**
 * Checks a webhook URL: https only (http only to loopback when `allowLocalHttp`), no credentials,
 * at most 2048 characters, and a host outside every blocked range and name. Fragments are allowed:
 * they are never sent.
 * @param raw - the URL as the customer submitted it
 * @param policy - deployment settings
 * @returns the parsed, normalised URL (use its `href`) or the reason it is refused
 */
export function checkWebhookUrl(raw: string, policy: UrlPolicy): UrlVerdict {
  if (typeof raw !== "string" || raw === "") return { ok: false, code: "invalid_url", reason: "URL is required" };
  if (raw.length > MAX_URL_LENGTH)
    return { ok: false, code: "invalid_url", reason: `URL is longer than ${MAX_URL_LENGTH} characters` };
  // `URL` silently strips tabs, newlines and edge spaces; refuse instead so what is stored is what was typed.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused here
  if (/[\u0000-\u0020\u007f]/.test(raw)) {
    return { ok: false, code: "invalid_url", reason: "URL must not contain spaces or control characters" };
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, code: "invalid_url", reason: "not a valid absolute URL" };
  }
  if (url.href.length > MAX_URL_LENGTH) {
    return {
      ok: false,
      code: "invalid_url",
      reason: `URL is longer than ${MAX_URL_LENGTH} characters once normalised`,
    };
  }
  const localOk = policy.allowLocalHttp && isLoopbackHost(url.hostname);
  if (url.protocol === "http:") {
    if (!localOk) return { ok: false, code: "insecure_scheme", reason: "URL must use https" };
  } else if (url.protocol !== "https:") {
    return { ok: false, code: "insecure_scheme", reason: `URL must use https, not ${url.protocol.slice(0, -1)}` };
  }
  if (url.username !== "" || url.password !== "") {
    return { ok: false, code: "credentials", reason: "URL must not contain a user name or password" };
  }
  if (!localOk) {
    const problem = hostProblem(url.hostname);
    if (problem) return { ok: false, ...problem };
  }
  return { ok: true, url };
}

/**
 * {@link checkWebhookUrl} for request handlers: returns the normalised URL or throws a
 * ValidationError (400) with one issue `{ path, message: reason, code }`.
 * @param path - field path reported in the issue (default "url")
 */
export function assertWebhookUrl(raw: string, policy: UrlPolicy, path = "url"): URL {
  const verdict = checkWebhookUrl(raw, policy);
  if (verdict.ok) return verdict.url;
  throw new ValidationError(`invalid webhook URL: ${verdict.reason}`, [
    { path, message: verdict.reason, code: verdict.code },
  ]);
}

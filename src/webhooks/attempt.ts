import { storableText } from "../platform/validation.ts";
import type { AttemptOutcome, Job } from "./queue.ts";
import { classifyStatus, parseRetryAfter } from "./queue.ts";
import { signAll } from "./signing.ts";
import type { EndpointSettings } from "./settings.ts";
import type { UrlPolicy } from "./url-policy.ts";
import { checkWebhookUrl } from "./url-policy.ts";

/**
 * One HTTP attempt: sign with every live secret, POST without following redirects, stop at the
 * timeout (which covers the whole exchange, body included), keep the first 16 KiB of the answer.
 */

/** What an attempt needs to know about the endpoint. */
export interface Endpoint {
  id: string;
  url: string;
  /** Current secret first; the previous one too while its rotation overlap lasts. */
  secrets: string[];
  headers: Record<string, string>;
  /** Its effective delivery settings (absent: the run's global defaults). */
  settings?: EndpointSettings;
}

/** Settings of {@link attemptDelivery}. */
export interface AttemptSettings {
  timeoutMs: number;
  policy: UrlPolicy;
  /** The seed's `httpClient`: any fetch-compatible function (default: global fetch). */
  fetch?: typeof fetch;
  now?: () => number;
}

const MAX_BODY = 16 * 1024;
const USER_AGENT = "CloudMatrix-Webhooks/1.0 (+https://cloudmatrix.dev/webhooks)";

/**
 * Reads at most `limit` bytes of the body until `deadline` (epoch ms), then cancels the rest. The
 * deadline is ours, not the fetch's abort signal: aborting a response mid-body errors the stream
 * inside the runtime, which surfaces as an unhandled rejection nobody can catch.
 */
async function readPrefix(res: Response, limit: number, deadline: number): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  // workerd rejects a read pending at cancel ("Stream was cancelled", where the spec resolves it
  // done) and may reject `closed` too: both are handled here, so neither escapes as unhandled.
  reader.closed.catch(() => undefined);
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    while (size < limit) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), left)));
      const read = reader.read();
      read.catch(() => undefined);
      const next = await Promise.race([read, late]);
      if (timer !== undefined) clearTimeout(timer);
      if (next === null || next.done) break;
      chunks.push(next.value);
      size += next.value.byteLength;
    }
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    // Whatever is left (a huge or endless body) is not our business: release the connection.
    reader.cancel().catch(() => undefined);
  }
  const all = new Uint8Array(Math.min(size, limit));
  let off = 0;
  for (const c of chunks) {
    const part = c.subarray(0, Math.min(c.byteLength, limit - off));
    all.set(part, off);
    off += part.byteLength;
    if (off >= limit) break;
  }
  // The receiver's bytes, kept as Postgres can store them (a NUL would fail the attempt's flush).
  return storableText(new TextDecoder().decode(all));
}

/** The headers of a signed delivery request (`webhook-sequence`: the endpoint's number of the delivery). */
export async function deliveryHeaders(
  job: Pick<Job, "deliveryId" | "body" | "sequence">,
  endpoint: Endpoint,
  timestampSeconds: number,
): Promise<Record<string, string>> {
  return {
    ...endpoint.headers,
    "content-type": "application/json",
    "user-agent": USER_AGENT,
    "webhook-id": job.deliveryId,
    "webhook-timestamp": String(timestampSeconds),
    ...(job.sequence !== undefined ? { "webhook-sequence": String(job.sequence) } : {}),
    "webhook-signature": await signAll(job.deliveryId, timestampSeconds, job.body, endpoint.secrets),
  };
}

const SECRET_HEADERS = new Set(["webhook-signature", "authorization", "proxy-authorization", "cookie"]);

/** The request headers as the attempt log shows them: signature and credentials redacted. */
export function redactHeaders(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).map(([k, v]) => [k, SECRET_HEADERS.has(k.toLowerCase()) ? "[redacted]" : v]),
  );
}

/** At most 50 response headers, values cut at 1 KiB (what the attempt log keeps). */
function responseHeaders(h: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  let n = 0;
  for (const [k, v] of h) {
    if (n++ >= 50) break;
    out[k] = storableText(v.slice(0, 1024));
  }
  return out;
}

/** Performs one delivery attempt; never throws. */
export async function attemptDelivery(job: Job, endpoint: Endpoint, s: AttemptSettings): Promise<AttemptOutcome> {
  const now = s.now ?? Date.now;
  const started = now();
  const verdict = checkWebhookUrl(endpoint.url, s.policy);
  if (!verdict.ok) return { success: false, responseTimeMs: 0, errorType: "ssrf_blocked", error: verdict.reason };

  // The signal only covers the wait for the response; the body has its own deadline (readPrefix).
  const controller = new AbortController();
  const signal = controller.signal;
  const abortAt = setTimeout(() => controller.abort(new DOMException("timed out", "TimeoutError")), s.timeoutMs);
  const headers = await deliveryHeaders(job, endpoint, Math.floor(started / 1000));
  const requestHeaders = redactHeaders(headers);
  let res: Response;
  try {
    res = await (s.fetch ?? fetch)(verdict.url.toString(), {
      method: "POST",
      headers,
      body: job.body,
      redirect: "manual",
      signal,
    });
  } catch (err) {
    clearTimeout(abortAt);
    const timedOut =
      signal.aborted || (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError"));
    return {
      success: false,
      responseTimeMs: now() - started,
      requestHeaders,
      errorType: timedOut ? "timeout" : "connection",
      error: timedOut
        ? `no response within ${s.timeoutMs} ms`
        : `connection failed: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
  clearTimeout(abortAt);
  const responseTimeMs = now() - started;
  // The status decides; a body that stalls past the timeout only shortens what we record.
  const responseBody = await readPrefix(res, MAX_BODY, started + s.timeoutMs).catch(() => "");
  const { success, errorType } = classifyStatus(res.status);
  return {
    success,
    statusCode: res.status,
    responseTimeMs,
    responseBody,
    requestHeaders,
    responseHeaders: responseHeaders(res.headers),
    ...(success
      ? {}
      : {
          errorType,
          error: `HTTP ${res.status}${res.status >= 300 && res.status < 400 ? " (redirects are not followed)" : ""}`,
        }),
    retryAfterMs: parseRetryAfter(res.headers.get("retry-after"), now()),
  };
}

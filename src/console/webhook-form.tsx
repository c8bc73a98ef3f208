/** @jsxImportSource hono/jsx */
import type { Child } from "hono/jsx";
import type { ClientErrorStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { ValidationError } from "../platform/errors.ts";
import type { Webhook } from "../webhooks/schemas.ts";
import type { EndpointSettings } from "../webhooks/settings.ts";
import { settingsShape } from "../webhooks/settings.ts";
import { ApiError } from "./api.ts";

/**
 * The endpoint form (create and edit): every field the `/v1` webhook POST/PATCH takes, the body
 * it sends, and the API's refusal shown next to the fields it names. The API is the validator:
 * the form only turns text into JSON and never second-guesses a range.
 */

/** A catalog entry, as `GET /v1/event-types` lists it. */
export interface EventType {
  type: string;
  description: string;
}

type NumericKey = Exclude<keyof EndpointSettings, "ordered">;

/**
 * Labels of the numeric settings and the group each sits in. Keyed by the API's own type, so a
 * setting added there fails the typecheck until it has a field here; ranges come from its schema.
 */
const settingFields: Record<NumericKey, { group: string; label: string; ms?: true; zero?: string }> = {
  maxAttempts: { group: "Retry schedule", label: "Max attempts" },
  backoffBaseMs: { group: "Retry schedule", label: "First retry delay (ms, doubles per attempt)", ms: true },
  backoffCapMs: { group: "Retry schedule", label: "Longest retry delay (ms)", ms: true },
  circuitFailureThreshold: { group: "Circuit breaker", label: "Consecutive failures to open" },
  circuitSuccessThreshold: { group: "Circuit breaker", label: "Probe successes to close" },
  circuitCooldownMs: {
    group: "Circuit breaker",
    label: "Cooldown before a probe (ms, doubles per re-open)",
    ms: true,
  },
  timeoutMs: { group: "Requests", label: "Request timeout (ms)", ms: true },
  rateLimitPerSecond: { group: "Requests", label: "Rate limit (attempts per second)", zero: "no limit" },
  disableAfterFailingMs: { group: "Auto-disable", label: "Disable after failing for (ms)", ms: true, zero: "never" },
};
const numericKeys = Object.keys(settingFields) as NumericKey[];
/** The groups in order, each with its keys; `ordered` joins "Requests". */
const settingGroups = [...new Set(numericKeys.map((k) => settingFields[k].group))].map((legend) => ({
  legend,
  keys: numericKeys.filter((k) => settingFields[k].group === legend),
}));

/** A duration in the largest unit it is a whole number of (`3600000` → `1 h`). */
function duration(ms: number): string {
  for (const [unit, size] of [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["min", 60_000],
    ["s", 1_000],
  ] as const)
    if (ms >= size && ms % size === 0) return `${ms / size} ${unit}`;
  return `${ms} ms`;
}

/** The help line of a numeric setting: its range, as the API's schema bounds it. */
function rangeOf(k: NumericKey): string {
  const s = settingsShape[k] as z.ZodNumber;
  const f = settingFields[k];
  const [min, max] = [s.minValue ?? 0, s.maxValue ?? 0];
  const range = f.ms ? `${min}–${max} (${duration(min)} to ${duration(max)})` : `${min}–${max}`;
  return `${range}${f.zero ? `; 0: ${f.zero}` : ""}`;
}

/** The form as posted: text everywhere (the API does the checking); an absent field is left alone. */
export const endpointForm = z.object({
  _csrf: z.string(),
  url: z.string().max(4096).default(""),
  description: z.string().max(4096).default(""),
  events: z
    .union([z.string(), z.array(z.string())])
    .optional()
    .transform((v) => (v === undefined ? [] : Array.isArray(v) ? v : [v])),
  patterns: z.string().max(4096).default(""),
  headers: z.string().max(16_384).default(""),
  notificationEmail: z.string().max(1024).optional(),
  ordered: z.string().optional(),
  ...(Object.fromEntries(numericKeys.map((k) => [k, z.string().max(40).optional()])) as Record<
    NumericKey,
    z.ZodOptional<z.ZodString>
  >),
});
/** A submitted endpoint form. */
export type EndpointForm = z.infer<typeof endpointForm>;

/** What the form shows: a webhook's values, or what was typed (after a refusal). */
export interface EndpointValues {
  url: string;
  description: string;
  /** Checked catalog entries (and `*`). */
  events: string[];
  /** Other patterns, comma-separated. */
  patterns: string;
  /** `Name: value` lines. */
  headers: string;
  notificationEmail: string;
  settings: Partial<Record<NumericKey, string>>;
  ordered: boolean;
}

/** The form's values for a webhook (edit), or empty ones (create: every setting its default). */
export function valuesOf(types: EventType[], w?: Webhook): EndpointValues {
  const listed = new Set(["*", ...types.map((t) => t.type)]);
  return {
    url: w?.url ?? "",
    description: w?.description ?? "",
    events: (w?.events ?? []).filter((e) => listed.has(e)),
    patterns: (w?.events ?? []).filter((e) => !listed.has(e)).join(", "),
    headers: Object.entries(w?.headers ?? {})
      .map(([k, v]) => `${k}: ${v}`)
      .join("\n"),
    notificationEmail: w?.notificationEmail ?? "",
    settings: w ? Object.fromEntries(numericKeys.map((k) => [k, String(w.settings[k])])) : {},
    ordered: w?.settings.ordered ?? false,
  };
}

/** The values of a submitted form, shown again as typed. */
export function valuesFromForm(f: EndpointForm): EndpointValues {
  return {
    url: f.url,
    description: f.description,
    events: f.events,
    patterns: f.patterns,
    headers: f.headers,
    notificationEmail: f.notificationEmail ?? "",
    settings: Object.fromEntries(numericKeys.map((k) => [k, f[k] ?? ""])),
    ordered: f.ordered === "on",
  };
}

/** `Name: value` lines → a header record (the API validates names and values). */
function parseHeaders(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    if (!line.trim()) continue;
    const i = line.indexOf(":");
    if (i <= 0) out[line.trim()] = "";
    else out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

/** The subscriptions a form asks for: the checked entries, then the typed patterns. */
const eventsOf = (checked: string[], patterns: string) => [
  ...checked,
  ...patterns
    .split(/[\s,]+/)
    .map((p) => p.trim())
    .filter(Boolean),
];

/** Typed text → a number when it reads as one; anything else goes as text, for the API to refuse. */
const numberOr = (s: string): number | string => (/^-?\d+(\.\d+)?$/.test(s.trim()) ? Number(s) : s.trim());

/**
 * The `/v1` body of a submitted form. Create (`current` absent): only the settings filled in.
 * Edit: only the settings that differ from the endpoint's effective ones, an emptied field as
 * `null` (back to the platform default), so saving an untouched form pins no default.
 */
export function endpointBody(f: EndpointForm, current?: Webhook) {
  const settings: Record<string, unknown> = {};
  for (const k of numericKeys) {
    const typed = f[k]?.trim();
    if (typed === undefined || (typed === "" && !current)) continue;
    const value = typed === "" ? null : numberOr(typed);
    if (!current || value !== current.settings[k]) settings[k] = value;
  }
  const ordered = f.ordered === "on";
  if (current ? ordered !== current.settings.ordered : ordered) settings.ordered = ordered || null;
  const email = f.notificationEmail?.trim();
  return {
    url: f.url,
    description: f.description,
    events: eventsOf(f.events, f.patterns),
    headers: parseHeaders(f.headers),
    settings,
    ...(email ? { notificationEmail: email } : current && email === "" ? { notificationEmail: null } : {}),
  };
}

/** A refusal of the form: the API's (or the form's own) status, code, message and field issues. */
export interface Refusal {
  status: ClientErrorStatusCode;
  code: string;
  message: string;
  issues: { path: string; message: string }[];
}

/** The refusal in a 4xx `ApiError` or the form's `ValidationError`; undefined for anything else. */
export function refusalOf(err: unknown): Refusal | undefined {
  if (!(err instanceof ApiError || err instanceof ValidationError) || err.status >= 500) return undefined;
  const issues = (err.details as { issues?: { path?: unknown; message?: unknown }[] } | undefined)?.issues ?? [];
  return {
    status: err.status as ClientErrorStatusCode,
    code: err.code,
    message: err.message,
    issues: issues.map((i) => ({ path: String(i.path ?? ""), message: String(i.message ?? "") })),
  };
}

const topFields = ["url", "description", "headers", "notificationEmail"];

/**
 * The field an issue path names (`settings.maxAttempts` → `maxAttempts`, `headers.X-A` →
 * `headers`, `events.3` → `patterns` when the 4th pattern was typed there), with what the message
 * should add (the header name, the pattern); undefined when no field fits (then only the summary).
 */
function fieldOf(path: string, sent: string[], checked: number): { field: string; about?: string } | undefined {
  const [head = "", ...rest] = path.split(".");
  if (head === "settings") return rest[0] && rest[0] in settingsShape ? { field: rest[0] } : undefined;
  if (head === "events") {
    const i = Number(rest[0]);
    if (Number.isInteger(i) && sent[i] !== undefined)
      return { field: i < checked ? "events" : "patterns", about: sent[i] };
    return { field: "events" };
  }
  if (topFields.includes(head)) return { field: head, ...(rest.length ? { about: rest.join(".") } : {}) };
  return undefined;
}

/** A refusal laid out for the form: messages per field, and every line for the summary. */
interface FormErrors {
  byField: Map<string, string[]>;
  summary: { field?: string; text: string }[];
  message: string;
  code: string;
}

function errorsOf(r: Refusal, values: EndpointValues): FormErrors {
  const sent = eventsOf(values.events, values.patterns);
  const byField = new Map<string, string[]>();
  const summary: FormErrors["summary"] = [];
  for (const i of r.issues) {
    const at = fieldOf(i.path, sent, values.events.length);
    const text = at?.about ? `${at.about}: ${i.message}` : i.message;
    if (at) byField.set(at.field, [...(byField.get(at.field) ?? []), text]);
    summary.push(at ? { field: at.field, text } : { text: i.path ? `${i.path}: ${text}` : text });
  }
  return { byField, summary, message: r.message, code: r.code };
}

const fieldLabels: Record<string, string> = {
  url: "Endpoint URL",
  description: "Description",
  events: "Event types",
  patterns: "Other patterns",
  headers: "Custom headers",
  notificationEmail: "Notification e-mail",
  ordered: "Ordered delivery",
  ...Object.fromEntries(numericKeys.map((k) => [k, settingFields[k].label])),
};

/** One labelled field with its help line and, after a refusal, its error (all tied by aria-describedby). */
function Field(props: {
  id: string;
  name: string;
  label: string;
  help?: string;
  errors?: string[];
  input: (a: { id: string; name: string; "aria-describedby"?: string; "aria-invalid"?: "true" }) => Child;
}) {
  const help = props.help ? `${props.id}-help` : undefined;
  const error = props.errors?.length ? `${props.id}-error` : undefined;
  const describedby = [error, help].filter(Boolean).join(" ") || undefined;
  return (
    <div class="field">
      <label for={props.id}>{props.label}</label>
      {props.input({
        id: props.id,
        name: props.name,
        ...(describedby ? { "aria-describedby": describedby } : {}),
        ...(error ? { "aria-invalid": "true" as const } : {}),
      })}
      {props.help ? (
        <p id={help} class="help">
          {props.help}
        </p>
      ) : null}
      {error ? (
        <p id={error} class="field-error">
          {props.errors!.join("; ")}
        </p>
      ) : null}
    </div>
  );
}

/**
 * The endpoint form's fields: URL, description, event types (catalog checkboxes and patterns),
 * custom headers, notification address and every per-endpoint setting; after a refusal, a summary
 * (focused, announced) linking to each field it names, and each field's own message.
 */
export function EndpointFields(props: {
  types: EventType[];
  values: EndpointValues;
  prefix: string;
  /** Edit: an emptied setting means "back to the default". */
  editing?: boolean;
  refusal?: Refusal;
}) {
  const v = props.values;
  const id = (n: string) => `${props.prefix}-${n}`;
  const errs = props.refusal ? errorsOf(props.refusal, v) : undefined;
  const errors = (n: string) => errs?.byField.get(n);
  const chosen = new Set(v.events);
  const eventErrors = errors("events");
  const orderedErrors = errors("ordered");
  return (
    <>
      {errs ? (
        <div id={id("errors")} class="flash error" role="alert" tabindex={-1} autofocus>
          <p>
            <code>{errs.code}</code> {errs.message}
          </p>
          {errs.summary.length ? (
            <ul>
              {errs.summary.map((s) => (
                <li>{s.field ? <a href={`#${id(s.field)}`}>{`${fieldLabels[s.field]}: ${s.text}`}</a> : s.text}</li>
              ))}
            </ul>
          ) : null}
        </div>
      ) : null}
      <Field
        id={id("url")}
        name="url"
        label={fieldLabels.url!}
        errors={errors("url")}
        input={(a) => <input {...a} type="url" required value={v.url} placeholder="https://example.com/hook" />}
      />
      <Field
        id={id("description")}
        name="description"
        label={fieldLabels.description!}
        errors={errors("description")}
        input={(a) => <input {...a} value={v.description} />}
      />
      <fieldset class="types" id={id("events")} aria-describedby={eventErrors ? id("events-error") : undefined}>
        <legend>{fieldLabels.events}</legend>
        {eventErrors ? (
          <p id={id("events-error")} class="field-error">
            {eventErrors.join("; ")}
          </p>
        ) : null}
        <label class="check">
          <input type="checkbox" name="events" value="*" checked={chosen.has("*")} /> <code>*</code> every event
        </label>
        {props.types.map((t) => (
          <label class="check" title={t.description}>
            <input type="checkbox" name="events" value={t.type} checked={chosen.has(t.type)} /> <code>{t.type}</code>
          </label>
        ))}
        <Field
          id={id("patterns")}
          name="patterns"
          label={`${fieldLabels.patterns} (e.g. team.*), comma-separated`}
          errors={errors("patterns")}
          input={(a) => <input {...a} value={v.patterns} />}
        />
      </fieldset>
      <Field
        id={id("headers")}
        name="headers"
        label={`${fieldLabels.headers}, one "Name: value" per line`}
        errors={errors("headers")}
        input={(a) => (
          <textarea {...a} rows={3}>
            {v.headers}
          </textarea>
        )}
      />
      <Field
        id={id("notificationEmail")}
        name="notificationEmail"
        label={fieldLabels.notificationEmail!}
        help="Told when the endpoint is disabled automatically; empty: the e-mail of the token that registered it."
        errors={errors("notificationEmail")}
        input={(a) => <input {...a} type="email" autocomplete="email" value={v.notificationEmail} />}
      />
      <p class="help">
        Delivery settings: {props.editing ? "empty a field to return it to" : "an empty field keeps"} the platform
        default.
      </p>
      {settingGroups.map((g) => (
        <fieldset class="fields">
          <legend>{g.legend}</legend>
          {g.keys.map((k) => (
            <Field
              id={id(k)}
              name={k}
              label={settingFields[k].label}
              help={rangeOf(k)}
              errors={errors(k)}
              input={(a) => (
                <input
                  {...a}
                  inputmode="numeric"
                  autocomplete="off"
                  placeholder={props.editing ? undefined : "default"}
                  value={v.settings[k] ?? ""}
                />
              )}
            />
          ))}
          {g.legend === settingFields.timeoutMs.group ? (
            <div class="field">
              <label class="check" for={id("ordered")}>
                <input
                  id={id("ordered")}
                  type="checkbox"
                  name="ordered"
                  checked={v.ordered}
                  aria-describedby={orderedErrors ? id("ordered-error") : undefined}
                  aria-invalid={orderedErrors ? "true" : undefined}
                />{" "}
                Ordered delivery (one at a time, strictly in sequence)
              </label>
              {orderedErrors ? (
                <p id={id("ordered-error")} class="field-error">
                  {orderedErrors.join("; ")}
                </p>
              ) : null}
            </div>
          ) : null}
        </fieldset>
      ))}
    </>
  );
}

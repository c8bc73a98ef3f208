// Runs under Deno: the Worker's Hono app answers without any Cloudflare runtime.
import { app } from "../src/app.ts";

const health = await app.request("/healthz");
const doc = await app.request("/openapi.json", {}, {});
const spec = (await doc.json()) as { openapi?: string };
if (health.status !== 200 || spec.openapi !== "3.1.0") {
  console.error(
    `deno smoke failed: /healthz ${health.status}, /openapi.json ${doc.status} ${JSON.stringify(spec).slice(0, 200)}`,
  );
  Deno.exit(1);
}
console.log("deno smoke: /healthz 200, /openapi.json 3.1.0");

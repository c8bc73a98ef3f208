import { createServer } from "node:http";
import type { IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import type { Behaviour } from "./receiver-behaviour.ts";

/**
 * A real local HTTP receiver for webhook tests. Each hook path (`/hooks/<name>`) answers by a
 * script the test sets through `POST /__control/<name>`: a list of behaviours consumed one per
 * request, then a default. `GET /__control/<name>` returns what was received and the peak number
 * of requests in flight at once.
 */

interface Hook {
  script: Behaviour[];
  otherwise: Behaviour;
  requests: { headers: IncomingHttpHeaders; body: string; receivedAt: number }[];
  inFlight: number;
  maxInFlight: number;
}

/** A running receiver. */
export interface Receiver {
  url: string;
  close(): Promise<void>;
}

/** Starts the receiver on a free loopback port. */
export async function startReceiver(): Promise<Receiver> {
  const hooks = new Map<string, Hook>();
  const hook = (name: string) => {
    let h = hooks.get(name);
    if (!h)
      hooks.set(name, (h = { script: [], otherwise: { status: 200 }, requests: [], inFlight: 0, maxInFlight: 0 }));
    return h;
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://receiver");
      const body = Buffer.concat(chunks).toString("utf8");
      const [, kind, name] = url.pathname.split("/");
      if (kind === "__control" && name) {
        const h = hook(name);
        if (req.method === "POST") {
          const cfg = JSON.parse(body || "{}") as { script?: Behaviour[]; otherwise?: Behaviour; reset?: boolean };
          if (cfg.reset) Object.assign(h, { requests: [], maxInFlight: 0 });
          h.script = cfg.script ?? [];
          h.otherwise = cfg.otherwise ?? { status: 200 };
          res.writeHead(204).end();
        } else {
          res
            .writeHead(200, { "content-type": "application/json" })
            .end(JSON.stringify({ requests: h.requests, maxInFlight: h.maxInFlight }));
        }
        return;
      }
      if (kind !== "hooks" || !name) return void res.writeHead(404).end();
      const h = hook(name);
      h.requests.push({ headers: req.headers, body, receivedAt: Date.now() });
      h.inFlight += 1;
      h.maxInFlight = Math.max(h.maxInFlight, h.inFlight);
      const b = h.script.shift() ?? h.otherwise;
      const done = () => (h.inFlight -= 1);
      setTimeout(() => {
        if (b.mode === "reset") {
          done();
          return void req.socket.destroy();
        }
        if (b.mode === "garbage") {
          done();
          req.socket.end("this is not HTTP\r\n\r\n");
          return;
        }
        res.writeHead(b.status ?? 200, { "content-type": "text/plain", ...b.headers });
        if (b.mode === "slow-body") {
          res.write("partial ");
          const timer = setInterval(() => res.write("."), 200);
          res.on("close", () => {
            clearInterval(timer);
            done();
          });
          setTimeout(() => {
            clearInterval(timer);
            res.end("end");
            done();
          }, 10_000);
          return;
        }
        res.end(b.body ?? "ok");
        done();
      }, b.delayMs ?? 0);
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

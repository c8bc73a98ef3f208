import { neonConfig } from "@neondatabase/serverless";
import { afterEach, describe, expect, it } from "vitest";
import { createDb } from "../../../src/platform/db.ts";
import { ServiceUnavailableError } from "../../../src/platform/errors.ts";

/**
 * A WebSocket as the Neon driver sees one when Postgres is unreachable: the local proxy accepts it
 * and closes it at once (its TCP connect failed), the close arriving right behind the handshake —
 * before the driver's coalesced write of the startup message goes out on its timer. workerd
 * throws "Can't call WebSocket send() after close()." from a `send` then — in that timer, so an
 * uncaught exception in the Worker's log; here it is counted.
 */
class PeerClosingWebSocket extends EventTarget {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  static sentAfterClose = 0;
  binaryType = "blob";
  readyState = PeerClosingWebSocket.CONNECTING;

  constructor(readonly url: string) {
    super();
    setTimeout(() => {
      this.readyState = PeerClosingWebSocket.OPEN;
      this.dispatchEvent(new Event("open"));
      this.closed(); // the proxy's close frame, right behind the handshake
    }, 1);
  }

  send(_data: unknown): void {
    if (this.readyState >= PeerClosingWebSocket.CLOSING) PeerClosingWebSocket.sentAfterClose++;
  }

  close(): void {
    if (this.readyState < PeerClosingWebSocket.CLOSING) this.readyState = PeerClosingWebSocket.CLOSING;
    setTimeout(() => this.closed(), 1);
  }

  private closed(): void {
    if (this.readyState === PeerClosingWebSocket.CLOSED) return;
    this.readyState = PeerClosingWebSocket.CLOSED;
    this.dispatchEvent(new Event("close"));
  }
}

describe("createDb over a WebSocket the server side closes (Postgres unreachable)", () => {
  afterEach(() => {
    neonConfig.webSocketConstructor = undefined;
  });

  it("answers 503 and never sends on the closed socket", async () => {
    neonConfig.webSocketConstructor = PeerClosingWebSocket;
    PeerClosingWebSocket.sentAfterClose = 0;
    const db = createDb({ databaseUrl: "postgres://nobody:x@127.0.0.1:1/none", databaseWsProxy: "127.0.0.1:9" });
    for (let i = 0; i < 3; i++) {
      const err = await db.query("select 1").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ServiceUnavailableError);
    }
    await expect(db.transaction((tx) => tx.query("select 1"))).rejects.toBeInstanceOf(ServiceUnavailableError);
    await db.end();
    await new Promise((r) => setTimeout(r, 50)); // the driver's coalesced writes go out on a timer
    expect(PeerClosingWebSocket.sentAfterClose).toBe(0);
  });
});

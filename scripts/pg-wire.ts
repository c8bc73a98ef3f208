/**
 * Just enough of the Postgres wire protocol for the local proxy to pool sessions (see
 * `ws-proxy.ts`): message framing of both directions, the startup packet, and when a session is
 * idle. Nothing here looks inside queries or results.
 */

/** The protocol-3.0 code a StartupMessage carries (SSLRequest, CancelRequest and GSS use others). */
export const PROTOCOL_3 = 196_608;

/** Length of the first packet (a startup-phase packet has no type byte), once 4 bytes are in. */
export function startupPacketLength(b: Buffer): number | undefined {
  return b.length >= 4 ? b.readInt32BE(0) : undefined;
}

/** Whether a complete first packet is a protocol-3.0 StartupMessage (not SSL, GSS or a cancel). */
export const isStartupMessage = (packet: Buffer): boolean => packet.length >= 8 && packet.readInt32BE(4) === PROTOCOL_3;

/** A simple-protocol Query message. */
export function queryMessage(sql: string): Buffer {
  const text = Buffer.from(`${sql}\0`, "utf8");
  const m = Buffer.alloc(5 + text.length);
  m.write("Q", 0, "latin1");
  m.writeInt32BE(4 + text.length, 1);
  text.copy(m, 5);
  return m;
}

/** The Terminate message. */
export const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);

/**
 * Splits a byte stream of typed messages (`type`, int32 length, body) as chunks arrive, across
 * chunk boundaries, without copying what it does not keep: `onMessage` gets each message's type
 * and — when `want(type)` — its whole bytes (large DataRows and Binds pass by uncopied).
 */
export class MessageReader {
  private readonly header = Buffer.alloc(5);
  private headerLength = 0;
  private remaining = 0;
  private type = "";
  private parts: Buffer[] | null = null;

  private readonly onMessage: (type: string, message: Buffer | null) => void;
  private readonly want: (type: string) => boolean;

  constructor(onMessage: (type: string, message: Buffer | null) => void, want: (type: string) => boolean = () => true) {
    this.onMessage = onMessage;
    this.want = want;
  }

  /** Feeds the next chunk of the stream. */
  push(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.headerLength < 5) {
        const n = Math.min(5 - this.headerLength, chunk.length - i);
        chunk.copy(this.header, this.headerLength, i, i + n);
        this.headerLength += n;
        i += n;
        if (this.headerLength < 5) return;
        this.type = String.fromCharCode(this.header[0]!);
        this.remaining = this.header.readInt32BE(1) - 4;
        this.parts = this.want(this.type) ? [Buffer.from(this.header)] : null;
      }
      const n = Math.min(this.remaining, chunk.length - i);
      if (n > 0) this.parts?.push(Buffer.from(chunk.subarray(i, i + n)));
      this.remaining -= n;
      i += n;
      if (this.remaining === 0) {
        const message = this.parts ? Buffer.concat(this.parts) : null;
        this.headerLength = 0;
        this.parts = null;
        this.onMessage(this.type, message);
      }
    }
  }

  /** Whether the stream stopped mid-message. */
  get partial(): boolean {
    return this.headerLength > 0;
  }
}

/**
 * One pooled server session's protocol state, fed whole messages of both directions: the greeting
 * it answered its first client with, and whether it is idle — every Sync and simple Query has had
 * its ReadyForQuery, the last one said "idle" (no transaction open), and the client's last message
 * ended a request. Only an idle session may be reset and handed to another client.
 */
export class SessionState {
  /** `greeting` until the first ReadyForQuery, then `session`; `reset` while DISCARD ALL runs. */
  phase: "greeting" | "session" | "reset" = "greeting";
  /**
   * The server let the client in without any authentication exchange: a session that needed a
   * password is never handed to a client that did not give one.
   */
  poolable = true;
  private readonly greetingParts: Buffer[] = [];
  private outstanding = 0;
  private status = "I";
  private lastClient = "";
  private resetFailed = false;

  /** Which server messages the state needs whole (the rest pass by uncopied). */
  wants = (type: string): boolean => this.phase === "greeting" || type === "Z";

  /** A message from the client (after its StartupMessage). */
  client(type: string): void {
    if (type === "S" || type === "Q") this.outstanding++;
    this.lastClient = type;
  }

  /**
   * A message from the server; returns true when it ends a phase (the greeting, or the reset).
   */
  server(type: string, m: Buffer | null): boolean {
    if (this.phase === "greeting") {
      if (!m) throw new Error("the greeting is read whole");
      if (this.greetingParts.length === 0 && (type !== "R" || m.readInt32BE(5) !== 0)) this.poolable = false;
      if (type === "E") this.poolable = false;
      this.greetingParts.push(m);
      if (type !== "Z") return false;
      this.phase = "session";
      return true;
    }
    if (type === "E" && this.phase === "reset") this.resetFailed = true;
    if (type !== "Z") return false;
    this.outstanding--;
    if (m) this.status = String.fromCharCode(m[5]!);
    return this.phase === "reset";
  }

  /** What a client of the reused session is sent: AuthenticationOk, ParameterStatus…, BackendKeyData, ReadyForQuery. */
  get greeting(): Buffer {
    return Buffer.concat(this.greetingParts);
  }

  /** Idle between requests, outside a transaction: safe to reset and reuse. */
  get idle(): boolean {
    return (
      this.poolable &&
      this.phase === "session" &&
      this.outstanding === 0 &&
      this.status === "I" &&
      (this.lastClient === "" || this.lastClient === "S" || this.lastClient === "Q" || this.lastClient === "X")
    );
  }

  /** Starts the reset (the caller sends {@link RESET}); a session reused after it is as new. */
  beginReset(): void {
    this.phase = "reset";
    this.outstanding = 1;
    this.lastClient = "";
  }

  /** The reset finished cleanly: the session is idle and as a new one. */
  get resetOk(): boolean {
    return !this.resetFailed && this.outstanding === 0 && this.status === "I";
  }

  /** Hands the reset session to a new client. */
  reuse(): void {
    this.phase = "session";
  }
}

/** What a session runs between two clients: as a new session (prepared statements, settings, temporary tables, locks, LISTENs gone). */
export const RESET = queryMessage("DISCARD ALL");

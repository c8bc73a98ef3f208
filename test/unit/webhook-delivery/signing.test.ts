import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import {
  generateSecret,
  secretKey,
  sign,
  signAll,
  signPayload,
  verify,
  verifySignature,
  verifyWebhook,
} from "../../../src/webhooks/signing.ts";

// The reference vector of the Standard Webhooks spec and its libraries' test suites.
const VECTOR = {
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  msgId: "msg_p5jXN8AQM9LWM0D4loKWxJek",
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
};
const atVector = { now: VECTOR.timestamp };

const nowSeconds = () => Math.floor(Date.now() / 1000);

function randomBody(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(48));
  return JSON.stringify({ id: crypto.randomUUID(), blob: btoa(String.fromCharCode(...bytes)) });
}

const BODIES = [
  "",
  '{"type":"team.created","data":{"name":"Zoë & Søren"}}',
  "héllo wörld 🌍 日本語 \u0000 \u2028 end",
  '{\n  "pretty": true,\n  "emoji": "🚀"\n}',
  "x".repeat(10_000),
  randomBody(),
  randomBody(),
];

/** Flips one base64 character of the first signature entry. */
function tamper(sig: string): string {
  const i = sig.indexOf(",") + 3;
  return sig.slice(0, i) + (sig[i] === "A" ? "B" : "A") + sig.slice(i + 1);
}

describe("Standard Webhooks reference vector", () => {
  it("reproduces the spec's signature exactly", async () => {
    expect(await sign(VECTOR.msgId, VECTOR.timestamp, VECTOR.body, VECTOR.secret)).toBe(VECTOR.signature);
  });

  it("verifies the spec's signature", async () => {
    expect(await verify(VECTOR.msgId, VECTOR.timestamp, VECTOR.body, VECTOR.signature, VECTOR.secret, atVector)).toBe(
      true,
    );
  });

  it("the official library produces the same vector", () => {
    const official = new Webhook(VECTOR.secret).sign(VECTOR.msgId, new Date(VECTOR.timestamp * 1000), VECTOR.body);
    expect(official).toBe(VECTOR.signature);
  });

  it("keys on the base64-decoded secret, not its text", () => {
    const key = secretKey(VECTOR.secret);
    expect(key).toBeInstanceOf(Uint8Array);
    expect(key.length).toBe(24);
    expect(btoa(String.fromCharCode(...key))).toBe(VECTOR.secret.slice("whsec_".length));
  });
});

describe("interoperability with the official standardwebhooks library", () => {
  it.each(BODIES.map((b, i) => [i, b] as const))(
    "body #%i: our signature verifies with Webhook.verify",
    async (_i, body) => {
      const secret = generateSecret();
      const msgId = `msg_${crypto.randomUUID()}`;
      const ts = nowSeconds();
      const headers = {
        "webhook-id": msgId,
        "webhook-timestamp": String(ts),
        "webhook-signature": await sign(msgId, ts, body, secret),
      };
      expect(() => new Webhook(secret).verify(body, headers, { jsonParse: false })).not.toThrow();
    },
  );

  it.each(BODIES.map((b, i) => [i, b] as const))("body #%i: Webhook.sign verifies with ours", async (_i, body) => {
    const secret = generateSecret();
    const msgId = `msg_${crypto.randomUUID()}`;
    const ts = nowSeconds();
    const signature = new Webhook(secret).sign(msgId, new Date(ts * 1000), body);
    expect(await verify(msgId, ts, body, signature, secret)).toBe(true);
    expect(
      await verifyWebhook(
        { "Webhook-Id": msgId, "Webhook-Timestamp": String(ts), "Webhook-Signature": signature },
        body,
        secret,
      ),
    ).toBe(true);
  });

  it("the official library rejects our signature under another secret", async () => {
    const ts = nowSeconds();
    const headers = {
      "webhook-id": "msg_1",
      "webhook-timestamp": String(ts),
      "webhook-signature": await sign("msg_1", ts, "{}", generateSecret()),
    };
    expect(() => new Webhook(generateSecret()).verify("{}", headers)).toThrow();
  });

  it("the official library accepts a rotation header signed with both secrets", async () => {
    const [a, b] = [generateSecret(), generateSecret()];
    const ts = nowSeconds();
    const headers = {
      "webhook-id": "msg_rot",
      "webhook-timestamp": String(ts),
      "webhook-signature": await signAll("msg_rot", ts, "{}", [a, b]),
    };
    expect(new Webhook(a).verify("{}", headers)).toEqual({});
    expect(new Webhook(b).verify("{}", headers)).toEqual({});
  });
});

describe("verify rejects", () => {
  const { secret, msgId, timestamp: ts, body, signature } = VECTOR;

  it.each([
    ["a tampered body", msgId, ts, '{"test": 2432232315}', signature, secret],
    ["a tampered msg id", "msg_p5jXN8AQM9LWM0D4loKWxJeK", ts, body, signature, secret],
    ["a tampered timestamp", msgId, ts + 1, body, signature, secret],
    ["a tampered signature", msgId, ts, body, tamper(signature), secret],
    ["a wrong secret", msgId, ts, body, signature, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx"],
    ["an empty signature header", msgId, ts, body, "", secret],
    ["a garbage signature header", msgId, ts, body, "not a signature", secret],
    ["a v1 entry with no signature", msgId, ts, body, "v1,", secret],
    ["a v1 entry that is not base64", msgId, ts, body, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE!", secret],
    ["a truncated signature", msgId, ts, body, signature.slice(0, -4), secret],
    ["the signature without its version", msgId, ts, body, signature.slice(3), secret],
    ["the right signature under an unknown version only", msgId, ts, body, signature.replace("v1,", "v2,"), secret],
    ["the right signature under a look-alike version", msgId, ts, body, signature.replace("v1,", "v1a,"), secret],
    ["a comma-separated list (must be spaces)", msgId, ts, body, `v1,AAAA,${signature}`, secret],
    ["an empty msg id", "", ts, body, signature, secret],
    ["a fractional timestamp", msgId, ts + 0.5, body, signature, secret],
    ["a NaN timestamp", msgId, Number.NaN, body, signature, secret],
  ] as const)("%s", async (_case, id, t, b, sig, sec) => {
    expect(await verify(id, t, b, sig, sec, atVector)).toBe(false);
  });

  it("timestamps older or newer than the tolerance, accepting the edges", async () => {
    const at = (now: number, toleranceSeconds?: number) =>
      verify(msgId, ts, body, signature, secret, { now, toleranceSeconds });
    expect(await at(ts + 300)).toBe(true);
    expect(await at(ts - 300)).toBe(true);
    expect(await at(ts + 301)).toBe(false); // stale
    expect(await at(ts - 301)).toBe(false); // from the future
    expect(await at(ts + 3600, 3600)).toBe(true);
    expect(await at(ts + 1, 0)).toBe(false);
    expect(await at(ts, -1)).toBe(false);
    expect(await at(ts, Number.NaN)).toBe(false);
  });

  it("uses the wall clock by default", async () => {
    const t = nowSeconds();
    const fresh = await sign("msg_now", t, "{}", secret);
    expect(await verify("msg_now", t, "{}", fresh, secret)).toBe(true);
    const stale = await sign("msg_old", t - 301, "{}", secret);
    expect(await verify("msg_old", t - 301, "{}", stale, secret)).toBe(false);
    const future = await sign("msg_new", t + 301, "{}", secret);
    expect(await verify("msg_new", t + 301, "{}", future, secret)).toBe(false);
  });

  it("malformed secrets: sign throws, verify returns false", async () => {
    for (const bad of [
      "",
      "whsec_",
      "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
      "whsec_not base64!",
      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w",
    ]) {
      expect(() => secretKey(bad)).toThrow(TypeError);
      await expect(sign(msgId, ts, body, bad)).rejects.toThrow(TypeError);
      expect(await verify(msgId, ts, body, signature, bad, atVector)).toBe(false);
    }
  });

  it("never throws on non-string input from untyped callers", async () => {
    const loose = verify as (...args: unknown[]) => Promise<boolean>;
    expect(await loose(undefined, ts, body, signature, secret, atVector)).toBe(false);
    expect(await loose(msgId, ts, body, null, secret, atVector)).toBe(false);
    expect(await loose(msgId, ts, body, signature, 42, atVector)).toBe(false);
  });

  it("sign refuses a non-integer timestamp or empty msg id", async () => {
    await expect(sign(msgId, 1.5, body, secret)).rejects.toThrow(RangeError);
    await expect(sign("", ts, body, secret)).rejects.toThrow(TypeError);
  });
});

describe("signature lists", () => {
  const { secret, msgId, timestamp: ts, body, signature } = VECTOR;

  it.each([
    ["a matching entry after unknown versions", `v2,${signature.slice(3)} v1a,xyz ${signature}`],
    ["a matching entry after a non-matching v1", `${tamper(signature)} ${signature}`],
    ["a matching entry before garbage", `${signature} v1,!!! junk`],
    ["leading and trailing whitespace", `  ${signature}\t`],
    ["several spaces, tabs and newlines between entries", `v1,AAAA   \t ${signature}\n v2,BBBB`],
  ])("accepts %s", async (_case, header) => {
    expect(await verify(msgId, ts, body, header, secret, atVector)).toBe(true);
  });

  it("signAll signs with each secret in order, each entry verifying under its own secret", async () => {
    const [oldSecret, newSecret] = [generateSecret(), generateSecret()];
    const header = await signAll(msgId, ts, body, [oldSecret, newSecret]);
    const entries = header.split(" ");
    expect(entries).toHaveLength(2);
    expect(entries[0]).toBe(await sign(msgId, ts, body, oldSecret));
    expect(entries[1]).toBe(await sign(msgId, ts, body, newSecret));
    expect(await verify(msgId, ts, body, entries[0] ?? "", oldSecret, atVector)).toBe(true);
    expect(await verify(msgId, ts, body, entries[1] ?? "", newSecret, atVector)).toBe(true);
    expect(await verify(msgId, ts, body, entries[0] ?? "", newSecret, atVector)).toBe(false);
    expect(await verify(msgId, ts, body, header, oldSecret, atVector)).toBe(true);
    expect(await verify(msgId, ts, body, header, newSecret, atVector)).toBe(true);
    expect(await verify(msgId, ts, body, header, generateSecret(), atVector)).toBe(false);
  });

  it("signAll with one secret equals sign, and refuses none", async () => {
    expect(await signAll(msgId, ts, body, [secret])).toBe(signature);
    await expect(signAll(msgId, ts, body, [])).rejects.toThrow(RangeError);
  });
});

describe("verifyWebhook", () => {
  const { secret, msgId, timestamp: ts, body, signature } = VECTOR;
  const good = { "webhook-id": msgId, "webhook-timestamp": String(ts), "webhook-signature": signature };

  it("reads a Headers object and a record, case-insensitively", async () => {
    expect(await verifyWebhook(new Headers(good), body, secret, atVector)).toBe(true);
    expect(
      await verifyWebhook(
        { "WEBHOOK-ID": msgId, "Webhook-Timestamp": String(ts), "webhook-Signature": signature },
        body,
        secret,
        atVector,
      ),
    ).toBe(true);
  });

  it.each(["webhook-id", "webhook-timestamp", "webhook-signature"] as const)(
    "returns false without %s",
    async (name) => {
      const { [name]: _dropped, ...rest } = good;
      expect(await verifyWebhook(rest, body, secret, atVector)).toBe(false);
      expect(await verifyWebhook(new Headers(rest), body, secret, atVector)).toBe(false);
      expect(await verifyWebhook({ ...rest, [name]: undefined }, body, secret, atVector)).toBe(false);
    },
  );

  it.each(["1614265330.0", "1614265330.5", "1.61426533e9", "-1614265330", "0x6036c3f2", "", "now", "1".repeat(16)])(
    "returns false for timestamp header %j",
    async (value) => {
      expect(await verifyWebhook({ ...good, "webhook-timestamp": value }, body, secret, atVector)).toBe(false);
    },
  );

  it("tolerates whitespace around header values (Headers trims them too)", async () => {
    expect(
      await verifyWebhook(
        { ...good, "webhook-timestamp": ` ${ts} `, "webhook-id": ` ${msgId}` },
        body,
        secret,
        atVector,
      ),
    ).toBe(true);
  });

  it("rejects a tampered raw body", async () => {
    expect(await verifyWebhook(good, `${body} `, secret, atVector)).toBe(false);
  });
});

describe("generateSecret", () => {
  it("is whsec_ + padded base64 of 32 random bytes, unique per call", () => {
    const secrets = Array.from({ length: 50 }, generateSecret);
    for (const s of secrets) {
      expect(s).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(secretKey(s).length).toBeGreaterThanOrEqual(24);
      expect(secretKey(s).length).toBe(32);
    }
    expect(new Set(secrets).size).toBe(secrets.length);
  });

  it("is accepted by the official library", () => {
    expect(() => new Webhook(generateSecret())).not.toThrow();
  });
});

describe("seed API: signPayload / verifySignature", () => {
  const secret = VECTOR.secret;
  const ts = VECTOR.timestamp;
  const payload = { id: "evt_123", type: "team.created", data: { name: "Ünïcode ✓" } };

  it("signs JSON.stringify(payload) under payload.id", async () => {
    const sig = await signPayload(payload, secret, ts);
    expect(sig).toBe(await sign("evt_123", ts, JSON.stringify(payload), secret));
    expect(await verify("evt_123", ts, JSON.stringify(payload), sig, secret, { now: ts })).toBe(true);
  });

  it("takes a string payload as the raw body and reads its id from the JSON", async () => {
    const sig = await signPayload(VECTOR.body.replace("{", '{"id": "msg_x", '), secret, ts);
    expect(sig).toBe(await sign("msg_x", ts, '{"id": "msg_x", "test": 2432232314}', secret));
    const raw = '{ "id" : "evt_123", "spacing":  "kept" }';
    expect(await signPayload(raw, secret, ts)).toBe(await sign("evt_123", ts, raw, secret));
  });

  it.each([
    ["no id", { type: "x" }],
    ["a numeric id", { id: 7 }],
    ["an empty id", { id: "" }],
    ["null", null],
    ["undefined", undefined],
    ["a string without JSON", "not json"],
    ["a JSON string without an id", '{"type":"x"}'],
    ["a JSON array", '[{"id":"a"}]'],
  ])("signPayload throws for %s", async (_case, bad) => {
    await expect(signPayload(bad, secret, ts)).rejects.toThrow(TypeError);
  });

  it("verifySignature round-trips and honours the tolerance parameter", async () => {
    const now = nowSeconds();
    const sig = await signPayload(payload, secret, now);
    expect(await verifySignature(payload, sig, secret, now)).toBe(true);
    expect(await verifySignature(JSON.stringify(payload), sig, secret, now)).toBe(true);
    expect(await verifySignature({ ...payload, type: "team.deleted" }, sig, secret, now)).toBe(false);

    const oldTs = now - 1000;
    const oldSig = await signPayload(payload, secret, oldTs);
    expect(await verifySignature(payload, oldSig, secret, oldTs)).toBe(false); // default 300
    expect(await verifySignature(payload, oldSig, secret, oldTs, 1200)).toBe(true);
    expect(await verifySignature(payload, oldSig, secret, oldTs, 900)).toBe(false);
  });

  it("verifySignature returns false instead of throwing for a payload without id", async () => {
    expect(await verifySignature({ type: "x" }, VECTOR.signature, secret, nowSeconds())).toBe(false);
    expect(await verifySignature("not json", VECTOR.signature, secret, nowSeconds())).toBe(false);
  });
});

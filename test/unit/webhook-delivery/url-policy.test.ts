import { describe, expect, it } from "vitest";
import { ValidationError } from "../../../src/platform/errors.ts";
import type { UrlPolicy, UrlVerdict } from "../../../src/webhooks/url-policy.ts";
import { assertWebhookUrl, checkWebhookUrl, isBlockedAddress } from "../../../src/webhooks/url-policy.ts";

const prod: UrlPolicy = { allowLocalHttp: false };
const local: UrlPolicy = { allowLocalHttp: true };

type Code = Extract<UrlVerdict, { ok: false }>["code"];

const codeOf = (raw: string, policy: UrlPolicy = prod): Code | "ok" => {
  const v = checkWebhookUrl(raw, policy);
  return v.ok ? "ok" : v.code;
};

describe("checkWebhookUrl: blocked hosts", () => {
  it.each([
    // IPv4 special-purpose ranges
    ["https://0.0.0.0/", "'this network' 0/8"],
    ["https://0.1.2.3/", "'this network' 0/8"],
    ["https://10.0.0.1/", "private 10/8"],
    ["https://10.255.255.255/", "private 10/8, top"],
    ["https://100.64.0.1/", "CGNAT 100.64/10"],
    ["https://100.100.100.200/", "CGNAT (Alibaba metadata)"],
    ["https://127.0.0.1/", "loopback"],
    ["https://127.255.255.254:8443/x", "loopback /8"],
    ["https://169.254.169.254/latest/meta-data", "link-local metadata"],
    ["https://169.254.0.1/", "link-local"],
    ["https://172.16.0.1/", "private 172.16/12"],
    ["https://172.31.255.255/", "private 172.16/12, top"],
    ["https://192.0.0.192/", "IETF 192.0.0/24 (Oracle metadata)"],
    ["https://192.0.2.10/", "TEST-NET-1"],
    ["https://192.168.1.1/", "private 192.168/16"],
    ["https://198.18.0.1/", "benchmarking 198.18/15"],
    ["https://198.19.255.255/", "benchmarking 198.18/15, top"],
    ["https://198.51.100.7/", "TEST-NET-2"],
    ["https://203.0.113.9/", "TEST-NET-3"],
    ["https://224.0.0.1/", "multicast"],
    ["https://239.255.255.250/", "multicast (SSDP)"],
    ["https://240.0.0.1/", "reserved 240/4"],
    ["https://255.255.255.255/", "broadcast"],
    // IPv4 in disguise: WHATWG URL normalises these to dotted quads
    ["https://2130706433/", "decimal loopback"],
    ["https://0x7f000001/", "hex loopback"],
    ["https://0177.0.0.1/", "octal loopback"],
    ["https://127.1/", "short-form loopback"],
    ["https://0x7f.1/", "hex short form"],
    ["https://0/", "zero"],
    ["https://127.0.0.1./", "trailing dot"],
    ["https://%31%32%37.0.0.1/", "percent-encoded"],
    ["https://１２７.０.０.１/", "full-width digits"],
    ["https://0xa9.0xfe.0xa9.0xfe/", "hex metadata"],
    // IPv6
    ["https://[::]/", "unspecified"],
    ["https://[::1]/", "loopback"],
    ["https://[0:0:0:0:0:0:0:1]/", "loopback, long form"],
    ["https://[fc00::1]/", "ULA fc00::/7"],
    ["https://[fd12:3456::1]/", "ULA fd"],
    ["https://[fd00:ec2::254]/", "AWS IMDS IPv6"],
    ["https://[fe80::1]/", "link-local"],
    ["https://[febf:ffff::1]/", "link-local, top"],
    ["https://[fec0::1]/", "site-local"],
    ["https://[ff02::1]/", "multicast"],
    ["https://[2001:db8::1]/", "documentation"],
    ["https://[100::1]/", "discard 100::/64"],
    // IPv6 forms embedding IPv4
    ["https://[::ffff:127.0.0.1]/", "IPv4-mapped loopback, dotted"],
    ["https://[::ffff:7f00:1]/", "IPv4-mapped loopback, hex"],
    ["https://[::ffff:a9fe:a9fe]/", "IPv4-mapped metadata"],
    ["https://[::ffff:10.1.2.3]/", "IPv4-mapped private"],
    ["https://[::ffff:0:127.0.0.1]/", "IPv4-translated loopback"],
    ["https://[::127.0.0.1]/", "IPv4-compatible loopback"],
    ["https://[::a00:1]/", "IPv4-compatible private"],
    ["https://[64:ff9b::a9fe:a9fe]/", "NAT64 metadata"],
    ["https://[64:ff9b::127.0.0.1]/", "NAT64 loopback"],
    ["https://[64:ff9b:1::1]/", "local-use NAT64"],
    ["https://[2002:a9fe:a9fe::]/", "6to4 metadata"],
    ["https://[2002:c0a8:101::1]/", "6to4 private"],
    ["https://[2001::1]/", "Teredo"],
    ["https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo, real-looking"],
    // Names
    ["https://localhost/", "localhost"],
    ["https://LOCALHOST:8443/", "localhost, upper case"],
    ["https://localhost./", "localhost, trailing dot"],
    ["https://ｌｏｃａｌｈｏｓｔ/", "localhost, full-width"],
    ["https://foo.localhost/", "*.localhost"],
    ["https://localhost.localdomain/", "localhost.localdomain"],
    ["https://ip6-localhost/", "ip6-localhost"],
    ["https://ip6-loopback/", "ip6-loopback"],
    ["https://printer.local/", "mDNS .local"],
    ["https://metadata.google.internal/computeMetadata/v1/", "GCP metadata"],
    ["https://metadata.google.internal./", "GCP metadata, trailing dot"],
    ["https://ip-10-0-0-1.ec2.internal/", "AWS internal DNS"],
    ["https://metadata/", "metadata"],
    ["https://instance-data/", "instance-data"],
    ["https://nas.home.arpa/", "home.arpa"],
    ["https://intranet/", "single label"],
    ["https://com./", "single label with trailing dot"],
  ])("%s is ssrf_blocked (%s)", (raw) => {
    const v = checkWebhookUrl(raw, prod);
    expect(v.ok).toBe(false);
    if (!v.ok) {
      expect(v.code).toBe("ssrf_blocked");
      expect(v.reason.length).toBeGreaterThan(0);
    }
  });
});

describe("checkWebhookUrl: schemes, credentials, shape", () => {
  it.each([
    ["http://example.com/hook", "insecure_scheme"],
    ["http://93.184.216.34/", "insecure_scheme"],
    ["ftp://example.com/", "insecure_scheme"],
    ["file:///etc/passwd", "insecure_scheme"],
    ["javascript:alert(1)", "insecure_scheme"],
    ["data:text/plain,hi", "insecure_scheme"],
    ["gopher://example.com:70/", "insecure_scheme"],
    ["ws://example.com/", "insecure_scheme"],
    ["https://user:pass@example.com/", "credentials"],
    ["https://user@example.com/", "credentials"],
    ["https://:token@example.com/", "credentials"],
    ["", "invalid_url"],
    ["not a url", "invalid_url"],
    ["/relative/path", "invalid_url"],
    ["https://", "invalid_url"],
    ["https://exa mple.com/", "invalid_url"],
    [" https://example.com/", "invalid_url"],
    ["https://example.com/\nx", "invalid_url"],
    [`https://example.com/${"a".repeat(2048)}`, "invalid_url"],
    ["https://999.1.1.1/", "invalid_url"],
    ["https://08.0.0.1/", "invalid_url"],
    ["https://a..b.example.com/", "invalid_url"],
    ["https://.example.com/", "invalid_url"],
    ["https://[fe80::1%25eth0]/", "invalid_url"],
    ["https://example.com:99999/", "invalid_url"],
  ] as const)("%s → %s", (raw, code) => {
    expect(codeOf(raw)).toBe(code);
  });

  it("accepts exactly 2048 characters", () => {
    const base = "https://hooks.example.com/";
    expect(codeOf(base + "a".repeat(2048 - base.length))).toBe("ok");
    expect(codeOf(base + "a".repeat(2049 - base.length))).toBe("invalid_url");
  });
});

describe("checkWebhookUrl: allowLocalHttp", () => {
  it.each([
    ["http://127.0.0.1:8080/hook", "ok", "insecure_scheme"],
    ["http://localhost:3000/hook", "ok", "insecure_scheme"],
    ["http://localhost.:3000/hook", "ok", "insecure_scheme"],
    ["http://[::1]:8080/", "ok", "insecure_scheme"],
    ["http://127.1.2.3/", "ok", "insecure_scheme"],
    ["https://127.0.0.1:8443/", "ok", "ssrf_blocked"],
    ["https://localhost/", "ok", "ssrf_blocked"],
    ["http://10.0.0.1/", "insecure_scheme", "insecure_scheme"],
    ["http://192.168.1.10:8080/", "insecure_scheme", "insecure_scheme"],
    ["http://169.254.169.254/", "insecure_scheme", "insecure_scheme"],
    ["http://example.com/", "insecure_scheme", "insecure_scheme"],
    ["http://foo.localhost/", "insecure_scheme", "insecure_scheme"],
    ["http://[::ffff:127.0.0.1]/", "insecure_scheme", "insecure_scheme"],
    ["https://10.0.0.1/", "ssrf_blocked", "ssrf_blocked"],
    ["http://user:pw@127.0.0.1:8080/", "credentials", "insecure_scheme"],
  ] as const)("%s → %s with allowLocalHttp, %s without", (raw, withLocal, withoutLocal) => {
    expect(codeOf(raw, local)).toBe(withLocal);
    expect(codeOf(raw, prod)).toBe(withoutLocal);
  });
});

describe("checkWebhookUrl: public endpoints pass", () => {
  it.each([
    "https://hooks.example.com/x",
    "https://HOOKS.Example.COM/x?y=1#frag",
    "https://example.com./trailing-dot",
    "https://93.184.216.34/",
    "https://8.8.8.8:8443/hook",
    "https://172.32.0.1/",
    "https://100.128.0.1/",
    "https://198.20.0.1/",
    "https://[2606:4700::1111]/",
    "https://[2a00:1450:4001:80b::200e]/hook",
    "https://[::ffff:8.8.8.8]/",
    "https://[64:ff9b::808:808]/",
    "https://[2002:808:808::1]/",
    "https://xn--bcher-kva.example/",
    "https://bücher.example/",
    "https://my-local-shop.com/",
    "https://internal.example.com/",
  ])("%s", (raw) => {
    const v = checkWebhookUrl(raw, prod);
    expect(v).toMatchObject({ ok: true });
    if (v.ok) expect(v.url).toBeInstanceOf(URL);
  });

  it("returns the normalised URL", () => {
    const v = checkWebhookUrl("HTTPS://Hooks.Example.com:443/a/../b", prod);
    expect(v.ok && v.url.href).toBe("https://hooks.example.com/b");
  });
});

describe("assertWebhookUrl", () => {
  it.each([
    ["https://169.254.169.254/", "ssrf_blocked"],
    ["http://example.com/", "insecure_scheme"],
    ["https://user:pass@example.com/", "credentials"],
    ["::not a url::", "invalid_url"],
  ] as const)("%s throws ValidationError with code %s", (raw, code) => {
    let caught: unknown;
    try {
      assertWebhookUrl(raw, prod, "endpoint.url");
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    const err = caught as ValidationError;
    expect(err.status).toBe(400);
    const issues = (err.details as { issues: { path: string; message: string; code: string }[] }).issues;
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ path: "endpoint.url", code });
    expect(issues[0]?.message).toBe((checkWebhookUrl(raw, prod) as { reason: string }).reason);
  });

  it("defaults the path to url and returns the URL when allowed", () => {
    expect(assertWebhookUrl("https://hooks.example.com/x", prod).href).toBe("https://hooks.example.com/x");
    try {
      assertWebhookUrl("https://localhost/", prod);
      expect.unreachable();
    } catch (e) {
      expect((e as ValidationError).details).toMatchObject({ issues: [{ path: "url", code: "ssrf_blocked" }] });
    }
  });
});

describe("isBlockedAddress on bare hosts", () => {
  it.each([
    ["127.0.0.1", true],
    ["2130706433", true],
    ["0x7f.1", true],
    ["0177.0.0.1", true],
    ["127.0.0.1.", true],
    ["10.1.2.3", true],
    ["::1", true],
    ["[::1]", true],
    ["::ffff:169.254.169.254", true],
    ["FD00:EC2::254", true],
    ["fe80::1%eth0", true], // zone ids are not parsed: fail closed
    ["1:2:3:4:5:6:7:8:9", true], // malformed: fail closed
    ["1::2::3", true],
    ["256.0.0.1", true], // not an address: fail closed
    ["localhost", true],
    ["intranet", true],
    ["8.8.8.8", false],
    ["134744072", false], // 8.8.8.8 as one number
    ["2606:4700::1111", false],
    ["[2606:4700::1111]", false],
    ["1:2:3:4:5:6:7::", true], // 1::/16 is outside global unicast
    ["2a00:1:2:3:4:5:1.2.3.4", false],
    ["hooks.example.com", false],
  ] as const)("%s → %s", (host, blocked) => {
    expect(isBlockedAddress(host)).toBe(blocked);
  });
});

import { describe, expect, it } from "vitest";
import { consoleCsp } from "../../../src/console/kit.ts";
import { linkScopes, mintConsoleLink } from "../../../src/console/links.tsx";
import { openSession } from "../../../src/console/session.ts";
import { forest } from "../../../src/console/teams.tsx";
import { chartOf } from "../../../src/console/usage.tsx";
import type { Team } from "../../../src/teams/schemas.ts";

const auth = { secret: "unit-test-secret-0123456789abcdef0123", issuer: "cloudmatrix", audience: "cloudmatrix-edge" };
const team = (id: string, parentTeamId?: string): Team => ({
  id,
  organizationId: "o",
  name: id,
  visibility: "public",
  settings: {},
  createdAt: "",
  updatedAt: "",
  createdBy: "u",
  ...(parentTeamId ? { parentTeamId } : {}),
});

describe("console helpers", () => {
  it("builds the team forest; a team whose parent is not visible becomes a root", () => {
    const f = forest([team("c", "b"), team("b", "a"), team("a"), team("x", "hidden")]);
    expect(f.map((n) => n.team.id)).toEqual(["a", "x"]);
    expect(f[0]!.children[0]!.children[0]!.team.id).toBe("c");
  });

  it("charts a metric's data points as they are, in order", () => {
    const chart = chartOf(
      {
        organizationId: "o",
        startTime: "",
        endTime: "",
        granularity: "hour",
        timeZone: "Europe/Paris",
        totals: {},
        source: "",
        dataPoints: [
          { timestamp: "2026-01-01T00:00:00+01:00", metricType: "api_calls", value: 3, dimensions: {} },
          { timestamp: "2026-01-01T00:00:00+01:00", metricType: "documents", value: 9, dimensions: {} },
          { timestamp: "2026-01-01T01:00:00+01:00", metricType: "api_calls", value: 5, dimensions: {} },
        ],
      },
      "api_calls",
    );
    expect(chart.x).toEqual([Date.parse("2025-12-31T23:00:00Z") / 1000, Date.parse("2026-01-01T00:00:00Z") / 1000]);
    expect(chart.series[0]!.values).toEqual([3, 5]);
  });

  it("gives a link only its sections' scopes, and frames only where asked", () => {
    expect(linkScopes({ sections: ["webhooks"], access: "read" })).toEqual(["webhooks:read"]);
    expect(linkScopes({ sections: ["usage", "teams"], access: "write" })).toEqual([
      "usage:read",
      "usage:write",
      "teams:read",
      "teams:write",
    ]);
    expect(consoleCsp()).toContain("frame-ancestors 'none'");
    expect(consoleCsp(["https://a.example"])).toContain("frame-ancestors https://a.example");
  });

  it("mints a link that never outlives its minter and opens as a scoped session", async () => {
    const now = Date.now();
    const link = await mintConsoleLink({
      principal: { userId: "u", organizationId: "o", scopes: new Set(["admin"]) },
      minterExp: Math.floor(now / 1000) + 120,
      request: { sections: ["webhooks"], access: "read", ttlSeconds: 900, frameAncestors: [] },
      auth,
      origin: "https://edge.example",
      now,
    });
    expect(Date.parse(link.expiresAt)).toBe((Math.floor(now / 1000) + 120) * 1000);
    const s = await openSession(link.token, auth);
    expect(s.scoped).toEqual({ sections: ["webhooks"], access: "read", frameAncestors: [] });
    expect([...s.principal.scopes]).toEqual(["webhooks:read"]);
    await expect(
      mintConsoleLink({
        principal: { userId: "u", organizationId: "o", scopes: new Set(["webhooks:read"]) },
        minterExp: Math.floor(now / 1000) + 120,
        request: { sections: ["webhooks"], access: "write", ttlSeconds: 900, frameAncestors: [] },
        auth,
        origin: "https://edge.example",
      }),
    ).rejects.toThrow(/lacks scope webhooks:write/);
  });
});

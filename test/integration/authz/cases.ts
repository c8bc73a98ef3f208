/**
 * Consistency cases in the style of OpenFGA's and SpiceDB's consistency suites: a model (teams,
 * memberships, resources, custom roles), tuples (grants) and the answers expected of check,
 * list-users and list-resources. Written by hand from the rules in `src/teams/authz/model.ts`;
 * `consistency.test.ts` loads each one into a fresh organization and asks the API.
 *
 * Notation: resources `type:id`, subjects `team:name` or `user:id`; `parent` is the containing
 * resource; team `parent` is the parent team.
 */

/** One suite. */
export interface ConsistencySuite {
  name: string;
  teams: { name: string; parent?: string; visibility?: "public" | "private" | "secret" }[];
  /** [team, user, role] */
  members: [string, string, "member" | "admin" | "owner"][];
  /** [resource, parent or null] (parents first) */
  resources: [string, string | null][];
  roles: Record<string, string[]>;
  /** [resource, subject, role] */
  tuples: [string, string, string][];
  /** [user, permission, resource, allowed] */
  checks: [string, string, string, boolean][];
  /** [resource, permission, users] */
  listUsers: [string, string, string[]][];
  /** [user, type, permission, ids] */
  listResources: [string, string, string, string[]][];
}

/** The suites. */
export const suites: ConsistencySuite[] = [
  {
    name: "folders contain, team grants reach members and members of ancestors, never subteams",
    teams: [
      { name: "eng" },
      { name: "backend", parent: "eng" },
      { name: "infra", parent: "backend" },
      { name: "design" },
    ],
    members: [
      ["eng", "alice", "member"],
      ["backend", "bob", "admin"],
      ["infra", "ivan", "member"],
      ["design", "dana", "member"],
    ],
    resources: [
      ["project:p", null],
      ["folder:f", "project:p"],
      ["folder:f2", "folder:f"],
      ["document:d", "folder:f2"],
      ["document:e", "project:p"],
      ["document:x", "project:p"],
    ],
    roles: { viewer: ["documents.read"], commenter: ["documents.read", "documents.comment"] },
    tuples: [
      ["folder:f", "team:backend", "viewer"],
      ["document:d", "user:carol", "member"],
      ["document:e", "team:design", "commenter"],
      ["project:p", "user:paul", "admin"],
    ],
    checks: [
      ["bob", "documents.read", "document:d", true],
      ["bob", "documents.read", "folder:f2", true],
      ["bob", "documents.read", "project:p", false],
      ["alice", "documents.read", "document:d", true],
      ["ivan", "documents.read", "document:d", false],
      ["bob", "documents.write", "document:d", false],
      ["carol", "documents.write", "document:d", true],
      ["carol", "documents.share", "document:d", false],
      ["carol", "documents.read", "document:e", false],
      ["dana", "documents.comment", "document:e", true],
      ["dana", "documents.write", "document:e", false],
      ["dana", "documents.read", "document:d", false],
      ["paul", "documents.delete", "document:d", true],
      ["paul", "documents.share", "document:x", true],
      ["zed", "documents.read", "document:x", false],
      ["alice", "documents.read", "document:x", false],
    ],
    listUsers: [
      ["document:d", "documents.read", ["alice", "bob", "carol", "paul"]],
      ["document:d", "documents.write", ["carol", "paul"]],
      ["document:e", "documents.comment", ["dana", "paul"]],
      ["document:x", "documents.read", ["paul"]],
      ["folder:f", "documents.read", ["alice", "bob", "paul"]],
    ],
    listResources: [
      ["bob", "document", "documents.read", ["d"]],
      ["paul", "document", "documents.read", ["d", "e", "x"]],
      ["dana", "document", "documents.comment", ["e"]],
      ["ivan", "document", "documents.read", []],
      ["alice", "folder", "documents.read", ["f", "f2"]],
      ["carol", "folder", "documents.read", []],
    ],
  },
  {
    name: "custom roles: nothing beyond what a role lists; built-in extensions add; several paths union",
    teams: [{ name: "ops" }, { name: "sre", parent: "ops" }],
    members: [
      ["ops", "olga", "owner"],
      ["sre", "sam", "member"],
      ["sre", "olga", "member"],
    ],
    resources: [
      ["project:q", null],
      ["folder:g", "project:q"],
      ["document:r", "folder:g"],
    ],
    roles: {
      none: [],
      sharer: ["documents.read", "documents.share"],
      member: ["documents.read", "documents.comment", "documents.write", "documents.delete"],
    },
    tuples: [
      ["document:r", "user:nick", "none"],
      ["folder:g", "team:sre", "sharer"],
      ["document:r", "team:ops", "member"],
    ],
    checks: [
      ["nick", "documents.read", "document:r", false],
      ["sam", "documents.read", "document:r", true],
      ["sam", "documents.share", "document:r", true],
      ["sam", "documents.write", "document:r", false],
      ["olga", "documents.share", "document:r", true],
      ["olga", "documents.delete", "document:r", true],
      ["olga", "documents.write", "folder:g", false],
      ["sam", "documents.delete", "document:r", false],
    ],
    listUsers: [
      ["document:r", "documents.read", ["olga", "sam"]],
      ["document:r", "documents.delete", ["olga"]],
      ["folder:g", "documents.share", ["olga", "sam"]],
    ],
    listResources: [
      ["olga", "document", "documents.delete", ["r"]],
      ["sam", "folder", "documents.share", ["g"]],
      ["nick", "document", "documents.read", []],
    ],
  },
];

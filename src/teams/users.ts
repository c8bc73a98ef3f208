/**
 * The platform's users service behind a small interface: user details for memberships (one batched
 * call per page) and verified e-mails of accepting users.
 */

/** What we know of a user. */
export interface UserInfo {
  id: string;
  name?: string;
  email?: string;
  emailVerified?: boolean;
}

/** Looks users up. */
export interface UsersClient {
  /** Details of these users (missing ones are absent from the map). */
  getUsers(ids: readonly string[]): Promise<Map<string, UserInfo>>;
}

/** No users service configured: nothing is known. */
export const noUsers: UsersClient = { getUsers: async () => new Map() };

/** HTTP client of the users service: `GET {base}/users?ids=a,b` → `{ users: UserInfo[] }`. */
export function httpUsersClient(baseUrl: string, fetchFn: typeof fetch = fetch): UsersClient {
  return {
    async getUsers(ids) {
      const unique = [...new Set(ids)];
      if (unique.length === 0) return new Map();
      const url = new URL("users", baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`);
      url.searchParams.set("ids", unique.join(","));
      const res = await fetchFn(url, { headers: { accept: "application/json" }, signal: AbortSignal.timeout(5_000) });
      if (!res.ok) throw new Error(`users service answered ${res.status}`);
      const body = (await res.json()) as { users?: UserInfo[] };
      return new Map((body.users ?? []).map((u) => [u.id, u]));
    },
  };
}

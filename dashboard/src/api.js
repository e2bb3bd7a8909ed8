// The API client: every call carries the token the operator signed in with (kept in sessionStorage, for
// this browser tab's session only, never in a URL) and, for the admin token, the tenant picked.

const TOKEN = "herald.token";
const TENANT = "herald.tenant";

/** An API error: its HTTP status and Herald's `{code, message, details}`. */
export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code || "http_error";
    this.details = error?.details;
  }
}

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN);
  },
  /** The admin token acts on any tenant; tenant tokens start with `htk_`. */
  get admin() {
    const token = this.token;
    return !!token && !token.startsWith("htk_");
  },
  get tenant() {
    return sessionStorage.getItem(TENANT) || "default";
  },
  set tenant(id) {
    sessionStorage.setItem(TENANT, id);
  },
  signIn(token) {
    sessionStorage.setItem(TOKEN, token);
  },
  signOut() {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(TENANT);
  },
};

/** Call the API; resolves to the parsed answer (or null for an empty one), rejects with ApiError. */
export async function api(method, path, body, token = session.token) {
  const headers = { authorization: `Bearer ${token}` };
  if (session.admin && token === session.token) headers["x-herald-tenant"] = session.tenant;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  const text = await res.text();
  const answer = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, answer?.error);
  return answer;
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") q.set(key, value);
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

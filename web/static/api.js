// The only way the console reaches data: /api/v1 with the user's key as a bearer token.
// The key stays in sessionStorage, so it is gone when the tab closes.

const BASE = "/api/v1";
const TOKEN = "aimatrix.token";

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }

  /** One readable line, whatever shape `detail` has (a sentence, or a list of {msg}/{message}). */
  get text() {
    if (typeof this.detail === "string") return this.detail;
    if (Array.isArray(this.detail)) {
      return this.detail.map((e) => e.message || e.msg || JSON.stringify(e)).join("; ");
    }
    return this.message;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN, value);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN);
}

/**
 * api("GET", "/tasks", {query: {state: "open"}}) → parsed JSON (or text for non-JSON answers).
 * `json` sends a JSON body, `form` a FormData. Throws ApiError; a 401 also signs the user out.
 */
export async function api(method, path, { query, json, form, accept } = {}) {
  const url = new URL(BASE + path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  const headers = { Accept: accept || "application/json" };
  const current = token();
  if (current) headers.Authorization = `Bearer ${current}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body, cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, `the server cannot be reached (${err.message})`);
  }
  const type = response.headers.get("Content-Type") || "";
  const payload = type.includes("json") ? await response.json().catch(() => null) : await response.text();
  if (response.ok) return payload;
  const detail = payload && typeof payload === "object" && "detail" in payload ? payload.detail : payload;
  if (response.status === 401) {
    clearToken();
    // The router shows the login page, keeping where the user was so signing in leads back there.
    if (!location.hash.startsWith("#/login")) {
      location.hash = `#/login?next=${encodeURIComponent(location.hash || "#/models")}`;
    }
  }
  throw new ApiError(response.status, detail || response.statusText);
}

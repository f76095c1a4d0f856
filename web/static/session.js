// Who is signed in, and what their roles let them do. Only used to hide what they cannot use:
// the API checks every call anyway.

import { api, ApiError } from "./api.js";

let current = null;

/** GET /me, remembered until sign-out. Null when not signed in (401). */
export async function me({ refresh = false } = {}) {
  if (current && !refresh) return current;
  try {
    const answer = await api("GET", "/me");
    current = { subject: answer.subject, roles: answer.roles || [], groups: answer.groups || [], tenant: answer.tenant };
  } catch (err) {
    if (!(err instanceof ApiError) || err.status === 401) throw err;
    if (err.status !== 404) throw err;
    // A server without /me: the key worked for nothing yet, so check it on a route every role may read,
    // and show every button (the API still refuses what the roles do not allow).
    await api("GET", "/definitions");
    current = { subject: "signed in", roles: [], groups: [], tenant: null, unknownRoles: true };
  }
  return current;
}

export function forget() {
  current = null;
}

function has(user, ...roles) {
  if (!user) return false;
  if (user.unknownRoles) return true;
  return user.roles.includes("admin") || roles.some((role) => user.roles.includes(role));
}

export const can = {
  deploy: (user) => has(user, "modeler"),
  operate: (user) => has(user, "operator"),
  workTasks: (user) => has(user, "approver", "operator"),
  readHistory: (user) => has(user, "auditor", "operator"),
};

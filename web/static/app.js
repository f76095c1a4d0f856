// The console's shell: hash routing (#/models, #/inbox/<task>, #/instances/<id>, ...), the top bar,
// and the lifetime of each page (its polling stops when the user leaves it).

import { api, clearToken, token } from "./api.js";
import { h, replace } from "./dom.js";
import { missingNotice } from "./diagram.js";
import * as inbox from "./pages/inbox.js";
import * as instance from "./pages/instance.js";
import * as instances from "./pages/instances.js";
import * as login from "./pages/login.js";
import * as model from "./pages/model.js";
import * as models from "./pages/models.js";
import { can, forget, me } from "./session.js";

const ROUTES = [
  [/^\/login$/, login, "login"],
  [/^\/models$/, models, "models"],
  [/^\/models\/([^/]+)$/, model, "models"],
  [/^\/inbox$/, inbox, "inbox"],
  [/^\/inbox\/([^/]+)$/, inbox, "inbox"],
  [/^\/instances$/, instances, "instances"],
  [/^\/instances\/([^/]+)$/, instance, "instances"],
];

const view = document.getElementById("view");
let leave = null;
let generation = 0;

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/models";
  const [path, search = ""] = raw.split("?");
  return { path, query: Object.fromEntries(new URLSearchParams(search)) };
}

async function route() {
  const current = ++generation;
  if (leave) {
    leave();
    leave = null;
  }
  const { path, query } = parseHash();
  if (!token() && path !== "/login") {
    location.hash = `#/login?next=${encodeURIComponent(location.hash || "#/models")}`;
    return;
  }
  const match = ROUTES.map(([pattern, page, section]) => [path.match(pattern), page, section]).find(([m]) => m);
  if (!match) {
    location.hash = "#/models";
    return;
  }
  const [groups, page, section] = match;
  let user = null;
  if (section !== "login") {
    try {
      user = await me();
    } catch (err) {
      // A 401 has already sent the user to the login page; anything else is worth saying.
      if (current === generation && err.status !== 401) showFatal(err);
      return;
    }
  }
  if (current !== generation) return; // the user moved on while /me answered
  renderTopbar(user, section);
  watchInbox(user);
  const params = groups.slice(1).map(decodeURIComponent);
  view.className = `view view-${section}`;
  replace(view);
  const stillHere = () => current === generation;
  leave = (await page.render(view, { params, query, user, stillHere })) || null;
  if (!stillHere() && leave) {
    leave();
    leave = null;
  }
}

function showFatal(err) {
  renderTopbar(null, "");
  replace(view, h("div", { class: "notice notice-error" }, `The console cannot load: ${err.text || err.message}`));
}

function renderTopbar(user, section) {
  const bar = document.getElementById("topbar");
  bar.hidden = !user;
  for (const link of bar.querySelectorAll(".mainnav a")) {
    link.classList.toggle("active", link.dataset.section === section);
  }
  if (!user) return;
  const roles = user.unknownRoles ? [] : user.roles;
  replace(
    document.getElementById("user"),
    h(
      "span",
      { class: "who", title: user.groups.length ? `groups: ${user.groups.join(", ")}` : "no groups" },
      h("span", { class: "avatar", "aria-hidden": "true" }, (user.subject || "?").slice(0, 1).toUpperCase()),
      h("span", { class: "subject", id: "user-subject" }, user.subject),
      user.tenant ? h("span", { class: "tenant" }, user.tenant) : null,
    ),
    h("span", { class: "roles", id: "user-roles" }, roles.map((role) => h("span", { class: `role role-${role}` }, role))),
    h("button", { class: "btn btn-ghost btn-small", id: "logout", type: "button", onclick: logout }, "Log out"),
  );
}

function logout() {
  clearToken();
  forget();
  watchInbox(null);
  location.hash = "#/login";
}

let inboxTimer = null;

/** The open-task count beside "Inbox", on every page, for users who work tasks. */
function watchInbox(user) {
  if (!user || !can.workTasks(user)) {
    clearInterval(inboxTimer);
    inboxTimer = null;
    return;
  }
  if (inboxTimer) return;
  const refresh = async () => {
    if (document.hidden || !token()) return;
    try {
      const tasks = await api("GET", "/tasks", { query: { state: "open", limit: 500 } });
      const badge = document.getElementById("inbox-count");
      badge.hidden = !tasks.length;
      badge.textContent = tasks.length >= 500 ? "500+" : String(tasks.length);
    } catch {
      // the count is a hint: the inbox page reports errors
    }
  };
  refresh();
  inboxTimer = setInterval(refresh, 5000);
}

async function checkVendor() {
  // Said once, on every page, not only where a diagram would be drawn: a console without bpmn-js is half a console.
  const response = await fetch("/console/vendor/bpmn-js/bpmn-navigated-viewer.production.min.js", { method: "HEAD" });
  if (response.ok) return;
  const banner = h("div", { class: "banner", id: "vendor-missing" }, missingNotice());
  document.body.insertBefore(banner, view);
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  checkVendor().catch(() => {});
  route();
});


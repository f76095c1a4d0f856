// DOM helpers. Everything the API returns is put in the page as text nodes, never as HTML:
// names, variables and error messages come from users and must not run as markup.

/**
 * h("div", {class: "x", onclick: fn, dataset: {id: 1}}, "text", child, [more, children])
 * Attributes whose value is null, undefined or false are left out.
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (name === "value" && "value" in element) {
      element.value = value;
    } else if (name === "checked" || name === "selected" || name === "disabled") {
      element[name] = Boolean(value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace the children of `parent`. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  append(parent, children);
  return parent;
}

function parseTime(iso) {
  if (!iso) return null;
  // The API writes UTC; a timestamp without an offset (SQLite drops it) is UTC too, not browser-local.
  const text = String(iso);
  const at = new Date(/(?:[zZ]|[+-]\d\d:?\d\d)$/.test(text) || !text.includes("T") ? text : `${text}Z`);
  return Number.isNaN(at.getTime()) ? null : at;
}

export function formatTime(iso) {
  if (!iso) return "";
  const at = parseTime(iso);
  if (!at) return String(iso);
  return at.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

/** A time of today as "16:47", an older one as "Nov 26": for lists, where the full stamp is the tooltip. */
export function formatShort(iso) {
  const full = formatTime(iso);
  const at = parseTime(iso);
  if (!at) return full;
  const today = new Date().toDateString() === at.toDateString();
  const text = today
    ? at.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })
    : at.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  return h("time", { datetime: at.toISOString(), title: full }, text);
}

export function shortId(id) {
  return id && id.length > 12 ? `${id.slice(0, 8)}…` : id;
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

/** A message box: kind is "error", "info" or "success". */
export function notice(kind, ...children) {
  return h("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, ...children);
}

/** A short-lived message in the corner, for outcomes that change no page (task completed, deployed). */
export function toast(message, kind = "success") {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts" });
    document.body.append(box);
  }
  const item = h("div", { class: `toast toast-${kind}` }, message);
  box.append(item);
  setTimeout(() => item.remove(), 5000);
}

export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

/**
 * Call `fn` every `ms` while the tab is visible, never two calls at once (a slow answer is not
 * stacked on). Returns the function that stops it: pages return it as their clean-up.
 */
export function every(ms, fn) {
  let busy = false;
  const timer = setInterval(async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      await fn();
    } catch {
      // the next round tries again; pages show errors of their own calls
    } finally {
      busy = false;
    }
  }, ms);
  return () => clearInterval(timer);
}

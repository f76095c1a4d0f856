// Instances, newest first, filtered by status and definition (kept in the URL, so a filtered list
// can be bookmarked). The first page refreshes itself; "Load more" follows the API's cursor.

import { api } from "../api.js";
import { every, formatTime, h, notice, replace, shortId, statusBadge } from "../dom.js";

const STATUSES = ["running", "completed", "failed", "cancelled"];
const PAGE = 25;

export async function render(view, { query, stillHere }) {
  const filter = { status: query.status || "", definition_key: query.definition_key || "", business_key: query.business_key || "" };
  const status = h(
    "select",
    { id: "filter-status", "aria-label": "Status", onchange: () => go({ status: status.value }) },
    h("option", { value: "" }, "All statuses"),
    STATUSES.map((s) => h("option", { value: s, selected: s === filter.status }, s)),
  );
  const definition = h(
    "select",
    { id: "filter-definition", "aria-label": "Definition", onchange: () => go({ definition_key: definition.value }) },
    h("option", { value: "" }, "All definitions"),
  );
  const business = h("input", {
    id: "filter-business-key",
    type: "search",
    placeholder: "Business key",
    value: filter.business_key,
    onchange: () => go({ business_key: business.value.trim() }),
  });
  const body = h("tbody");
  const moreButton = h("button", { class: "btn btn-ghost", type: "button", id: "instances-more", hidden: true }, "Load more");
  const card = h(
    "div",
    { class: "card" },
    h(
      "table",
      { class: "table", id: "instances" },
      h(
        "thead",
        {},
        h("tr", {}, ["Instance", "Definition", "Business key", "Status", "Started", "By", "Ended"].map((t) => h("th", {}, t))),
      ),
      body,
    ),
    h("div", { class: "table-foot" }, moreButton),
  );
  view.append(
    h(
      "div",
      { class: "page-head" },
      h("div", {}, h("h1", {}, "Instances"), h("p", { class: "muted" }, "Process instances, newest first.")),
      h("div", { class: "filters" }, status, definition, business),
    ),
    card,
  );

  function go(change) {
    const next = { ...filter, ...change };
    const search = new URLSearchParams(Object.entries(next).filter(([, v]) => v));
    location.hash = `#/instances${search.toString() ? `?${search}` : ""}`;
  }

  api("GET", "/definitions").then((defs) => {
    for (const d of defs.sort((a, b) => a.key.localeCompare(b.key))) {
      definition.append(h("option", { value: d.key, selected: d.key === filter.definition_key }, d.name ? `${d.name} (${d.key})` : d.key));
    }
  }, () => {});

  let cursor = null;
  let paged = false;
  let signature = "";

  async function load({ more = false } = {}) {
    // While the user reads further pages, refreshing page one would reorder what they read: it waits.
    if (paged && !more) return;
    const page = await api("GET", "/instances", { query: { ...filter, limit: PAGE, cursor: more ? cursor : undefined } });
    if (!stillHere()) return;
    cursor = page.next_cursor;
    moreButton.hidden = !cursor;
    if (more) {
      paged = true;
      body.append(...page.items.map(row));
      return;
    }
    const next = JSON.stringify(page.items);
    if (next === signature) return;
    signature = next;
    draw(page.items);
  }

  function draw(items) {
    if (!items.length) {
      replace(body, h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No instances match.")));
      return;
    }
    replace(body, items.map(row));
  }

  moreButton.addEventListener("click", () => load({ more: true }).catch((err) => card.append(notice("error", err.text))));
  try {
    await load();
  } catch (err) {
    replace(body, h("tr", {}, h("td", { colspan: 7 }, notice("error", `The instances cannot be read: ${err.text || err.message}`))));
    return;
  }
  return every(3000, () => load());
}

function row(instance) {
  const href = `#/instances/${encodeURIComponent(instance.id)}`;
  return h(
    "tr",
    { class: "clickable", dataset: { instanceId: instance.id }, onclick: (e) => { if (e.target.tagName !== "A") location.hash = href; } },
    h("td", {}, h("a", { href, title: instance.id }, h("code", {}, shortId(instance.id)))),
    h("td", {}, instance.definition_key, h("span", { class: "muted" }, ` v${instance.version}`)),
    h("td", {}, instance.business_key || h("span", { class: "muted" }, "—")),
    h("td", {}, statusBadge(instance.status)),
    h("td", {}, formatTime(instance.started_at)),
    h("td", {}, instance.started_by || ""),
    h("td", {}, instance.closed_at ? formatTime(instance.closed_at) : h("span", { class: "muted" }, "—")),
  );
}

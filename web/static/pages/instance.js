// One instance: the diagram with completed elements, active tokens and incidents marked; its tasks,
// variables and audit timeline. Refreshes every 2 s until the instance ends.

import { api } from "../api.js";
import { mark, showDiagram } from "../diagram.js";
import { every, formatTime, h, notice, pretty, replace, shortId, statusBadge, toast } from "../dom.js";
import { can } from "../session.js";

const POLL_MS = 2000;
const MAX_EXTRA_POLLS = 30; // after the end, at most a minute more for its last audit entries

export async function render(view, { params: [id], user, stillHere }) {
  const path = `/instances/${encodeURIComponent(id)}`;
  let instance;
  try {
    instance = await api("GET", path);
  } catch (err) {
    view.append(backLink(), notice("error", err.status === 404 ? `No instance '${id}' is visible to you.` : err.text));
    return;
  }
  if (!stillHere()) return;

  const head = h("div", { class: "page-head" });
  const canvas = h("div", { class: "diagram", id: "diagram" });
  const incidents = h("div", { id: "incidents" });
  const tasks = h("div", { class: "card", id: "instance-tasks" });
  const variables = h("div", { class: "card", id: "variables" });
  const timeline = h("div", { class: "card", id: "timeline" });
  const called = h("div", { id: "called-instances" });
  view.append(
    backLink(),
    head,
    incidents,
    h("div", { class: "card card-flush" }, canvas, legend()),
    h("div", { class: "grid-2" }, h("div", {}, tasks, called, variables), timeline),
  );

  let viewer = null;
  let lastHistory = null;
  let names = {};
  const drawn = {};
  const draw = (box, key, value, paint) => {
    // Redraw a part only when what it shows changed, so a refresh never moves what the user is reading.
    const next = JSON.stringify(value);
    if (drawn[key] === next) return;
    drawn[key] = next;
    paint(box, value);
  };

  async function refresh() {
    instance = await api("GET", path);
    if (!stillHere()) return;
    draw(head, "head", instance, (box, value) => drawHead(box, value, user, refresh));
    if (viewer) {
      const { completed, active, incidents: open } = instance;
      draw(null, "marks", { completed, active, open }, () => mark(viewer, instance));
    }
    draw(incidents, "incidents", instance.incidents, (box, value) => drawIncidents(box, value, user, names, refresh));
    draw(variables, "variables", instance.variables, drawVariables);
    const [taskRows, history, children] = await Promise.all([
      api("GET", "/tasks", { query: { instance_id: id, state: "all", all: can.operate(user) ? "true" : undefined } }).catch((err) => err),
      can.readHistory(user) ? api("GET", `${path}/history`).catch((err) => err) : Promise.resolve(null),
      api("GET", "/instances", { query: { parent_id: id, limit: "100" } }).catch(() => ({ items: [] })),
    ]);
    if (!stillHere()) return;
    draw(called, "called", children.items, drawCalled);
    lastHistory = history;
    draw(tasks, "tasks", taskRows instanceof Error ? { error: taskRows.text } : taskRows, drawTasks);
    draw(timeline, "timeline", history instanceof Error ? { error: history.text } : history, (box, value) => drawTimeline(box, value, names));
  }

  try {
    const xml = await api("GET", `/definitions/${encodeURIComponent(instance.definition_key)}/versions/${instance.version}/xml`, { accept: "application/xml" });
    if (!stillHere()) return;
    viewer = await showDiagram(canvas, xml, instance);
    if (viewer) {
      for (const element of viewer.get("elementRegistry").getAll()) {
        if (element.businessObject?.name) names[element.id] = element.businessObject.name;
      }
    }
  } catch (err) {
    replace(canvas, notice("error", `The model cannot be read: ${err.text || err.message}`));
  }
  // Done refreshing once the instance has ended and its history holds its last entry: the engine's
  // final entries reach the audit log a moment after Temporal reports the end (the API's status
  // projector writes them), so the end alone would leave the timeline short of them.
  const ENDED = new Set(["instance.completed", "instance.failed", "instance.cancelled"]);
  const settled = () =>
    instance.status !== "running" &&
    (!Array.isArray(lastHistory) || lastHistory.some((row) => ENDED.has(row.action)) || ++extraPolls > MAX_EXTRA_POLLS);
  let extraPolls = 0;
  await refresh();
  if (settled()) return;
  const stop = every(POLL_MS, async () => {
    await refresh();
    if (settled()) stop();
  });
  return stop;
}

function backLink() {
  return h("a", { href: "#/instances", class: "back" }, "← Instances");
}

function legend() {
  return h(
    "div",
    { class: "legend" },
    h("span", { class: "legend-item legend-completed" }, "completed"),
    h("span", { class: "legend-item legend-active" }, "active"),
    h("span", { class: "legend-item legend-incident" }, "incident"),
  );
}

function drawHead(box, instance, user, refresh) {
  const cancel = async () => {
    if (!window.confirm("Cancel this instance? Its open tasks and activities are cancelled.")) return;
    try {
      await api("POST", `/instances/${encodeURIComponent(instance.id)}/cancel`);
      toast("Instance cancelled");
      await refresh();
    } catch (err) {
      toast(err.text, "error");
    }
  };
  replace(
    box,
    h(
      "div",
      {},
      h("h1", {}, h("span", { class: "muted" }, "Instance "), h("code", { title: instance.id }, shortId(instance.id)), " ", h("span", { id: "instance-status" }, statusBadge(instance.status))),
      h(
        "p",
        { class: "muted" },
        h("a", { href: `#/models/${encodeURIComponent(instance.definition_key)}?version=${instance.version}` }, `${instance.definition_key} v${instance.version}`),
        instance.business_key ? ` · business key ${instance.business_key}` : "",
        instance.parent_id
          ? h("span", { id: "instance-parent" }, " · called by ", h("a", { href: `#/instances/${encodeURIComponent(instance.parent_id)}` }, h("code", {}, shortId(instance.parent_id))), ` (${instance.parent_element_id})`)
          : "",
        ` · ${instance.active.length} active, ${instance.completed.length} completed`,
      ),
      instance.error ? notice("error", h("strong", {}, "Error: "), instance.error) : null,
    ),
    can.operate(user) && instance.status === "running"
      ? h("div", { class: "actions" }, h("button", { class: "btn btn-danger", type: "button", id: "instance-cancel", onclick: cancel }, "Cancel instance"))
      : null,
  );
}

/** The instances this one's call activities started (each a Temporal child workflow). */
function drawCalled(box, items) {
  if (!items.length) {
    box.replaceChildren();
    return;
  }
  replace(
    box,
    h(
      "div",
      { class: "card" },
      h("h2", {}, "Called instances"),
      h(
        "ul",
        {},
        items.map((child) =>
          h("li", {}, h("a", { href: `#/instances/${encodeURIComponent(child.id)}` }, h("code", {}, shortId(child.id))), ` ${child.definition_key} v${child.version} from ${child.parent_element_id} `, statusBadge(child.status)),
        ),
      ),
    ),
  );
}

function drawIncidents(box, incidents, user, names, refresh) {
  const open = incidents.filter((i) => (i.state || "open") === "open");
  if (!open.length) {
    box.replaceChildren();
    return;
  }
  const retry = async (incident) => {
    try {
      await api("POST", `/incidents/${encodeURIComponent(incident.id)}/retry`, { json: { variables: {} } });
      toast("Retrying the task");
      await refresh();
    } catch (err) {
      toast(err.text, "error");
    }
  };
  replace(
    box,
    open.map((incident) =>
      notice(
        "error",
        h("strong", {}, `Incident at ${names[incident.element_id] || incident.element_id}: `),
        incident.message,
        h("span", { class: "muted small" }, ` · ${formatTime(incident.created_at)}`),
        can.operate(user) ? h("button", { class: "btn btn-small", type: "button", onclick: () => retry(incident) }, "Retry") : null,
      ),
    ),
  );
}

function drawVariables(box, variables) {
  const names = Object.keys(variables || {}).sort();
  replace(
    box,
    h("div", { class: "card-head" }, h("h2", {}, "Variables"), h("span", { class: "muted" }, `${names.length}`)),
    names.length
      ? h(
          "table",
          { class: "table table-kv" },
          h(
            "tbody",
            {},
            names.map((name) => {
              const value = variables[name];
              const text = typeof value === "string" ? value : pretty(value);
              return h("tr", { dataset: { variable: name } }, h("th", {}, name), h("td", {}, h("pre", { class: "value" }, text)));
            }),
          ),
        )
      : h("div", { class: "empty" }, "No variables."),
  );
}

function drawTasks(box, tasks) {
  const head = h("div", { class: "card-head" }, h("h2", {}, "Tasks"));
  if (tasks.error) {
    replace(box, head, h("div", { class: "muted" }, tasks.error));
    return;
  }
  if (!tasks.length) {
    replace(box, head, h("div", { class: "empty" }, "No user tasks yet."));
    return;
  }
  replace(
    box,
    head,
    h(
      "table",
      { class: "table" },
      h(
        "tbody",
        {},
        tasks.map((task) =>
          h(
            "tr",
            {},
            h("td", {}, task.state === "open" ? h("a", { href: `#/inbox/${encodeURIComponent(task.id)}` }, task.name) : task.name),
            h("td", {}, statusBadge(task.state)),
            h("td", { class: "muted" }, task.closed_by ? `by ${task.closed_by}` : task.assignee ? `claimed by ${task.assignee}` : (task.candidate_groups || []).join(", ")),
            h("td", { class: "muted" }, formatTime(task.closed_at || task.created_at)),
          ),
        ),
      ),
    ),
  );
}

function drawTimeline(box, history, names) {
  const head = h("div", { class: "card-head" }, h("h2", {}, "Audit trail"));
  if (history === null) {
    replace(box, head, h("div", { class: "muted" }, "The audit trail needs the auditor or operator role."));
    return;
  }
  if (history.error) {
    replace(box, head, h("div", { class: "muted" }, history.error));
    return;
  }
  head.append(h("span", { class: "muted" }, `${history.length} records`));
  replace(
    box,
    head,
    h(
      "ol",
      { class: "timeline", id: "audit-trail" },
      history.map((record) =>
        h(
          "li",
          { class: `event event-${record.action.replace(/[^a-z]+/g, "-")}`, dataset: { action: record.action, element: record.element_id || "" } },
          h("span", { class: "event-dot", "aria-hidden": "true" }),
          h(
            "div",
            { class: "event-body" },
            h(
              "div",
              { class: "event-line" },
              h("span", { class: "event-action" }, record.action),
              record.element_id ? h("span", { class: "event-element" }, names[record.element_id] || record.element_id) : null,
              record.actor ? h("span", { class: "event-actor" }, `by ${record.actor}`) : null,
            ),
            h("div", { class: "event-time muted small" }, formatTime(record.occurred_at)),
            summary(record.data),
          ),
        ),
      ),
    ),
  );
}

function summary(data) {
  if (data === null || data === undefined || (typeof data === "object" && !Object.keys(data).length)) return null;
  const text = JSON.stringify(data);
  return h("details", { class: "event-data" }, h("summary", {}, text.length > 80 ? `${text.slice(0, 80)}…` : text), h("pre", {}, pretty(data)));
}

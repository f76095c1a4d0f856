// The inbox: the tasks open to me and my groups (operators may look at everyone's), claim, the
// task's form, complete. The list refreshes every 2 s; the open form is never redrawn under the user.

import { api } from "../api.js";
import { every, formatShort, formatTime, h, notice, replace, shortId, toast } from "../dom.js";
import { renderForm, renderJsonEditor } from "../form.js";
import { can } from "../session.js";

const POLL_MS = 2000;

export async function render(view, { params: [selected], query, user, stillHere }) {
  const everyone = query.all === "true" && can.operate(user);
  const process = query.process || "";
  const here = (change) => {
    const next = new URLSearchParams(Object.entries({ all: everyone ? "true" : "", process, ...change }).filter(([, v]) => v));
    return next.toString() ? `?${next}` : "";
  };
  const listBox = h("div", { class: "task-list", id: "task-list" }, h("div", { class: "loading" }, "Loading…"));
  const detail = h("section", { class: "task-detail card", id: "task-detail" });
  let tasks = [];
  let signature = "";

  const filters = h(
    "div",
    { class: "filters" },
    can.operate(user)
      ? h(
          "label",
          { class: "toggle" },
          h("input", {
            type: "checkbox",
            id: "inbox-all",
            checked: everyone,
            onchange: (event) => {
              location.hash = `#/inbox${here({ all: event.target.checked ? "true" : "" })}`;
            },
          }),
          " Everyone's tasks",
        )
      : null,
  );
  const processes = h(
    "select",
    { id: "inbox-process", "aria-label": "Process", onchange: (event) => (location.hash = `#/inbox${here({ process: event.target.value })}`) },
    h("option", { value: "" }, "All processes"),
  );
  filters.append(processes);
  api("GET", "/definitions").then((defs) => {
    for (const d of defs.sort((a, b) => a.key.localeCompare(b.key))) {
      processes.append(h("option", { value: d.key, selected: d.key === process }, d.name || d.key));
    }
  }, () => {});
  view.append(
    h(
      "div",
      { class: "page-head" },
      h(
        "div",
        {},
        h("h1", {}, "Inbox"),
        h("p", { class: "muted" }, everyone ? "Every open task of your tenant." : `Tasks assigned to you, or open to you${user.groups.length ? ` and your groups (${user.groups.join(", ")})` : ""}.`),
      ),
      filters,
    ),
    h("div", { class: "inbox" }, listBox, detail),
  );

  if (!can.workTasks(user)) {
    replace(listBox, notice("info", "Working tasks needs the approver or operator role."));
    detail.hidden = true;
    return;
  }

  const selectedTask = () => tasks.find((t) => t.id === selected);
  const panel = selected ? taskPanel(detail, selected, user, () => refresh().catch(() => {})) : null;
  if (!selected) {
    replace(detail, h("div", { class: "empty" }, h("div", { class: "empty-icon" }, "☑"), "Select a task to see its form."));
  }

  async function refresh() {
    const answer = await api("GET", "/tasks", {
      query: { state: "open", all: everyone ? "true" : undefined, process: process || undefined, limit: 200 },
    });
    if (!stillHere()) return;
    tasks = answer;
    const next = JSON.stringify(tasks);
    if (next !== signature) {
      signature = next;
      drawList(listBox, tasks, selected, here({}));
    }
    panel?.update(selectedTask());
  }

  try {
    await refresh();
  } catch (err) {
    replace(listBox, notice("error", `The inbox cannot be read: ${err.text || err.message}`));
  }
  return every(POLL_MS, refresh);
}

function drawList(box, tasks, selected, search) {
  if (!tasks.length) {
    replace(
      box,
      h(
        "div",
        { class: "empty" },
        h("div", { class: "empty-icon" }, "✓"),
        search ? "No open tasks match." : "Nothing waits for you. Tasks appear here when a process reaches a user task for you or your groups.",
      ),
    );
    return;
  }
  replace(
    box,
    tasks.map((task) =>
      h(
        "a",
        {
          class: `task-item${task.id === selected ? " selected" : ""}`,
          href: `#/inbox/${encodeURIComponent(task.id)}${search}`,
          dataset: { taskId: task.id, instanceId: task.instance_id, elementId: task.element_id },
        },
        h(
          "div",
          { class: "task-top" },
          h("span", { class: "task-name" }, task.name || task.element_id),
          priorityBadge(task.priority),
        ),
        h(
          "div",
          { class: "task-meta" },
          h("span", {}, task.definition_key),
          h("span", { class: "muted" }, ` · ${shortId(task.instance_id)} · `, formatShort(task.created_at)),
        ),
        h(
          "div",
          { class: "task-tags" },
          task.assignee ? h("span", { class: "chip chip-assignee" }, `claimed by ${task.assignee}`) : h("span", { class: "chip chip-open" }, "unclaimed"),
          (task.candidate_groups || []).map((g) => h("span", { class: "chip" }, g)),
          task.due_at ? h("span", { class: `chip${new Date(task.due_at) < new Date() ? " chip-late" : ""}` }, `due ${formatTime(task.due_at)}`) : null,
          task.escalated ? h("span", { class: "chip chip-late" }, "escalated") : null,
        ),
      ),
    ),
  );
}

function priorityBadge(priority) {
  if (priority === undefined || priority === null || priority === 50) return null;
  return h("span", { class: `badge ${priority > 50 ? "badge-high" : "badge-low"}`, title: "priority" }, `P${priority}`);
}

/** The selected task: header, claim/unclaim, form, complete. `update(task)` refreshes the header only. */
function taskPanel(detail, taskId, user, changed) {
  const head = h("div", { class: "task-head" });
  const actions = h("div", { class: "actions task-claim" });
  const message = h("div", { id: "task-message" });
  const formBox = h("div", { id: "task-form" }, h("div", { class: "loading" }, "Loading the form…"));
  const complete = h("button", { class: "btn btn-primary", type: "submit", id: "task-complete" }, "Complete");
  let form = null;
  let task = null;
  let done = false;

  const shell = h(
    "form",
    { class: "task-body", novalidate: true, onsubmit: (event) => submit(event) },
    head,
    actions,
    message,
    formBox,
    h("div", { class: "actions form-actions" }, complete),
  );
  replace(detail, shell);

  async function load() {
    try {
      task = await api("GET", `/tasks/${encodeURIComponent(taskId)}`);
    } catch (err) {
      replace(detail, notice("error", err.status === 404 ? "This task does not exist or is not visible to you." : err.text));
      return;
    }
    drawHead();
    if (task.state && task.state !== "open") {
      closed();
      return;
    }
    try {
      const spec = await api("GET", `/tasks/${encodeURIComponent(taskId)}/form`);
      form = renderForm(spec.schema || {}, spec.ui_schema || {}, spec.data || {});
    } catch (err) {
      if (err.status !== 404) message.append(notice("error", `The form cannot be read: ${err.text}`));
      form = renderJsonEditor({});
    }
    replace(formBox, form.element);
  }

  function drawHead() {
    replace(
      head,
      h("h2", { id: "task-title" }, task.name || task.element_id),
      h(
        "dl",
        { class: "facts" },
        fact("Process", h("a", { href: `#/models/${encodeURIComponent(task.definition_key)}` }, `${task.definition_key}${task.version ? ` v${task.version}` : ""}`)),
        fact("Instance", h("a", { href: `#/instances/${encodeURIComponent(task.instance_id)}` }, h("code", {}, shortId(task.instance_id)))),
        fact("Created", formatTime(task.created_at)),
        task.due_at ? fact("Due", formatTime(task.due_at)) : null,
        task.candidate_groups?.length ? fact("Groups", task.candidate_groups.join(", ")) : null,
        fact("Assignee", task.assignee || "nobody yet"),
      ),
      task.documentation ? h("p", { class: "documentation" }, task.documentation) : null,
    );
    drawActions();
  }

  function drawActions() {
    const mine = task.assignee && task.assignee === user.subject;
    const buttons = [];
    if (task.state === "open" || !task.state) {
      if (!task.assignee) buttons.push(h("button", { class: "btn", type: "button", id: "task-claim", onclick: () => act("claim") }, "Claim"));
      if (mine) buttons.push(h("button", { class: "btn btn-ghost", type: "button", id: "task-unclaim", onclick: () => act("unclaim") }, "Unclaim"));
      if (task.assignee && !mine) buttons.push(h("span", { class: "chip chip-assignee" }, `Claimed by ${task.assignee}`));
      if (task.assignee && !mine && can.operate(user)) {
        buttons.push(h("button", { class: "btn btn-ghost", type: "button", onclick: () => act("assign", { assignee: null }) }, "Release"));
      }
      if (can.operate(user)) {
        const who = h("input", { type: "text", id: "task-assignee", placeholder: "user name", "aria-label": "Assign to" });
        const assign = () => who.value.trim() && act("assign", { assignee: who.value.trim() });
        who.addEventListener("keydown", (event) => {
          if (event.key === "Enter") {
            event.preventDefault(); // not the form's submit: that completes the task
            assign();
          }
        });
        buttons.push(
          h("span", { class: "assign" }, who, h("button", { class: "btn btn-ghost", type: "button", id: "task-assign", onclick: assign }, "Assign")),
        );
      }
    }
    replace(actions, buttons);
  }

  async function act(verb, json) {
    message.replaceChildren();
    try {
      task = await api("POST", `/tasks/${encodeURIComponent(taskId)}/${verb}`, { json: json || {} });
      drawHead();
      changed();
    } catch (err) {
      message.append(notice("error", err.text));
    }
  }

  async function submit(event) {
    event.preventDefault();
    if (!form || done) return;
    message.replaceChildren();
    const collected = form.collect();
    if (collected.errors) return;
    complete.disabled = true;
    try {
      const result = await api("POST", `/tasks/${encodeURIComponent(taskId)}/complete`, { json: { variables: collected.values } });
      done = true;
      changed();
      toast(`Completed “${task.name}”; the instance is ${result.instance_status}`);
      replace(
        detail,
        notice(
          "success",
          h("strong", { id: "task-completed" }, "Task completed. "),
          `The instance is ${result.instance_status}: `,
          h("a", { href: `#/instances/${encodeURIComponent(result.instance_id)}` }, "open it"),
          ".",
        ),
      );
    } catch (err) {
      if (err.status === 422) {
        form.showServerErrors(err.detail);
        message.append(notice("error", "The form has errors: see the fields marked below."));
      } else {
        message.append(notice("error", err.text));
      }
    } finally {
      complete.disabled = false;
    }
  }

  function closed() {
    done = true;
    complete.hidden = true;
    actions.replaceChildren();
    replace(formBox, notice("info", `This task is ${task.state}${task.closed_by ? ` (by ${task.closed_by})` : ""}.`));
  }

  load();
  let listed = true;
  return {
    update(fresh) {
      if (done || !task) return;
      if (!fresh) {
        if (!listed) return;
        listed = false;
        // Gone from the open list: someone completed or claimed it, or the process moved on. Ask once.
        api("GET", `/tasks/${encodeURIComponent(taskId)}`).then((t) => {
          if (done) return;
          task = t;
          drawHead();
          if (t.state && t.state !== "open") closed();
        }, () => {});
        return;
      }
      listed = true;
      if (fresh.assignee !== task.assignee) {
        task = { ...task, ...fresh };
        drawHead();
      }
    },
  };
}

function fact(label, value) {
  return [h("dt", {}, label), h("dd", {}, value)];
}

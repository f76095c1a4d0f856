// One definition: its versions, its diagram, starting an instance, and editing it in the bpmn-js
// modeler to deploy the result as a new version.

import { api, ApiError } from "../api.js";
import { openModeler, showDiagram } from "../diagram.js";
import { formatTime, h, notice, replace, shortId, statusBadge, toast } from "../dom.js";
import { can } from "../session.js";
import { describe } from "./models.js";

export async function render(view, { params: [key], query, user, stillHere }) {
  let info;
  try {
    info = await api("GET", `/definitions/${encodeURIComponent(key)}`);
  } catch (err) {
    view.append(backLink(), notice("error", err.status === 404 ? `No definition '${key}' is visible to you.` : err.text));
    return;
  }
  if (!stillHere()) return;
  const latest = info.versions[info.versions.length - 1];
  const version = Number(query.version) || latest.version;
  const shown = info.versions.find((v) => v.version === version) || latest;
  let xml;
  try {
    xml = await api("GET", `/definitions/${encodeURIComponent(key)}/versions/${shown.version}/xml`, { accept: "application/xml" });
  } catch (err) {
    view.append(backLink(), notice("error", `The model cannot be read: ${err.text}`));
    return;
  }
  if (!stillHere()) return;

  const canvas = h("div", { class: "diagram", id: "diagram" });
  const below = h("div", { id: "model-below" });
  const picker = h(
    "select",
    {
      id: "version-select",
      "aria-label": "Version",
      onchange: (event) => {
        location.hash = `#/models/${encodeURIComponent(key)}?version=${event.target.value}`;
      },
    },
    [...info.versions].reverse().map((v) => h("option", { value: v.version, selected: v.version === shown.version }, `v${v.version} · ${formatTime(v.deployed_at)}`)),
  );
  const buttons = h("div", { class: "actions" });
  if (can.operate(user)) {
    buttons.append(h("button", { class: "btn btn-primary", id: "start-instance", type: "button", onclick: () => startPanel(below, key, shown.version) }, "Start instance"));
  }
  if (can.deploy(user)) {
    buttons.append(h("button", { class: "btn", id: "edit-model", type: "button", onclick: () => edit(canvas, below, buttons, key, shown.version, xml) }, "Edit"));
  }
  const download = h("a", { class: "btn btn-ghost", download: `${key}.v${shown.version}.bpmn` }, "Download XML");
  download.href = URL.createObjectURL(new Blob([xml], { type: "application/xml" }));
  buttons.append(download);

  view.append(
    backLink(),
    h(
      "div",
      { class: "page-head" },
      h(
        "div",
        {},
        h("h1", {}, info.name || key),
        h("p", { class: "muted" }, h("code", {}, key), ` · ${info.versions.length} version${info.versions.length === 1 ? "" : "s"} · hash `, h("code", { title: shown.hash }, shown.hash.slice(0, 12))),
      ),
      h("div", { class: "head-tools" }, picker, buttons),
    ),
    h("div", { class: "card card-flush" }, canvas),
    below,
  );
  await showDiagram(canvas, xml);
  if (stillHere()) recentInstances(view, key);
  return () => URL.revokeObjectURL(download.href);
}

function backLink() {
  return h("a", { href: "#/models", class: "back" }, "← Models");
}

function startPanel(below, key, version) {
  const business = h("input", { id: "start-business-key", type: "text", placeholder: "optional, e.g. an order number" });
  const variables = h("textarea", { id: "start-variables", class: "json", rows: 6, spellcheck: "false" });
  variables.value = "{\n  \n}";
  const result = h("div");
  const start = async (event) => {
    event.preventDefault();
    result.replaceChildren();
    let parsed;
    try {
      parsed = JSON.parse(variables.value || "{}");
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("expected a JSON object");
    } catch (err) {
      result.append(notice("error", `Variables: ${err.message}`));
      return;
    }
    try {
      const created = await api("POST", "/instances", {
        json: { definition_key: key, version, variables: parsed, business_key: business.value.trim() || null },
      });
      toast(`Started instance ${shortId(created.id)}`);
      location.hash = `#/instances/${encodeURIComponent(created.id)}`;
    } catch (err) {
      result.append(notice("error", h("strong", {}, "Not started. "), err.text));
    }
  };
  replace(
    below,
    h(
      "form",
      { class: "card", id: "start-form", onsubmit: start },
      h("div", { class: "card-head" }, h("h2", {}, `Start ${key} v${version}`)),
      h("div", { class: "field" }, h("label", { class: "field-label", for: "start-business-key" }, "Business key"), business),
      h("div", { class: "field" }, h("label", { class: "field-label", for: "start-variables" }, "Variables (JSON object)"), variables),
      result,
      h(
        "div",
        { class: "actions" },
        h("button", { class: "btn btn-ghost", type: "button", onclick: () => below.replaceChildren() }, "Cancel"),
        h("button", { class: "btn btn-primary", type: "submit", id: "start-submit" }, "Start"),
      ),
    ),
  );
  variables.focus();
}

async function edit(canvas, below, buttons, key, version, xml) {
  buttons.hidden = true;
  canvas.classList.add("diagram-edit");
  const modeler = await openModeler(canvas, xml);
  if (!modeler) return;
  const result = h("div", { id: "edit-result" });
  // The version's other files (forms, decision tables, called processes) are deployed again with
  // the edited model; files the user attaches replace those of the same name.
  const base = `/definitions/${encodeURIComponent(key)}/versions/${version}/files`;
  const [mainName, ...others] = await api("GET", base);
  let attached = await Promise.all(
    others.map(async (name) => {
      const text = await api("GET", `${base}/${encodeURIComponent(name)}`, { accept: "*/*" });
      return new File([typeof text === "string" ? text : JSON.stringify(text)], name);
    }),
  );
  const names = h("span", { class: "muted small", id: "edit-attached" }, attached.map((f) => f.name).join(", "));
  const attach = h("input", { type: "file", id: "edit-attach", multiple: true, accept: ".json,.form,.dmn", hidden: true });
  attach.addEventListener("change", () => {
    attached = attached.filter((f) => ![...attach.files].some((n) => n.name === f.name)).concat([...attach.files]);
    names.textContent = attached.map((f) => f.name).join(", ");
    attach.value = "";
  });
  const deploy = async () => {
    result.replaceChildren(h("div", { class: "loading" }, "Deploying…"));
    const { xml: edited } = await modeler.saveXML({ format: true });
    const form = new FormData();
    form.append("files", new Blob([edited], { type: "application/xml" }), mainName);
    for (const file of attached) form.append("files", file, file.name);
    try {
      const answer = await api("POST", "/deployments", { form });
      const mine = answer.definitions.find((d) => d.key === key) || answer.definitions[0];
      toast(`Deployed ${mine.key} v${mine.version}`);
      location.hash = `#/models/${encodeURIComponent(mine.key)}?version=${mine.version}`;
    } catch (err) {
      const items = err instanceof ApiError && Array.isArray(err.detail) ? err.detail : null;
      replace(
        result,
        notice(
          "error",
          h("strong", {}, "Not deployed. "),
          items ? h("ul", { class: "file-errors" }, items.map((e) => h("li", { class: "file-error" }, describe(e)))) : err.text,
        ),
      );
    }
  };
  replace(
    below,
    h(
      "div",
      { class: "card edit-bar" },
      h("span", { class: "muted" }, "Editing a copy: deploying it makes a new version; running instances keep theirs."),
      result,
      h(
        "div",
        { class: "actions" },
        names,
        attach,
        h("label", { class: "btn btn-ghost", for: "edit-attach", title: "Forms and DMN files the model names" }, "Attach forms…"),
        h("button", { class: "btn btn-ghost", type: "button", onclick: () => window.dispatchEvent(new HashChangeEvent("hashchange")) }, "Discard"),
        h("button", { class: "btn btn-primary", type: "button", id: "deploy-edited", onclick: deploy }, "Deploy"),
      ),
    ),
  );
}

async function recentInstances(view, key) {
  let page;
  try {
    page = await api("GET", "/instances", { query: { definition_key: key, limit: 5 } });
  } catch {
    return;
  }
  if (!page.items.length) return;
  view.append(
    h(
      "div",
      { class: "card" },
      h("div", { class: "card-head" }, h("h2", {}, "Recent instances"), h("a", { href: `#/instances?definition_key=${encodeURIComponent(key)}` }, "All →")),
      h(
        "table",
        { class: "table" },
        h(
          "tbody",
          {},
          page.items.map((i) =>
            h(
              "tr",
              {},
              h("td", {}, h("a", { href: `#/instances/${encodeURIComponent(i.id)}` }, h("code", {}, shortId(i.id)))),
              h("td", {}, `v${i.version}`),
              h("td", {}, i.business_key || ""),
              h("td", {}, statusBadge(i.status)),
              h("td", { class: "muted" }, formatTime(i.started_at)),
            ),
          ),
        ),
      ),
    ),
  );
}

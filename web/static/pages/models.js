// Models: the deployed definitions, and (for modelers) an upload of .bpmn/.dmn/form files with
// every validation error shown under the file it is about.

import { api, ApiError } from "../api.js";
import { h, notice, replace, toast } from "../dom.js";
import { can } from "../session.js";

const ACCEPT = ".bpmn,.dmn,.json,.form,.xml";

export async function render(view, { user }) {
  const list = h("div", { class: "card", id: "definitions-card" }, h("div", { class: "loading" }, "Loading…"));
  view.append(
    h(
      "div",
      { class: "page-head" },
      h("div", {}, h("h1", {}, "Models"), h("p", { class: "muted" }, "Process definitions deployed on this platform, latest version first.")),
    ),
    h("div", { class: can.deploy(user) ? "grid-2" : "" }, list, can.deploy(user) ? uploadPanel(() => loadList(list)) : null),
  );
  await loadList(list);
}

async function loadList(card) {
  let definitions;
  try {
    definitions = await api("GET", "/definitions");
  } catch (err) {
    replace(card, notice("error", `The definitions cannot be read: ${err.text || err.message}`));
    return;
  }
  if (!definitions.length) {
    replace(card, h("div", { class: "empty" }, "Nothing is deployed yet."));
    return;
  }
  definitions.sort((a, b) => (a.name || a.key).localeCompare(b.name || b.key));
  replace(
    card,
    h("div", { class: "card-head" }, h("h2", {}, "Definitions"), h("span", { class: "muted" }, `${definitions.length} deployed`)),
    h(
      "table",
      { class: "table", id: "definitions" },
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Key"), h("th", { class: "num" }, "Version"), h("th", {}, "Hash"))),
      h(
        "tbody",
        {},
        definitions.map((d) =>
          h(
            "tr",
            { dataset: { key: d.key } },
            h("td", {}, h("a", { href: `#/models/${encodeURIComponent(d.key)}`, class: "strong" }, d.name || d.key)),
            h("td", {}, h("code", {}, d.key)),
            h("td", { class: "num" }, h("span", { class: "badge" }, `v${d.version}`)),
            h("td", {}, h("code", { class: "muted", title: d.hash }, d.hash.slice(0, 12))),
          ),
        ),
      ),
    ),
  );
}

function uploadPanel(onDeployed) {
  let files = [];
  const input = h("input", { type: "file", id: "upload-input", multiple: true, accept: ACCEPT, hidden: true });
  const rows = h("ul", { class: "file-list", id: "upload-files" });
  const general = h("div", { id: "upload-result" });
  const deploy = h("button", { class: "btn btn-primary", type: "button", id: "upload-deploy", disabled: true }, "Deploy");
  const clear = h("button", { class: "btn btn-ghost", type: "button", disabled: true }, "Clear");
  const drop = h(
    "label",
    { class: "dropzone", id: "upload-drop", for: "upload-input", tabindex: "0" },
    h("span", { class: "dropzone-icon", "aria-hidden": "true" }, "⇪"),
    h("strong", {}, "Drop .bpmn, .dmn and form files here"),
    h("span", { class: "muted" }, "or click to choose them. Files deployed together may refer to each other."),
  );

  function add(list) {
    for (const file of list) {
      files = files.filter((f) => f.name !== file.name).concat([file]);
    }
    general.replaceChildren();
    draw();
  }

  function draw(errors = {}) {
    replace(
      rows,
      files.map((file) =>
        h(
          "li",
          { class: `file${errors[file.name] ? " has-error" : ""}`, dataset: { file: file.name } },
          h(
            "div",
            { class: "file-row" },
            h("span", { class: "file-name" }, file.name),
            h("span", { class: "muted small" }, `${Math.max(1, Math.round(file.size / 1024))} KB`),
            h("button", {
              class: "btn btn-ghost btn-small",
              type: "button",
              title: `Remove ${file.name}`,
              onclick: () => {
                files = files.filter((f) => f !== file);
                draw(errors);
              },
            }, "Remove"),
          ),
          errors[file.name]
            ? h("ul", { class: "file-errors" }, errors[file.name].map((e) => h("li", { class: "file-error" }, describe(e))))
            : null,
        ),
      ),
    );
    deploy.disabled = clear.disabled = !files.length;
  }

  async function send() {
    deploy.disabled = true;
    general.replaceChildren(h("div", { class: "loading" }, "Deploying…"));
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    try {
      const answer = await api("POST", "/deployments", { form });
      const lines = answer.definitions.map((d) => h("li", {}, h("a", { href: `#/models/${encodeURIComponent(d.key)}` }, d.name || d.key), ` version ${d.version}`));
      replace(general, notice("success", h("strong", {}, "Deployed."), h("ul", {}, lines)));
      toast(`Deployed ${answer.definitions.map((d) => `${d.key} v${d.version}`).join(", ")}`);
      files = [];
      draw();
      onDeployed();
    } catch (err) {
      showErrors(err);
    } finally {
      deploy.disabled = !files.length;
    }
  }

  function showErrors(err) {
    if (!(err instanceof ApiError) || !Array.isArray(err.detail)) {
      replace(general, notice("error", h("strong", {}, "Not deployed. "), err.text || err.message));
      draw();
      return;
    }
    const byFile = {};
    const elsewhere = [];
    for (const e of err.detail) {
      if (e.file && files.some((f) => f.name === e.file)) (byFile[e.file] ||= []).push(e);
      else elsewhere.push(e);
    }
    replace(
      general,
      notice(
        "error",
        h("strong", {}, "Not deployed: "),
        `${err.detail.length} problem${err.detail.length === 1 ? "" : "s"}, listed under each file. Nothing was changed.`,
        elsewhere.length ? h("ul", {}, elsewhere.map((e) => h("li", {}, e.file ? `${e.file}: ` : "", describe(e)))) : null,
      ),
    );
    draw(byFile);
  }

  input.addEventListener("change", () => {
    add(input.files);
    input.value = "";
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("dragging");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("dragging");
    add(event.dataTransfer.files);
  });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") input.click();
  });
  deploy.addEventListener("click", send);
  clear.addEventListener("click", () => {
    files = [];
    general.replaceChildren();
    draw();
  });

  return h(
    "section",
    { class: "card", id: "upload" },
    h("div", { class: "card-head" }, h("h2", {}, "Deploy models")),
    drop,
    input,
    rows,
    general,
    h("div", { class: "actions" }, clear, deploy),
  );
}

/** "line 12 · element approve: message" from {file, element_id, line, message} (or a FastAPI {loc, msg}). */
export function describe(error) {
  const where = [];
  if (error.line) where.push(`line ${error.line}`);
  const element = error.element_id || error.element;
  if (element) where.push(`element ${element}`);
  const text = error.message || error.msg || JSON.stringify(error);
  return where.length ? [h("span", { class: "where" }, where.join(" · ")), " ", text] : text;
}

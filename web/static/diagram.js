// bpmn-js from its prebuilt bundles (web/node_modules, installed by `make install`).
// Both bundles publish themselves as window.BpmnJS, so each is loaded once, on first use, and the global
// is taken away before the other can overwrite it.

import { h, notice } from "./dom.js";

const VENDOR = "/console/vendor/bpmn-js";
const BUNDLES = {
  viewer: `${VENDOR}/bpmn-navigated-viewer.production.min.js`,
  modeler: `${VENDOR}/bpmn-modeler.production.min.js`,
};
const loaded = {};
let queue = Promise.resolve();

export class MissingBpmnJs extends Error {}

function load(kind) {
  if (!loaded[kind]) {
    // One at a time: two bundles loading together would race for window.BpmnJS.
    loaded[kind] = queue = queue.then(
      () =>
        new Promise((resolve, reject) => {
          const script = h("script", { src: BUNDLES[kind] });
          script.onload = () => {
            const BpmnJS = window.BpmnJS;
            delete window.BpmnJS;
            if (BpmnJS) resolve(BpmnJS);
            else reject(new MissingBpmnJs("bpmn-js did not load"));
          };
          script.onerror = () => reject(new MissingBpmnJs("bpmn-js is not installed on the server"));
          document.head.append(script);
        }),
    );
    // A failed load may succeed after `make install`: forget it so the next page tries again.
    loaded[kind].catch(() => {
      delete loaded[kind];
      queue = Promise.resolve();
    });
  }
  return loaded[kind];
}

export function missingNotice() {
  return notice(
    "error",
    h("strong", {}, "The diagram viewer is not installed. "),
    "bpmn-js comes from npm: on the server, run ",
    h("code", {}, "make install"),
    " (it runs npm ci in web/), then reload this page.",
  );
}

/**
 * Render `xml` read-only in `container`. `marks` = {completed: [ids], active: [ids], incidents: [{element_id, message}]}.
 * Returns the viewer, or null after putting a message in the container (bpmn-js missing, bad XML).
 */
export async function showDiagram(container, xml, marks = {}) {
  let Viewer;
  try {
    Viewer = await load("viewer");
  } catch {
    container.replaceChildren(missingNotice());
    return null;
  }
  container.replaceChildren();
  const viewer = new Viewer({ container });
  try {
    await viewer.importXML(xml);
  } catch (err) {
    container.replaceChildren(notice("error", `The diagram cannot be drawn: ${err.message}`));
    return null;
  }
  const canvas = viewer.get("canvas");
  canvas.zoom("fit-viewport", "auto");
  mark(viewer, marks);
  return viewer;
}

/** Completed elements, active tokens and incidents as CSS classes (styles.css) and overlays. */
export function mark(viewer, { completed = [], active = [], incidents = [] } = {}) {
  const canvas = viewer.get("canvas");
  const registry = viewer.get("elementRegistry");
  const overlays = viewer.get("overlays");
  for (const element of registry.getAll()) {
    for (const name of ["amx-completed", "amx-active", "amx-incident"]) canvas.removeMarker(element, name);
  }
  overlays.remove({ type: "amx-incident" });
  const known = (id) => Boolean(registry.get(id));
  // An element run many times (a loop) may be both completed and active: active wins, it is the news.
  for (const id of completed.filter(known)) canvas.addMarker(id, "amx-completed");
  for (const id of active.filter(known)) {
    canvas.removeMarker(id, "amx-completed");
    canvas.addMarker(id, "amx-active");
  }
  // The API names flow nodes only; a sequence flow counts as taken when both its ends were reached.
  const reached = new Set([...completed, ...active]);
  const done = new Set(completed);
  for (const element of registry.filter((e) => e.type === "bpmn:SequenceFlow")) {
    if (done.has(element.source?.id) && reached.has(element.target?.id)) canvas.addMarker(element, "amx-completed");
  }
  for (const incident of incidents.filter((i) => known(i.element_id))) {
    canvas.addMarker(incident.element_id, "amx-incident");
    overlays.add(incident.element_id, "amx-incident", {
      position: { top: -12, right: 12 },
      html: h("span", { class: "incident-flag", title: incident.message }, "!"),
    });
  }
}

/** The modeler, on `xml`; null (with a message in the container) when bpmn-js is missing. */
export async function openModeler(container, xml) {
  let Modeler;
  try {
    Modeler = await load("modeler");
  } catch {
    container.replaceChildren(missingNotice());
    return null;
  }
  container.replaceChildren();
  const modeler = new Modeler({ container });
  await modeler.importXML(xml);
  modeler.get("canvas").zoom("fit-viewport", "auto");
  return modeler;
}

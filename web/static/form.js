// JSON Schema → HTML form, and back to the variables a task completes with.
// Handles what task forms use: string (date, date-time, email, textarea), number, integer, boolean,
// enum → select, nested objects, title/description/default/required and the usual limits. Anything
// else (arrays, oneOf) is edited as JSON so no schema leaves a field unreachable.
// The server validates again: its 422 errors (`detail: [{loc: ["body", "variables", ...], msg}]`) are
// shown next to the field they name.

import { h } from "./dom.js";

let counter = 0;

/**
 * renderForm(schema, uiSchema, initial) → {element, collect(), showServerErrors(detail)}.
 * collect() → {values} or {errors: n} after marking every field it refused.
 */
export function renderForm(schema, uiSchema = {}, initial = {}) {
  const fields = [];
  const general = h("div", { class: "form-errors", role: "alert" });
  const element = h("div", { class: "schema-form" });
  if (schema.title) element.append(h("h3", { class: "form-title" }, schema.title));
  if (schema.description) element.append(h("p", { class: "form-description" }, schema.description));
  element.append(general, objectFields(schema, uiSchema || {}, initial || {}, [], fields));

  function collect() {
    general.replaceChildren();
    const values = {};
    let errors = 0;
    for (const field of fields) {
      field.setError(null);
      const { value, error } = field.read();
      if (error) {
        field.setError(error);
        errors += 1;
      } else if (value !== undefined) {
        setPath(values, field.path, value);
      }
    }
    if (errors) fields.find((f) => f.hasError())?.focus();
    return errors ? { errors } : { values };
  }

  function showServerErrors(detail) {
    general.replaceChildren();
    const items = Array.isArray(detail) ? detail : [{ msg: String(detail) }];
    for (const item of items) {
      const loc = (item.loc || []).map(String);
      // ["body", "variables", "amount"] → amount; an error about the body as a whole has no field.
      const at = loc[0] === "body" && loc[1] === "variables" ? loc.slice(2) : [];
      const field = at.length ? bestField(fields, at) : null;
      const text = item.msg || item.message || JSON.stringify(item);
      if (field) field.setError(text, { append: true });
      else general.append(h("div", {}, at.length ? `${at.join(".")}: ${text}` : text));
    }
    fields.find((f) => f.hasError())?.focus();
  }

  return { element, collect, showServerErrors };
}

function bestField(fields, loc) {
  // The deepest field that `loc` starts with: an error about list item `tags.2` goes to `tags`.
  let best = null;
  for (const field of fields) {
    const path = field.path;
    if (path.length <= loc.length && path.every((part, i) => part === loc[i])) {
      if (!best || path.length > best.path.length) best = field;
    }
  }
  return best;
}

function setPath(target, path, value) {
  let node = target;
  for (const part of path.slice(0, -1)) {
    node[part] = node[part] && typeof node[part] === "object" ? node[part] : {};
    node = node[part];
  }
  node[path[path.length - 1]] = value;
}

function ordered(properties, ui) {
  const names = Object.keys(properties || {});
  const order = ui["ui:order"];
  if (!Array.isArray(order)) return names;
  const rest = names.filter((n) => !order.includes(n));
  return order.flatMap((n) => (n === "*" ? rest : names.includes(n) ? [n] : [])).concat(order.includes("*") ? [] : rest);
}

function objectFields(schema, ui, initial, path, fields) {
  const required = new Set(schema.required || []);
  const box = h("div", { class: "form-fields" });
  for (const name of ordered(schema.properties, ui)) {
    const property = schema.properties[name] || {};
    const fieldUi = ui[name] || {};
    if (fieldUi["ui:widget"] === "hidden") continue;
    const value = initial[name] !== undefined ? initial[name] : property.default;
    if (property.type === "object" && property.properties) {
      box.append(
        h(
          "fieldset",
          { class: "form-group" },
          h("legend", {}, property.title || name),
          property.description ? h("p", { class: "help" }, property.description) : null,
          objectFields(property, fieldUi, value || {}, [...path, name], fields),
        ),
      );
    } else {
      const field = makeField(name, property, fieldUi, value, required.has(name), [...path, name]);
      fields.push(field);
      box.append(field.element);
    }
  }
  return box;
}

function makeField(name, property, ui, value, required, path) {
  const id = `f${++counter}-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  const label = property.title || name;
  const help = ui["ui:help"] || property.description;
  const readOnly = Boolean(property.readOnly || ui["ui:readonly"] || ui["ui:disabled"]);
  const error = h("div", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
  const { input, read } = control(id, property, ui, value, required, readOnly);
  input.setAttribute("aria-describedby", `${id}-error`);
  // The user is fixing it: the message about the old value would only be in the way.
  const clear = () => {
    element.classList.remove("has-error");
    error.replaceChildren();
  };
  input.addEventListener("input", clear);
  input.addEventListener("change", clear);
  input.dataset.field = path.join(".");
  const isCheckbox = input.type === "checkbox";
  const labelNode = h("label", { for: id, class: "field-label" }, label, required ? h("span", { class: "req", title: "required" }, " *") : null);
  const element = h(
    "div",
    { class: `field${isCheckbox ? " field-checkbox" : ""}`, dataset: { field: path.join(".") } },
    isCheckbox ? [input, labelNode] : [labelNode, input],
    help ? h("div", { class: "help" }, help) : null,
    error,
  );
  return {
    path,
    element,
    read,
    focus: () => input.focus(),
    hasError: () => element.classList.contains("has-error"),
    setError(text, { append = false } = {}) {
      if (!text) {
        element.classList.remove("has-error");
        error.replaceChildren();
        return;
      }
      element.classList.add("has-error");
      if (append && error.textContent) error.append(h("br"), text);
      else error.textContent = text;
    },
  };
}

function control(id, property, ui, value, required, readOnly) {
  const widget = ui["ui:widget"] || property["x-widget"];
  const common = { id, name: id, disabled: readOnly, placeholder: ui["ui:placeholder"] || property.examples?.[0] };
  const types = Array.isArray(property.type) ? property.type : [property.type];
  const type = types.find((t) => t !== "null") || (property.enum ? "string" : undefined);

  if (property.enum || property.oneOf?.every((o) => "const" in o)) {
    const options = property.enum
      ? property.enum.map((v, i) => ({ value: v, title: property.enumNames?.[i] ?? String(v) }))
      : property.oneOf.map((o) => ({ value: o.const, title: o.title ?? String(o.const) }));
    const select = h(
      "select",
      common,
      required && value !== undefined ? null : h("option", { value: "" }, required ? "Choose…" : "—"),
      options.map((o, i) => h("option", { value: String(i), selected: value !== undefined && o.value === value }, o.title)),
    );
    return {
      input: select,
      read: () => {
        if (select.value === "") return required ? { error: "Choose a value" } : { value: undefined };
        return { value: options[Number(select.value)].value };
      },
    };
  }

  if (type === "boolean") {
    const box = h("input", { ...common, type: "checkbox", checked: value === true });
    return { input: box, read: () => ({ value: box.checked }) };
  }

  if (type === "number" || type === "integer") {
    const input = h("input", {
      ...common,
      type: "number",
      inputmode: type === "integer" ? "numeric" : "decimal",
      step: type === "integer" ? String(property.multipleOf || 1) : property.multipleOf ? String(property.multipleOf) : "any",
      min: property.minimum,
      max: property.maximum,
      value: value ?? "",
    });
    return {
      input,
      read: () => {
        if (input.value.trim() === "") {
          // A browser leaves a number field empty when what was typed is not a number.
          if (input.validity.badInput) return { error: "Enter a number" };
          return required ? { error: "This field is required" } : { value: undefined };
        }
        const number = Number(input.value);
        if (!Number.isFinite(number)) return { error: "Enter a number" };
        if (type === "integer" && !Number.isInteger(number)) return { error: "Enter a whole number" };
        if (property.minimum !== undefined && number < property.minimum) return { error: `At least ${property.minimum}` };
        if (property.maximum !== undefined && number > property.maximum) return { error: `At most ${property.maximum}` };
        if (property.exclusiveMinimum !== undefined && number <= property.exclusiveMinimum)
          return { error: `More than ${property.exclusiveMinimum}` };
        if (property.exclusiveMaximum !== undefined && number >= property.exclusiveMaximum)
          return { error: `Less than ${property.exclusiveMaximum}` };
        return { value: number };
      },
    };
  }

  if (type === "string" || (type === undefined && !property.items)) {
    const format = property.format;
    let input;
    if (widget === "textarea") {
      input = h("textarea", { ...common, rows: ui["ui:options"]?.rows || 4 });
      input.value = value ?? "";
    } else {
      const inputType = { date: "date", "date-time": "datetime-local", email: "email", uri: "url", time: "time" }[format];
      input = h("input", {
        ...common,
        type: widget === "password" ? "password" : inputType || "text",
        value: format === "date-time" && value ? String(value).slice(0, 16) : value ?? "",
      });
    }
    if (property.maxLength !== undefined) input.maxLength = property.maxLength;
    return {
      input,
      read: () => {
        let text = input.value;
        if (text === "") return required ? { error: "This field is required" } : { value: undefined };
        if (property.minLength !== undefined && text.length < property.minLength)
          return { error: `At least ${property.minLength} characters` };
        if (property.pattern && !new RegExp(property.pattern, "u").test(text))
          return { error: `Does not match the expected format (${property.pattern})` };
        if (input.type === "email" && !input.validity.valid) return { error: "Enter an email address" };
        if (format === "date-time") text = new Date(text).toISOString();
        return { value: text };
      },
    };
  }

  // Arrays and anything else: JSON, checked for syntax here and for the schema by the server.
  const area = h("textarea", { ...common, rows: 3, class: "json" });
  area.value = value === undefined ? "" : JSON.stringify(value, null, 2);
  return {
    input: area,
    read: () => {
      if (area.value.trim() === "") return required ? { error: "This field is required" } : { value: undefined };
      try {
        return { value: JSON.parse(area.value) };
      } catch (err) {
        return { error: `Not valid JSON: ${err.message}` };
      }
    },
  };
}

/** A free JSON editor for tasks without a form: {element, collect(), showServerErrors(detail)}. */
export function renderJsonEditor(initial = {}) {
  const id = `f${++counter}-variables`;
  const area = h("textarea", { id, class: "json", rows: 8, spellcheck: "false" });
  area.value = JSON.stringify(initial, null, 2);
  const error = h("div", { class: "field-error", role: "alert" });
  const field = h(
    "div",
    { class: "field" },
    h("label", { for: id, class: "field-label" }, "Variables (JSON object)"),
    h("div", { class: "help" }, "This task has no form: the variables you enter here are merged into the process."),
    area,
    error,
  );
  const element = h("div", { class: "schema-form" }, field);
  const fail = (text) => {
    field.classList.add("has-error");
    error.textContent = text;
  };
  return {
    element,
    collect() {
      field.classList.remove("has-error");
      error.textContent = "";
      try {
        const values = JSON.parse(area.value || "{}");
        if (!values || typeof values !== "object" || Array.isArray(values)) throw new Error("expected an object");
        return { values };
      } catch (err) {
        fail(`Not a JSON object: ${err.message}`);
        return { errors: 1 };
      }
    },
    showServerErrors(detail) {
      const items = Array.isArray(detail) ? detail : [{ msg: String(detail) }];
      fail(items.map((i) => [...(i.loc || []).slice(2), i.msg || i.message].filter(Boolean).join(": ")).join("; "));
    },
  };
}

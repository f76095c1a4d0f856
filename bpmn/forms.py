"""User task forms: JSON Schema files deployed with the model, as SpiffArena does, and Camunda 8
form JSON (`.form`, from Camunda Modeler's form editor) mapped onto JSON Schema.

A form is plain data deployed beside the BPMN files: the workflow validates a completion against
it (deterministically: the schema and the validator are pure), and the console renders it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

FORM_SUFFIXES = (".json", ".form")
_MAX_ERRORS = 20

# Camunda form component type → JSON Schema of its value. Layout-only components (text, spacer,
# separator, image, button, group headings) carry no value and are skipped.
_CAMUNDA_TYPES: dict[str, dict[str, Any]] = {
    "textfield": {"type": "string"},
    "textarea": {"type": "string", "x-widget": "textarea"},
    "number": {"type": "number"},
    "checkbox": {"type": "boolean"},
    "radio": {"type": "string"},
    "select": {"type": "string"},
    "datetime": {"type": "string"},
    "checklist": {"type": "array", "items": {"type": "string"}},
    "taglist": {"type": "array", "items": {"type": "string"}},
}


class FormError(ValueError):
    """The file is not a usable form; the message says why."""


@dataclass(frozen=True)
class Form:
    file: str
    schema: dict[str, Any]
    form_id: str | None  # a Camunda form's `id`, which `zeebe:formDefinition formId` names


def is_form_file(name: str) -> bool:
    return PurePath(name).suffix.lower() in FORM_SUFFIXES


def load(name: str, text: str) -> Form:
    """A form file as JSON Schema. Raises FormError naming what is wrong."""
    try:
        document = json.loads(text)
    except ValueError as err:
        raise FormError(f"not JSON: {err}") from None
    if not isinstance(document, dict):
        raise FormError("a form is a JSON object (a JSON Schema, or a Camunda form with 'components')")
    if isinstance(document.get("components"), list):
        return Form(name, _from_camunda(document), str(document["id"]) if document.get("id") else None)
    try:
        Draft202012Validator.check_schema(document)
    except SchemaError as err:
        where = "/".join(str(part) for part in err.path) or "the top level"
        raise FormError(f"not a valid JSON Schema at {where}: {err.message}") from None
    if document.get("type", "object") != "object":
        raise FormError("a form's schema describes an object: its top-level 'type' must be 'object'")
    return Form(name, document, None)


def _from_camunda(document: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for component in _fields(document["components"]):
        key, kind = component.get("key"), component.get("type")
        if not isinstance(key, str) or kind not in _CAMUNDA_TYPES:
            continue
        schema = dict(_CAMUNDA_TYPES[kind])
        if component.get("label"):
            schema["title"] = str(component["label"])
        if component.get("description"):
            schema["description"] = str(component["description"])
        values = component.get("values")
        if isinstance(values, list) and values:
            options = [v.get("value") for v in values if isinstance(v, dict) and "value" in v]
            if schema["type"] == "array":
                schema["items"] = {"enum": options}
            else:
                schema["enum"] = options
        validate = component.get("validate") or {}
        if "defaultValue" in component:
            schema["default"] = component["defaultValue"]
        for source, target in (("min", "minimum"), ("max", "maximum"), ("minLength", "minLength"),
                               ("maxLength", "maxLength"), ("pattern", "pattern")):  # fmt: skip
            if source in validate:
                schema[target] = validate[source]
        if validate.get("required"):
            required.append(key)
        properties[key] = schema
    result: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        result["required"] = required
    try:
        Draft202012Validator.check_schema(result)
    except SchemaError as err:
        raise FormError(f"a component cannot be mapped to JSON Schema: {err.message}") from None
    return result


def _fields(components: list[Any]) -> list[dict[str, Any]]:
    """Components in order, those inside groups included."""
    found: list[dict[str, Any]] = []
    for component in components:
        if not isinstance(component, dict):
            continue
        found.append(component)
        nested = component.get("components")
        if isinstance(nested, list):
            found.extend(_fields(nested))
    return found


@dataclass(frozen=True)
class FieldError:
    loc: tuple[str | int, ...]  # the path of the failing field inside the submitted variables
    msg: str


def validate(schema: dict[str, Any], data: dict[str, Any]) -> list[FieldError]:
    """Every problem of `data` against `schema`, the field first; empty when it is valid."""
    errors: list[FieldError] = []
    for error in sorted(Draft202012Validator(schema).iter_errors(data), key=lambda e: list(map(str, e.path))):
        path: tuple[str | int, ...] = tuple(error.path)
        if error.validator == "required" and isinstance(error.validator_value, list):
            # jsonschema reports a missing field at its parent: name the field itself
            missing = [name for name in error.validator_value if isinstance(error.instance, dict)
                       and name not in error.instance]  # fmt: skip
            for name in missing:
                errors.append(FieldError((*path, name), f"'{name}' is required"))
            continue
        errors.append(FieldError(path, error.message))
        if len(errors) >= _MAX_ERRORS:
            break
    return errors

"""Camunda 7 extensions that say what standard BPMN says in its own elements, rewritten into those
elements before SpiffWorkflow reads a process (as bpmn/camunda8.py does for Camunda 8).

- `camunda:collection` and `camunda:elementVariable` on a multi-instance marker: the collection each
  instance takes one element of, and the variable that element is in. They become `loopDataInputRef`
  and `inputDataItem`. Camunda 7 has no output collection: each instance's data merges into the
  process data as it completes (SpiffWorkflow's reading of a multi-instance without outputs).

Only names are taken (`items` or `${items}`): a collection given as any other expression is refused at
deploy, naming the element and the expression, rather than read as something else.
"""

from __future__ import annotations

import re

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException

from bpmn import camunda8, human_tasks

CAMUNDA_NS = human_tasks.CAMUNDA_NS
_NS = {"bpmn": camunda8.BPMN_NS}
_WRAPPED = re.compile(r"^\s*[$#]\{\s*(.*?)\s*\}\s*$", re.DOTALL)


def rewrite(root: etree._Element, filename: str | None) -> None:
    for marker in root.xpath("//bpmn:multiInstanceLoopCharacteristics", namespaces=_NS):
        collection = marker.get(f"{{{CAMUNDA_NS}}}collection")
        element = marker.get(f"{{{CAMUNDA_NS}}}elementVariable")
        added = {}
        if collection is not None:
            added["loopDataInputRef"] = _name(collection, "camunda:collection", marker, filename)
        if element is not None:
            added["inputDataItem"] = _name(element, "camunda:elementVariable", marker, filename)
        camunda8.add_loop_elements(marker, added)


def _name(value: str, what: str, marker: etree._Element, filename: str | None) -> str:
    wrapped = _WRAPPED.match(value)
    name = (wrapped.group(1) if wrapped else value).strip()
    if not name.isidentifier():
        raise ValidationException(
            f"{what} {value!r} is not supported: only a variable name is (`items` or `${{items}}`), not an expression",
            node=marker.getparent(),
            file_name=filename,
        )
    return name

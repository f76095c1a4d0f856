"""Code in a model that lives outside task specs' obvious fields: multi-instance and loop
expressions, and DMN decision-table cells. Checked at deploy like scripts and conditions are,
so hostile or broken cells are a 422 naming the cell, not a surprise when the table first runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lxml import etree

from bpmn.restricted import UnsafeCodeError, check_code


def loop_expressions(task_spec: Any) -> Iterator[tuple[str, str]]:
    """(label, source) of the expressions a multi-instance or standard loop evaluates."""
    for attribute, label in (("cardinality", "loop cardinality"), ("condition", "loop completion condition")):
        source = getattr(task_spec, attribute, None)
        if isinstance(source, str) and source.strip():
            yield label, source


def dmn_cells(root: etree._Element) -> Iterator[tuple[str | None, int | None, str, str]]:
    """(element id, line, label, message) for every DMN cell the restricted evaluator would refuse.

    Spiff evaluates an input entry as an expression, or failing that as a test `v <entry>` against
    the input (`> 5`): an entry is wrong only if neither form parses.
    """
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        kind = etree.QName(element).localname
        if kind not in ("inputExpression", "inputEntry", "outputEntry"):
            continue
        text_node = next((c for c in element if isinstance(c.tag, str) and etree.QName(c).localname == "text"), None)
        source = (text_node.text or "").strip() if text_node is not None else ""
        if not source or (kind == "inputEntry" and source == "-"):
            continue
        label = {"inputExpression": "input expression", "inputEntry": "input entry", "outputEntry": "output entry"}
        problem = _problem(source, kind == "inputEntry")
        if problem:
            yield element.get("id"), element.sourceline, label[kind], problem


def _problem(source: str, test_form_allowed: bool) -> str | None:
    forms = [source, f"v {source}"] if test_form_allowed else [source]
    syntax: str | None = None
    for form in forms:
        try:
            check_code(form, "eval")
            return None
        except UnsafeCodeError as err:
            return str(err)
        except SyntaxError as err:
            syntax = syntax or f"is not valid Python: {err.msg}"
        except (ValueError, RecursionError, MemoryError) as err:
            return f"cannot be parsed: {type(err).__name__}"
    return syntax

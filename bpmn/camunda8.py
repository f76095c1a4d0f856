"""Camunda 8 extensions that say what standard BPMN says in its own elements, rewritten into those
elements before SpiffWorkflow reads a process (after the schema check: the upload itself is kept as
it came).

- `zeebe:calledElement processId="child"` on a call activity: the `calledElement` attribute.
- `zeebe:loopCharacteristics` on a multi-instance marker: `inputCollection="=items"` and
  `inputElement="item"` become `loopDataInputRef` and `inputDataItem`; `outputCollection` and
  `outputElement="=result"` become `loopDataOutputRef` and `outputDataItem`.

Only names are taken: a collection, element or process given as any other expression is refused at
deploy, naming the element and the expression, rather than read as something else.
"""

from __future__ import annotations

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException

from bpmn import feel

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
_NS = {"bpmn": BPMN_NS, "zeebe": ZEEBE_NS}
# children of multiInstanceLoopCharacteristics, in the order the BPMN schema requires
_MI_ORDER = ("loopCardinality", "loopDataInputRef", "loopDataOutputRef", "inputDataItem", "outputDataItem",
             "complexBehaviorDefinition", "completionCondition")  # fmt: skip
_LOOP_FIELDS = (("inputCollection", "loopDataInputRef"), ("inputElement", "inputDataItem"),
                ("outputCollection", "loopDataOutputRef"), ("outputElement", "outputDataItem"))  # fmt: skip


def rewrite(root: etree._Element, filename: str | None, *, feel: bool = True) -> None:
    for activity in root.xpath("//bpmn:callActivity[not(@calledElement)]", namespaces=_NS):
        called = activity.xpath("./bpmn:extensionElements/zeebe:calledElement", namespaces=_NS)
        if called:
            process_id = name_of(
                called[0].get("processId", ""), "zeebe:calledElement processId", activity, filename, feel
            )
            activity.set("calledElement", process_id)
    for marker in root.xpath("//bpmn:multiInstanceLoopCharacteristics", namespaces=_NS):
        found = marker.xpath("./bpmn:extensionElements/zeebe:loopCharacteristics", namespaces=_NS)
        if found:
            _loop(marker, found[0], filename, feel)


def _loop(marker: etree._Element, zeebe: etree._Element, filename: str | None, use_feel: bool) -> None:
    owner = marker.getparent()
    names: dict[str, str] = {}
    for attribute, tag in _LOOP_FIELDS:
        value = zeebe.get(attribute)
        if value:
            names[tag] = name_of(value, attribute, owner, filename, use_feel)
    add_loop_elements(marker, names)


def add_loop_elements(marker: etree._Element, names: dict[str, str]) -> None:
    """Standard multi-instance elements (`loopDataInputRef`, `inputDataItem`, ...) naming the given
    variables, in the order the schema requires; where the model has the standard element, it wins."""
    added: dict[str, etree._Element] = {}
    for tag, name in names.items():
        if tag.endswith("Ref"):
            added[tag] = etree.Element(f"{{{BPMN_NS}}}{tag}")
            added[tag].text = name  # the collection: a variable name
        else:
            added[tag] = etree.Element(f"{{{BPMN_NS}}}{tag}", id=name, name=name)  # Spiff names the item by id
    for tag, node in added.items():
        if marker.find(f"{{{BPMN_NS}}}{tag}") is not None:
            continue  # the standard element, where the model has both, wins
        later = [marker.find(f"{{{BPMN_NS}}}{t}") for t in _MI_ORDER[_MI_ORDER.index(tag) + 1 :]]
        following = next((n for n in later if n is not None), None)
        if following is not None:
            following.addprevious(node)
        else:
            marker.append(node)


def name_of(value: str, what: str, owner: etree._Element | None, filename: str | None, use_feel: bool) -> str:
    """A variable or process name, written plain or as a FEEL name (`=items`)."""
    text = value.strip()
    if text.startswith("="):
        source = text[1:].strip()
        try:
            translated = feel.to_python(source) if use_feel else source
        except feel.FeelError:
            translated = ""
        if translated.startswith(("'", '"')) and translated[1:-1].isidentifier():
            return translated[1:-1]  # a FEEL string literal: ="child"
        text = translated
    if not text.replace("-", "_").replace(".", "_").isidentifier():
        raise ValidationException(
            f"{what} {value!r} is not supported: only a name is (a variable, or the called process id), "
            "not an expression",
            node=owner,
            file_name=filename,
        )
    return text

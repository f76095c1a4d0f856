"""Safe XML parsing for uploaded models.

Uploads are untrusted. lxml is asked never to resolve entities, load DTDs or touch the network, and
a document that declares a DOCTYPE at all is refused: no BPMN or DMN model needs one, and every
entity attack (billion laughs, external files, parameter entities) starts with one. Size, element
count and nesting depth are capped so that a hostile file cannot exhaust the API's memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree


@dataclass(frozen=True)
class XmlLimits:
    max_bytes: int = 5 * 1024 * 1024
    max_elements: int = 50_000
    max_depth: int = 64


@dataclass
class XmlError(Exception):
    message: str
    line: int | None = None

    def __str__(self) -> str:
        return self.message if self.line is None else f"line {self.line}: {self.message}"


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


def parse_xml(content: bytes, limits: XmlLimits | None = None) -> etree._Element:
    limits = limits or XmlLimits()
    if len(content) > limits.max_bytes:
        raise XmlError(f"file is {len(content)} bytes; the limit is {limits.max_bytes}")
    if b"<!DOCTYPE" in content[:4096].upper() or b"<!ENTITY" in content.upper():
        raise XmlError("DOCTYPE and ENTITY declarations are not allowed in models")
    try:
        root = etree.fromstring(content, _parser())
    except etree.XMLSyntaxError as err:
        line = err.lineno if err.lineno else None
        raise XmlError(f"not well-formed XML: {err.msg}", line) from None
    if root is None:
        raise XmlError("empty document")
    if root.getroottree().docinfo.doctype:
        raise XmlError("DOCTYPE declarations are not allowed in models")
    for count, element in enumerate(root.iter(), start=1):
        if count > limits.max_elements:
            raise XmlError(f"more than {limits.max_elements} elements", element.sourceline)
    _check_depth(root, limits.max_depth)
    return root


def _check_depth(root: etree._Element, limit: int) -> None:
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > limit:
            raise XmlError(f"elements nested deeper than {limit} levels", element.sourceline)
        stack.extend((child, depth + 1) for child in element)

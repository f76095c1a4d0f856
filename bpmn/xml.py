"""Safe XML parsing for uploaded models.

Uploads are untrusted. lxml is asked never to resolve entities, load DTDs or touch the network, and
a document that declares a DOCTYPE at all is refused before lxml reads it: no BPMN or DMN model
needs one, and every entity attack (billion laughs, external files, parameter entities) starts with
one. Models are UTF-8, and are read as UTF-8 whatever encoding they declare. XInclude elements are
refused too, so that nothing that ever processes a stored model can be made to read a file. Size,
element count and nesting depth are capped so that a hostile file cannot exhaust the API's memory
or time.
"""

from __future__ import annotations

import itertools
import re
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


# Both namespaces libxml2 treats as XInclude.
_XINCLUDE_NAMESPACES = ("http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude")
_OPTIONS: dict[str, object] = {
    # The bytes were checked as UTF-8 first; a declared encoding must not change what lxml reads
    # (in UTF-16 or UTF-7 a DOCTYPE is invisible to a search for it).
    "encoding": "utf-8",
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
    "collect_ids": False,
}
# A file that may hold more elements than the limit, with comments or CDATA (so its tags cannot simply
# be counted), is fed in pieces, so that the count stops it early: parsed whole, 5 MB of `<a/>` took
# over a second and built a million-element tree before it was counted.
_CHUNK = 64 * 1024


def parse_xml(content: bytes, limits: XmlLimits | None = None) -> etree._Element:
    limits = limits or XmlLimits()
    if len(content) > limits.max_bytes:
        raise XmlError(f"file is {len(content)} bytes; the limit is {limits.max_bytes}")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as err:
        raise XmlError(f"not UTF-8: {err.reason} at byte {err.start}", content.count(b"\n", 0, err.start) + 1) from None
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise XmlError("NUL characters are not allowed: models are UTF-8, not UTF-16 or UTF-32", line)
    # Must be refused before lxml sees it: even with load_dtd=False libxml2 opens the external
    # subset a DOCTYPE names (a local file, a FIFO that blocks the request) while parsing.
    if _doctype_in_prolog(text) or "<!ENTITY" in text.upper():
        raise XmlError("DOCTYPE and ENTITY declarations are not allowed in models")
    # Every start tag is a '<' followed by a name. Outside comments and CDATA (where '<' may stand
    # unescaped) nothing else is, so there the count is exact: a file over the limit is parsed (in C,
    # no tree kept) only up to the first tag past it, so an error before that point is still the one
    # reported, then refused. With comments or CDATA the count is an upper bound, and only a file over
    # it is counted exactly while parsing.
    crossing = next(itertools.islice(_START_TAG.finditer(content), limits.max_elements, None), None)
    try:
        if crossing is None:
            root = etree.fromstring(content, etree.XMLParser(**_OPTIONS))
        elif b"<!--" not in content and b"<![CDATA[" not in content:
            etree.XMLParser(**_OPTIONS).feed(content[: crossing.start()])
            line = content.count(b"\n", 0, crossing.start()) + 1
            raise XmlError(f"too many elements: the limit is {limits.max_elements}", line)
        else:
            root = _parse_counting(content, limits.max_elements)
    except etree.XMLSyntaxError as err:
        raise XmlError(f"not well-formed XML: {err.msg}", err.lineno or None) from None
    if root is None:
        raise XmlError("empty document")
    if root.getroottree().docinfo.doctype:
        # the prolog scan refuses these first; this is the backstop should it ever miss one
        raise XmlError("DOCTYPE declarations are not allowed in models")
    for include in root.iter(*(f"{{{ns}}}*" for ns in _XINCLUDE_NAMESPACES)):
        # never processed here, but a stored model must not make anything that ever does read a file
        raise XmlError("XInclude is not allowed in models", include.sourceline)
    _check_depth(root, limits.max_depth)
    return root


_START_TAG = re.compile(rb"<[^/!?]")


def _parse_counting(content: bytes, max_elements: int) -> etree._Element:
    parser = etree.XMLPullParser(events=("start",), **_OPTIONS)
    elements = 0
    for offset in range(0, len(content), _CHUNK):
        parser.feed(content[offset : offset + _CHUNK])
        for _event, element in parser.read_events():
            elements += 1
            if elements > max_elements:
                raise XmlError(f"too many elements: the limit is {max_elements}", element.sourceline)
    root: etree._Element = parser.close()
    return root


def _check_depth(root: etree._Element, limit: int) -> None:
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > limit:
            raise XmlError(f"elements nested deeper than {limit} levels", element.sourceline)
        stack.extend((child, depth + 1) for child in element)


def _doctype_in_prolog(text: str) -> bool:
    """Whether a `<!` declaration follows the XML declaration, comments and PIs, i.e. a DOCTYPE.

    Scanned rather than searched for in the first few KiB: a long comment pushed it past that.
    """
    pos = 1 if text.startswith("\ufeff") else 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if text.startswith("<?", pos):
            end, skip = text.find("?>", pos + 2), 2
        elif text.startswith("<!--", pos):
            end, skip = text.find("-->", pos + 4), 3
        else:
            return text.startswith("<!", pos)
        if end < 0:
            return False  # unterminated: not well-formed, and lxml says so
        pos = end + skip

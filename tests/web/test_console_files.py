"""How the API serves the console's files: the pages without credentials and never cached stale,
bpmn-js from web/node_modules, and a plain answer naming the fix when `make install` has not run."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.console import BPMN_JS, CONSOLE, VENDOR, mount_console


def client(vendor: Path = BPMN_JS) -> TestClient:
    app = FastAPI()
    mount_console(app, vendor=vendor)
    return TestClient(app)


def test_the_root_leads_to_the_console_page_which_needs_no_key() -> None:
    with client() as http:
        assert http.get("/", follow_redirects=False).headers["location"] == f"{CONSOLE}/"
        page = http.get(f"{CONSOLE}/")
    assert page.status_code == 200
    assert '<script type="module" src="app.js">' in page.text
    assert page.headers["cache-control"] == "no-cache"
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_bpmn_js_is_served_from_node_modules() -> None:
    with client() as http:
        viewer = http.get(f"{VENDOR}/bpmn-navigated-viewer.production.min.js")
        styles = http.get(f"{VENDOR}/assets/bpmn-js.css")
    assert viewer.status_code == 200, "web/node_modules is missing: run make install"
    assert "javascript" in viewer.headers["content-type"]
    assert styles.status_code == 200


def test_without_make_install_the_vendor_files_say_what_to_run(tmp_path: Path) -> None:
    with client(vendor=tmp_path / "node_modules" / "bpmn-js" / "dist") as http:
        missing = http.get(f"{VENDOR}/bpmn-navigated-viewer.production.min.js")
        page = http.get(f"{CONSOLE}/")
    assert missing.status_code == 404
    assert "run make install" in missing.text
    assert page.status_code == 200

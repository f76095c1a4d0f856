"""The web console: static pages (web/static) and bpmn-js's prebuilt bundles (web/node_modules).

The pages hold no data and need no credentials; every data call they make goes to /api/v1 with the
user's bearer key, so the console can show nothing the API would not.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB = Path(__file__).resolve().parent.parent / "web"
STATIC = WEB / "static"
BPMN_JS = WEB / "node_modules" / "bpmn-js" / "dist"
CONSOLE = "/console"
VENDOR = f"{CONSOLE}/vendor/bpmn-js"

# The key lives in sessionStorage: scripts from anywhere else, inline scripts and framing could read it.
# bpmn-js styles its SVG inline and its font comes as a data: URL.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class _ConsoleFiles(StaticFiles):
    """The console's own files: revalidated on every load, so a deploy of the platform never leaves a
    browser running yesterday's modules against today's API."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response


class _VendorFiles(StaticFiles):
    """bpmn-js's dist folder, which `make install` (npm ci) creates: until then a plain 404 that says
    so, instead of Starlette's start-up check turning every request into a 500."""

    def _installed(self) -> bool:
        return self.directory is not None and Path(self.directory).is_dir()

    async def check_config(self) -> None:
        if self._installed():
            await super().check_config()

    async def get_response(self, path: str, scope: Scope) -> Response:
        if not self._installed():
            return PlainTextResponse("bpmn-js is not installed on the server: run make install", status_code=404)
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def mount_console(app: FastAPI, *, vendor: Path = BPMN_JS) -> None:
    """Serve the console at /console/ (and send / there). Call after the API routers are included:
    mounts match in order, and the vendor mount must come before the console's own."""

    @app.get("/", include_in_schema=False)
    async def console_redirect() -> RedirectResponse:
        return RedirectResponse(f"{CONSOLE}/")

    app.mount(VENDOR, _VendorFiles(directory=vendor, check_dir=False), name="console-vendor")
    app.mount(CONSOLE, _ConsoleFiles(directory=STATIC, html=True), name="console")

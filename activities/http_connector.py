"""`http.request`: the built-in connector operator.

Parameters: `method` (default GET), `url`, `headers`, `json` (a body sent as JSON), `timeout`
(seconds). Result: `{"status", "headers", "json"}` when the response is JSON, else `"text"`.
Responses below 500 are results, for the process to branch on; 5xx and transport errors are
retried by Temporal (the HTTP client itself never retries: Temporal owns retries).
"""

from __future__ import annotations

from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.contracts import HTTP_REQUEST_ACTIVITY, ServiceTaskInput

_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
_MAX_BODY = 1_000_000  # history payloads are capped at 2 MB; keep well under


class HttpConnector:
    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = httpx.AsyncClient(transport=transport, follow_redirects=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    @activity.defn(name=HTTP_REQUEST_ACTIVITY)
    async def request(self, inp: ServiceTaskInput) -> dict[str, Any]:
        params = inp.params
        method = str(params.get("method", "GET")).upper()
        url = params.get("url")
        if method not in _METHODS:
            raise ApplicationError(
                f"http.request: unsupported method {method!r}", type="BadParameter", non_retryable=True
            )
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ApplicationError(f"http.request: 'url' must be an http(s) URL, got {url!r}", type="BadParameter",
                                   non_retryable=True)  # fmt: skip
        headers = {str(k): str(v) for k, v in (params.get("headers") or {}).items()}
        # Lets the receiving service deduplicate: an activity can run more than once.
        info = activity.info()
        headers.setdefault("Idempotency-Key", f"{info.workflow_run_id}/{info.activity_id}")
        try:
            response = await self._client.request(
                method,
                url,
                headers=headers,
                json=params.get("json"),
                timeout=float(params.get("timeout", 30)),
            )
        except httpx.HTTPError as err:
            raise ApplicationError(
                f"http.request {method} {url}: {type(err).__name__}: {err}", type="HttpError"
            ) from err
        if response.status_code >= 500:
            raise ApplicationError(f"http.request {method} {url}: HTTP {response.status_code}", type="HttpError")
        result: dict[str, Any] = {"status": response.status_code, "headers": dict(response.headers)}
        body = response.content[:_MAX_BODY]
        if response.headers.get("content-type", "").startswith("application/json"):
            try:
                result["json"] = response.json()
            except ValueError:
                result["text"] = body.decode(response.encoding or "utf-8", errors="replace")
        else:
            result["text"] = body.decode(response.encoding or "utf-8", errors="replace")
        return result

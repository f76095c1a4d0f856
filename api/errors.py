"""Error answers as the OpenAPI document describes them: every status a route can give, with its body.

Every error body is `{"detail": ...}`: a sentence naming what was wrong (the element, the field, the id),
or for validation errors a list of `{loc, msg, ...}` (FastAPI's) or of `{file, element_id, line, message}`
(a model that does not deploy).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    detail: str = Field(description="what went wrong, naming the resource, field or element")


class ModelErrorPublic(BaseModel):
    file: str
    element_id: str | None
    line: int | None
    message: str


class ModelErrorsBody(BaseModel):
    detail: list[ModelErrorPublic] = Field(description="every problem found, each with where it is")


class FieldErrorPublic(BaseModel):
    loc: list[str | int] = Field(description="where: e.g. ['body', 'variables', 'amount']")
    msg: str


class FieldErrorsBody(BaseModel):
    detail: list[FieldErrorPublic] = Field(description="every failing field")


_DEFAULTS = {
    401: "No credentials, or an unknown, revoked or invalid API key or token",
    403: "The caller's role (or tenant) does not allow this",
    404: "No such resource visible to the caller",
    409: "The resource is not in a state that allows this",
    413: "An uploaded file is larger than the limit",
    503: "Temporal or the database does not answer; nothing was changed, try again",
}


def responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for `codes`; `descriptions` (keyed `e404=...`) replace the default text."""
    return {code: {"model": ErrorBody, "description": descriptions.get(f"e{code}", _DEFAULTS[code])} for code in codes}


# Every route behind authentication can answer these.
SECURED = responses(401, 403, 503)

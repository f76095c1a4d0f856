"""Dependencies for route handlers, as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from temporalio.client import Client

from api.state import AppState
from store import api_keys


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.aimatrix
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    with state.session_factory.begin() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_temporal(state: StateDep) -> Client:
    return state.temporal


TemporalDep = Annotated[Client, Depends(get_temporal)]

_bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]


def get_current_user(
    state: StateDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing bearer token: send 'Authorization: Bearer <api key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with state.session_factory() as session:
        key = api_keys.find(session, key=credentials.credentials)
        if key is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="unknown or revoked API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Principal(subject=key.subject, roles=frozenset(key.roles.split(",")))


CurrentUser = Annotated[Principal, Depends(get_current_user)]

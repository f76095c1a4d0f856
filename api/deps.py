"""Dependencies for route handlers, as `Annotated` aliases."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from temporalio.client import Client

from api.auth import InvalidTokenError, KeysUnavailableError, Role, looks_like_jwt, verifier_for
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

log = logging.getLogger("aimatrix.api")


@dataclass(frozen=True)
class Principal:
    """Who calls: from an API key's record or a verified token's claims."""

    subject: str
    roles: frozenset[str]
    groups: frozenset[str] = frozenset()
    # From the key's record or the token's tenant claim; None: platform-wide (sees every tenant).
    tenant: str | None = None

    def has_any_role(self, roles: Iterable[str]) -> bool:
        """True if the principal holds one of `roles`; admin holds them all."""
        return Role.ADMIN in self.roles or not self.roles.isdisjoint(roles)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def get_current_user(
    state: StateDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The authenticated caller, whatever their roles; 401 for missing, unknown or revoked credentials."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing bearer token: send 'Authorization: Bearer <api key or token>'")
    token = credentials.credentials
    verifier = verifier_for(state.settings)
    if verifier is not None and looks_like_jwt(token):
        try:
            verified = verifier.verify(token)
        except InvalidTokenError as err:
            raise _unauthorized(f"invalid bearer token: {err}") from None
        except KeysUnavailableError as err:
            log.warning("cannot check a bearer token: %s", err)
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"bearer tokens cannot be checked now: {err}"
            ) from None
        return Principal(subject=verified.subject, roles=verified.roles, groups=verified.groups, tenant=verified.tenant)
    with state.session_factory() as session:
        key = api_keys.find(session, key=token)
        if key is None:
            hint = "" if verifier is not None or not looks_like_jwt(token) else " (tokens: OIDC is not configured)"
            raise _unauthorized(f"unknown or revoked API key{hint}")
        return Principal(
            subject=key.subject,
            roles=frozenset(api_keys.role_names(key)),
            groups=frozenset(key.groups),
            tenant=key.tenant,
        )


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def require_roles(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency letting through a caller who holds one of `roles` (or admin); 403 naming them otherwise.

    Use it through an alias: `Annotated[Principal, Depends(require_roles(Role.OPERATOR))]`.
    """
    if not roles:
        raise ValueError("require_roles needs at least one role")
    wanted = frozenset(roles)
    needed = " or ".join(f"'{role}'" for role in sorted(wanted | {Role.ADMIN}))

    def check(user: CurrentUser) -> Principal:
        if user.has_any_role(wanted):
            return user
        held = ", ".join(sorted(user.roles)) or "none"
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=f"this needs the role {needed}; '{user.subject}' has roles: {held}"
        )

    return check


AdminUser = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
ModelerUser = Annotated[Principal, Depends(require_roles(Role.MODELER))]
OperatorUser = Annotated[Principal, Depends(require_roles(Role.OPERATOR))]
AuditorUser = Annotated[Principal, Depends(require_roles(Role.AUDITOR))]
# Reads for the people who run production: operators act on what they see, auditors check it.
OpsReader = Annotated[Principal, Depends(require_roles(Role.OPERATOR, Role.AUDITOR))]
# The inbox: approvers work their tasks, operators step in for them.
TaskUser = Annotated[Principal, Depends(require_roles(Role.APPROVER, Role.OPERATOR))]
# Holds at least one platform role: a token from the provider with none of ours gets nothing.
AnyUser = Annotated[Principal, Depends(require_roles(*Role))]

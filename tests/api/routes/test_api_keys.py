"""API keys: created by an admin and shown once, listed without the key, revoked at once."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from store.db import MIGRATIONS, make_engine, make_session_factory, migrate
from store.models import ApiKey
from tests.conftest import API_KEY, POSTGRES_URL, postgres_schema

ROLES = ("admin", "modeler", "operator", "approver", "auditor")


async def create_key(
    api: httpx.AsyncClient, *roles: str, groups: tuple[str, ...] = (), tenant: str | None = None
) -> dict[str, Any]:
    """A new key with `roles` (the admin client creates it); the answer holds `id` and `key`."""
    name = f"test-{'-'.join(roles)}-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "roles": list(roles), "groups": list(groups), "tenant": tenant}
    response = await api.post("/api-keys", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_new_key_is_shown_once_and_listed_without_it(api: httpx.AsyncClient) -> None:
    created = await create_key(api, "operator", "approver", "operator", groups=("cn=ops,ou=people",), tenant="acme")
    assert set(created) == {"id", "name", "roles", "groups", "tenant", "key", "created_at"}
    assert created["roles"] == ["approver", "operator"]  # sorted, duplicates dropped
    assert created["groups"] == ["cn=ops,ou=people"]
    assert created["tenant"] == "acme"
    assert created["key"].startswith("amx_") and len(created["key"]) > 40

    listed = (await api.get("/api-keys")).json()
    [entry] = [k for k in listed if k["id"] == created["id"]]
    assert "key" not in entry and "digest" not in entry
    assert created["key"] not in str(listed)
    assert entry == {**{k: v for k, v in created.items() if k != "key"}, "revoked_at": None}

    # usable at once, with the roles it was given
    assert (await api.get("/tasks", headers=bearer(created["key"]))).status_code == 200


async def test_keys_are_stored_only_as_digests(api: httpx.AsyncClient, session_factory: sessionmaker[Session]) -> None:
    created = await create_key(api, "auditor")
    with session_factory() as session:
        row = session.get(ApiKey, created["id"])
        assert row is not None
        assert row.digest == hashlib.sha256(created["key"].encode()).hexdigest()
        stored = [str(getattr(row, column.key)) for column in ApiKey.__table__.columns]
    assert not any(created["key"] in value for value in stored)


async def test_the_bootstrapped_admin_key_is_listed_with_the_admin_role(api: httpx.AsyncClient) -> None:
    listed = (await api.get("/api-keys")).json()
    [admin] = [k for k in listed if k["name"] == "admin"]
    assert (admin["roles"], admin["groups"], admin["tenant"], admin["revoked_at"]) == (["admin"], [], None, None)


async def test_a_revoked_key_gets_401_at_once(api: httpx.AsyncClient) -> None:
    created = await create_key(api, "operator")
    assert (await api.get("/tasks", headers=bearer(created["key"]))).status_code == 200

    assert (await api.delete(f"/api-keys/{created['id']}")).status_code == 204
    refused = await api.get("/tasks", headers=bearer(created["key"]))
    assert refused.status_code == 401
    assert refused.json()["detail"] == "unknown or revoked API key"
    assert refused.headers["www-authenticate"] == "Bearer"

    # revoking again changes nothing; the list shows revoked keys only when asked
    assert (await api.delete(f"/api-keys/{created['id']}")).status_code == 204
    assert created["id"] not in [k["id"] for k in (await api.get("/api-keys")).json()]
    everything = (await api.get("/api-keys", params={"include_revoked": "true"})).json()
    [entry] = [k for k in everything if k["id"] == created["id"]]
    assert datetime.fromisoformat(entry["revoked_at"]) <= datetime.now(UTC)


async def test_revoking_an_unknown_key(api: httpx.AsyncClient) -> None:
    missing = await api.delete("/api-keys/987654321")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "API key 987654321 not found"
    for bad in ("abc", "0", "-3", "99999999999999999999"):
        response = await api.delete(f"/api-keys/{bad}")
        assert response.status_code == 422, bad
        assert response.json()["detail"][0]["loc"] == ["path", "key_id"]


async def test_names_are_unique_even_after_revocation(api: httpx.AsyncClient) -> None:
    created = await create_key(api, "modeler")
    body = {"name": created["name"], "roles": ["auditor"]}
    duplicate = await api.post("/api-keys", json=body)
    assert duplicate.status_code == 409
    assert duplicate.json()["detail"] == f"an API key named '{created['name']}' exists already (names are never reused)"
    await api.delete(f"/api-keys/{created['id']}")
    assert (await api.post("/api-keys", json=body)).status_code == 409
    assert (await api.post("/api-keys", json={"name": "admin", "roles": ["admin"]})).status_code == 409


@pytest.mark.parametrize(
    ("body", "loc", "fragment"),
    [
        ({"name": "k1", "roles": ["operator", "superuser"]}, ["body", "roles"], "unknown role 'superuser'"),
        ({"name": "k2", "roles": []}, ["body", "roles"], "at least 1 item"),
        ({"name": "k3", "roles": "admin"}, ["body", "roles"], "valid list"),
        ({"roles": ["admin"]}, ["body", "name"], "Field required"),
        ({"name": "has space", "roles": ["admin"]}, ["body", "name"], "pattern"),
        ({"name": "", "roles": ["admin"]}, ["body", "name"], "at least 1 character"),
        ({"name": "x" * 101, "roles": ["admin"]}, ["body", "name"], "at most 100 characters"),
        ({"name": "k4", "roles": ["admin"], "groups": [" "]}, ["body", "groups", 0], "at least 1 character"),
        ({"name": "k5", "roles": ["admin"], "tenant": ""}, ["body", "tenant"], "at least 1 character"),
        ({"name": "k6", "role": ["admin"], "roles": ["auditor"]}, ["body", "role"], "Extra inputs"),
    ],
    ids=["unknown-role", "no-roles", "roles-not-a-list", "no-name", "name-pattern", "empty-name", "long-name",
         "blank-group", "empty-tenant", "misspelt-field"],
)  # fmt: skip
async def test_bad_bodies_are_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], loc: list[Any], fragment: str
) -> None:
    response = await api.post("/api-keys", json=body)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == loc
    assert fragment in error["msg"]


async def test_unknown_role_lists_the_roles_there_are(api: httpx.AsyncClient) -> None:
    response = await api.post("/api-keys", json={"name": "typo", "roles": ["opertor"]})
    [error] = response.json()["detail"]
    assert "unknown role 'opertor'; the roles are admin, approver, auditor, modeler, operator" in error["msg"]


async def test_not_json_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/api-keys", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
async def test_only_admins_manage_keys(api: httpx.AsyncClient, role: str) -> None:
    key = (await create_key(api, role))["key"]
    victim = await create_key(api, "auditor")
    for response in (
        await api.post("/api-keys", json={"name": f"by-{role}", "roles": ["admin"]}, headers=bearer(key)),
        await api.get("/api-keys", headers=bearer(key)),
        await api.delete(f"/api-keys/{victim['id']}", headers=bearer(key)),
    ):
        assert response.status_code == 403, response.text
        assert response.json()["detail"].startswith("this needs the role 'admin';")
        assert f"has roles: {role}" in response.json()["detail"]
    assert (await api.get("/definitions", headers=bearer(victim["key"]))).status_code == 200  # not revoked


async def test_a_created_admin_key_can_manage_keys(api: httpx.AsyncClient) -> None:
    admin = (await create_key(api, "admin"))["key"]
    response = await api.post("/api-keys", json={"name": f"made-{uuid.uuid4().hex[:6]}", "roles": ["auditor"]},
                              headers=bearer(admin))  # fmt: skip
    assert response.status_code == 201, response.text
    assert (await api.delete(f"/api-keys/{response.json()['id']}", headers=bearer(admin))).status_code == 204


async def test_key_endpoints_need_credentials(api: httpx.AsyncClient) -> None:
    for headers in ({"Authorization": ""}, bearer("amx_not_a_key"), {"Authorization": f"Basic {API_KEY}"}):
        for response in (
            await api.get("/api-keys", headers=headers),
            await api.post("/api-keys", json={"name": "nope", "roles": ["admin"]}, headers=headers),
            await api.delete("/api-keys/1", headers=headers),
        ):
            assert response.status_code == 401, (headers, response.text)


# The migration, on both databases: keys made before it (the bootstrapped admin) get no groups.


@pytest.fixture(params=["sqlite", "postgresql"])
def bare_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'keys.db'}")
        yield engine
        engine.dispose()
        return
    schema = postgres_schema(request)
    engine = create_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    yield engine
    engine.dispose()


def _alembic(engine: Engine, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


def test_migration_gives_existing_keys_no_groups_and_no_tenant(bare_engine: Engine) -> None:
    _alembic(bare_engine, "upgrade", "0001")
    with bare_engine.begin() as connection:
        connection.execute(
            text("INSERT INTO api_keys (name, digest, subject, roles, created_at) VALUES (:n, :d, :s, :r, :t)"),
            {"n": "admin", "d": "0" * 64, "s": "admin", "r": "admin", "t": datetime.now(UTC)},
        )
    _alembic(bare_engine, "upgrade", "0002")
    with make_session_factory(bare_engine)() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.name == "admin")).one()
        assert (row.roles, row.groups, row.tenant) == ("admin", [], None)

    _alembic(bare_engine, "downgrade", "0001")
    with bare_engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM api_keys")).scalars().all() == ["admin"]
    migrate(bare_engine)  # and up again to every head
    with make_session_factory(bare_engine)() as session:
        assert session.scalars(select(ApiKey.groups)).all() == [[]]

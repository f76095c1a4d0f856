"""Tenant scoping of reads and writes.

A caller's tenant comes from its API key or token. `None` is a platform-wide caller (the bootstrap
admin key, an operations team): it sees every tenant. A named tenant sees only its own rows; every
data-access function that returns rows a caller asked for takes the caller's tenant and filters
here, so a route cannot forget half of the rule.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select

Q = TypeVar("Q", bound=Select)  # any row shape


def scoped(query: Q, column: Any, tenant: str | None) -> Q:
    return query if tenant is None else query.where(column == tenant)


def visible(row_tenant: str | None, tenant: str | None) -> bool:
    """Whether a caller of `tenant` may see a row of `row_tenant`."""
    return tenant is None or row_tenant == tenant

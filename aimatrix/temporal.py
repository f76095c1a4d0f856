"""Connecting to Temporal: the embedded dev server, a cluster or Temporal Cloud, by settings."""

from __future__ import annotations

import dataclasses

import temporalio.converter
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, TLSConfig
from temporalio.converter import DataConverter

from aimatrix.claim_check import ClaimCheckCodec
from aimatrix.settings import Settings, get_settings
from store.db import make_engine, make_session_factory


async def connect(settings: Settings | None = None) -> Client:
    settings = settings or get_settings()
    tls: bool | TLSConfig = settings.temporal_tls
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=tls,
        api_key=settings.temporal_api_key,
        data_converter=data_converter(settings),
    )


def data_converter(settings: Settings, session_factory: sessionmaker[Session] | None = None) -> DataConverter:
    """Temporal's default converter, with large payloads kept in the platform database (through
    `session_factory` where the caller has one, else an engine of its own, opened on first use)."""
    codec = ClaimCheckCodec(
        (lambda: session_factory) if session_factory is not None
        else (lambda: make_session_factory(make_engine(settings.resolved_database_url))),
        threshold=settings.payload_offload_bytes,
    )  # fmt: skip
    return dataclasses.replace(temporalio.converter.default(), payload_codec=codec)

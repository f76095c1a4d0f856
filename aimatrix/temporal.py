"""Connecting to Temporal: the embedded dev server, a cluster or Temporal Cloud, by settings."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import temporalio.converter
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, TLSConfig
from temporalio.converter import DataConverter

from aimatrix.claim_check import ClaimCheckCodec
from aimatrix.settings import Settings, get_settings
from store.db import make_engine, make_session_factory

# A process that starts while Temporal is down or restarting (a cluster upgrade, `make run` starting
# everything at once, the chaos run) waits for it this long instead of exiting on the first refusal.
CONNECT_PATIENCE_SECONDS = 60.0


async def connect(settings: Settings | None = None, *, patience: float = CONNECT_PATIENCE_SECONDS) -> Client:
    """A client of the configured Temporal, retried with backoff while it refuses connections."""
    settings = settings or get_settings()
    deadline = time.monotonic() + patience
    delay = 0.25
    while True:
        try:
            return await _connect_once(settings)
        except RuntimeError as err:
            if "connect" not in str(err).lower() or time.monotonic() + delay > deadline:
                raise
            logging.getLogger(__name__).warning("Temporal at %s not reachable yet: %s", settings.temporal_address, err)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _connect_once(settings: Settings) -> Client:
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

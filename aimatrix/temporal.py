"""Connecting to Temporal: the embedded dev server, a cluster or Temporal Cloud, by settings."""

from __future__ import annotations

from temporalio.client import Client, TLSConfig

from aimatrix.settings import Settings, get_settings


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
    )

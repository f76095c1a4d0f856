"""One settings object, read from the environment (and `.env`), shared by every process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from workflows.contracts import ENGINE_TASK_QUEUE


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path(".aimatrix"), alias="AIMATRIX_DATA_DIR")
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    temporal_address: str = Field(default="127.0.0.1:7233", alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", alias="TEMPORAL_NAMESPACE")
    temporal_tls: bool = Field(default=False, alias="TEMPORAL_TLS")
    temporal_tls_cert: Path | None = Field(default=None, alias="TEMPORAL_TLS_CERT")
    temporal_tls_key: Path | None = Field(default=None, alias="TEMPORAL_TLS_KEY")
    temporal_api_key: str | None = Field(default=None, alias="TEMPORAL_API_KEY")
    # Lets several platforms share one Temporal namespace (or a test run its own engine pool).
    engine_task_queue: str = Field(default=ENGINE_TASK_QUEUE, alias="AIMATRIX_ENGINE_TASK_QUEUE")
    api_key: str | None = Field(default=None, alias="AIMATRIX_API_KEY")
    api_host: str = Field(default="127.0.0.1", alias="AIMATRIX_API_HOST")
    api_port: int = Field(default=8000, alias="AIMATRIX_API_PORT")
    # Upload limits: lxml's own limits are far above what a process model needs.
    max_upload_bytes: int = Field(default=5 * 1024 * 1024, alias="AIMATRIX_MAX_UPLOAD_BYTES")
    max_xml_elements: int = Field(default=50_000, alias="AIMATRIX_MAX_XML_ELEMENTS")
    max_xml_depth: int = Field(default=64, alias="AIMATRIX_MAX_XML_DEPTH")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'aimatrix.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""Settings of the local stack: ports, state directory and credentials, from ``FLOE_STACK_*``."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import prefect.settings
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from floe_cdc.core.prefect_settings import PREFECT_ENV_FILE, STACK_DIR_DEFAULT

_RECORDED = (
    "host",
    "pg_port",
    "kafka_port",
    "connect_port",
    "prefect_port",
    "s3_port",
    "iceberg_port",
    "object_store_port_base",
    "mongodb",
    "mongo_port",
    "pg_user",
    "work_pool",
)
# weed mini's master, volume, filer and admin ports, then the gRPC ports of master, volume,
# filer, S3 and admin: every one explicit, from object_store_port_base upwards.
_OBJECT_STORE_PORTS = 9


class StackSettings(BaseSettings):
    """Where the local stack lives and which ports it takes. Every field has an env override."""

    model_config = SettingsConfigDict(env_prefix="FLOE_STACK_", extra="ignore")

    dir: Path = Field(default=Path(STACK_DIR_DEFAULT), description="State directory: data, logs, pids")
    host: str = "127.0.0.1"
    pg_port: int = Field(default=55432, ge=1024, le=65535)
    kafka_port: int = Field(default=19092, ge=1024, le=65535)
    connect_port: int = Field(default=18083, ge=1024, le=65535)
    prefect_port: int = Field(default=14200, ge=1024, le=65535)
    s3_port: int = Field(default=18333, ge=1024, le=65535, description="S3 endpoint (SeaweedFS)")
    iceberg_port: int = Field(default=18181, ge=1024, le=65535, description="Iceberg REST catalog")
    object_store_port_base: int = Field(
        default=18900, ge=1024, le=65535 - _OBJECT_STORE_PORTS, description="SeaweedFS's internal ports"
    )
    s3_access_key: str = "floe-stack"
    s3_secret_key: SecretStr = SecretStr("floe-local-secret")
    table_bucket: str = Field(default="floe-warehouse", description="S3 Tables bucket: the warehouse")
    reports_bucket: str = Field(default="floe-reports", description="Plain S3 bucket for report files")
    mongodb: bool = Field(
        default=False, description="Run SecantusDB, a MongoDB wire-protocol server (not MongoDB itself)"
    )
    mongo_port: int = Field(default=17017, ge=1024, le=65535)
    pg_user: str = "floe"
    pg_password: SecretStr = SecretStr("floe-local")
    pg_bin: Path = Field(default=Path("/usr/lib/postgresql/15/bin"), description="PostgreSQL 15 binaries")
    java: str = "java"
    jetty_security_jar: Path | None = Field(
        default=None, description="org.eclipse.jetty:jetty-security:12.0.x jar; searched for when unset"
    )
    work_pool: str = "floe"
    workers: int = Field(
        default=2, ge=0, le=8, description="Prefect process workers on the work pool (they share the runs)"
    )
    worker_limit: int = Field(default=2, ge=1, description="Flow runs one worker runs at a time")
    health_timeout_seconds: float = Field(default=120.0, gt=0)

    def record(self) -> None:
        """Remember the ports this state directory's stack runs on, for later down/status, and
        leave the Prefect client settings in ``prefect.env`` for ``floe`` commands run here."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.recorded_file.write_text(json.dumps({name: getattr(self, name) for name in _RECORDED}))
        lines = [f"{key}={value}\n" for key, value in self.prefect_client_env().items()]
        (self.state_dir / PREFECT_ENV_FILE).write_text("".join(lines))

    @contextlib.contextmanager
    def prefect_context(self) -> Iterator[None]:
        """This stack's Prefect settings for the flows run in this process, through Prefect's own
        ``temporary_settings``: Prefect read the environment when it was imported, before a
        command that starts the stack (``floe demo``) could know where its server is."""
        updates = {getattr(prefect.settings, key): value for key, value in self.prefect_client_env().items()}
        with prefect.settings.temporary_settings(updates=updates):
            yield

    def prefect_client_env(self) -> dict[str, str]:
        """Environment for any Prefect client talking to this stack's server."""
        return {
            "PREFECT_API_URL": self.prefect_api_url,
            "PREFECT_HOME": str(self.state_dir / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
            "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
            # Workers look for scheduled runs every 2 s instead of 10: ad-hoc runs start promptly.
            "PREFECT_WORKER_QUERY_SECONDS": "2",
        }

    def recorded(self) -> StackSettings:
        """These settings with the ports the stack in this state directory was started with."""
        if not self.recorded_file.exists():
            return self
        return self.model_copy(update=json.loads(self.recorded_file.read_text()))

    @property
    def recorded_file(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def state_dir(self) -> Path:
        return self.dir.resolve()

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def connect_url(self) -> str:
        return f"http://{self.host}:{self.connect_port}"

    @property
    def prefect_api_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}/api"

    @property
    def prefect_ui_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    def object_store_internal_ports(self) -> list[int]:
        return list(range(self.object_store_port_base, self.object_store_port_base + _OBJECT_STORE_PORTS))

    def catalog_properties(self) -> dict[str, str]:
        """pyiceberg properties of the stack's REST catalog over its S3 warehouse."""
        secret = self.s3_secret_key.get_secret_value()
        return {
            "type": "rest",
            "uri": f"http://{self.host}:{self.iceberg_port}",
            "warehouse": self.table_bucket,
            "credential": f"{self.s3_access_key}:{secret}",
            "s3.endpoint": self.s3_endpoint,
            "s3.access-key-id": self.s3_access_key,
            "s3.secret-access-key": secret,
            "s3.region": "us-east-1",
            "s3.path-style-access": "true",
        }

    def pg_url(self, database: str, driver: str = "postgresql") -> str:
        pw = self.pg_password.get_secret_value()
        return f"{driver}://{self.pg_user}:{pw}@{self.host}:{self.pg_port}/{database}"

"""The pipeline configuration: one YAML file, validated with pydantic, ``${ENV}`` interpolated.

Secrets are ``SecretStr`` so that printing a config, or logging a validation error, never shows
them. Every error names the key path (``sources[0].port``) and what is wrong with it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from floe.errors import ConfigError
from floe.secrets import register_secret

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = r"^[a-z][a-z0-9_]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableRef(_Model):
    """A source table and the Iceberg table it replicates into."""

    name: str = Field(description="Source table as schema.table, e.g. public.orders")
    target: str | None = Field(default=None, pattern=_NAME, description="Iceberg table name")
    on_incompatible_change: Literal["fail", "quarantine"] = Field(
        default="fail",
        description="A source type change Iceberg cannot follow: stop this table (fail) or set its "
        "events aside in the quarantine table and go on (quarantine)",
    )

    @field_validator("name")
    @classmethod
    def _qualified(cls, value: str) -> str:
        if value.count(".") != 1 or not all(value.split(".")):
            raise ValueError(f"'{value}' must be schema.table, e.g. public.{value}")
        return value

    @property
    def schema_name(self) -> str:
        return self.name.split(".")[0]

    @property
    def table_name(self) -> str:
        return self.name.split(".")[1]

    @property
    def target_name(self) -> str:
        return self.target or self.table_name


class PostgresSource(_Model):
    """A PostgreSQL database captured by Debezium's PostgreSQL connector (pgoutput)."""

    kind: Literal["postgres"] = "postgres"
    name: str = Field(pattern=_NAME, description="Source name; prefixes topics, slot and publication")
    host: str = "127.0.0.1"
    port: int = Field(default=5432, ge=1, le=65535)
    database: str
    user: str
    password: SecretStr
    tables: list[TableRef] = Field(min_length=1)
    slot_name: str | None = Field(default=None, pattern=_NAME)
    publication: str | None = Field(default=None, pattern=_NAME)
    snapshot_mode: Literal["initial", "no_data", "always", "when_needed", "initial_only"] = "initial"
    connector_overrides: dict[str, str] = Field(default_factory=dict)

    @field_validator("tables", mode="before")
    @classmethod
    def _table_shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @property
    def connector_name(self) -> str:
        return f"floe-{self.name}"

    @property
    def topic_prefix(self) -> str:
        return f"floe.{self.name}"

    @property
    def slot(self) -> str:
        return self.slot_name or f"floe_{self.name}"

    @property
    def publication_name(self) -> str:
        return self.publication or f"floe_{self.name}"

    def topic_for(self, table: TableRef) -> str:
        """Debezium names topics <topic.prefix>.<schema>.<table>."""
        return f"{self.topic_prefix}.{table.name}"


# MongoDB sources join this as a union discriminated by ``kind`` (default "postgres").
Source = PostgresSource


class KafkaConfig(_Model):
    bootstrap_servers: str
    group_id: str = Field(default="floe", description="Group for monitoring only; offsets live in Iceberg")
    client_config: dict[str, str] = Field(default_factory=dict, description="Extra librdkafka settings")


class ConnectConfig(_Model):
    url: str = Field(pattern=r"^https?://")
    timeout_seconds: float = Field(default=30.0, gt=0)


class IcebergConfig(_Model):
    catalog_name: str = "floe"
    catalog_uri: SecretStr = Field(description="SQLAlchemy URI of the SQL catalog database")
    warehouse: str = Field(description="Warehouse location; a relative path is taken from the config file")
    namespace: str = Field(pattern=_NAME)


class ReplicateConfig(_Model):
    max_events: int = Field(default=200_000, gt=0, description="Upper bound of events per cycle")
    max_seconds: float = Field(default=60.0, gt=0, description="Upper bound of consuming time per cycle")
    idle_seconds: float = Field(default=3.0, gt=0, description="A cycle ends after this long without events")
    follow_interval_seconds: float = Field(default=5.0, ge=0, description="Pause between cycles in --follow")
    lock_timeout_seconds: float = Field(
        default=600.0, gt=0, description="How long a run waits for another run of the same tables to finish"
    )


class PipelineConfig(_Model):
    sources: list[Source] = Field(min_length=1)
    kafka: KafkaConfig
    connect: ConnectConfig
    iceberg: IcebergConfig
    replicate: ReplicateConfig = ReplicateConfig()

    @model_validator(mode="after")
    def _unique_names(self) -> PipelineConfig:
        seen: dict[str, str] = {}
        for source in self.sources:
            for table in source.tables:
                target = table.target_name
                if target in seen:
                    raise ValueError(
                        f"Iceberg table '{target}' is the target of both {seen[target]} and "
                        f"{source.name}.{table.name}; set 'target:' on one of them"
                    )
                seen[target] = f"{source.name}.{table.name}"
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        return self

    def tables(self, names: list[str] | None = None) -> list[tuple[PostgresSource, TableRef]]:
        """Every configured table, or the ones *names* chooses (by Iceberg or source name)."""
        if names:
            return [self.find_table(name) for name in names]
        return [(source, table) for source in self.sources for table in source.tables]

    def find_table(self, target: str) -> tuple[PostgresSource, TableRef]:
        for source, table in self.tables():
            if target in (table.target_name, table.name):
                return source, table
        known = ", ".join(t.target_name for _, t in self.tables())
        raise ConfigError(f"no table '{target}' in the pipeline configuration; known tables: {known}")


def _interpolate(node: Any, path: str) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match[str]) -> str:
        var, default = match.group(1), match.group(2)
        value = os.environ.get(var)
        if value is None:
            if default is None:
                raise ConfigError(
                    f"{path}: environment variable {var} is not set; export it or give a default "
                    f"as ${{{var}:-value}}"
                )
            value = default
        return value

    return _ENV_PATTERN.sub(substitute, node)


def _format_validation_error(origin: str, error: ValidationError) -> str:
    lines = [f"{origin} is invalid:"]
    for item in error.errors():
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"]).lstrip(".")
        shown = "" if "password" in key or "uri" in key else f" (got {item.get('input')!r})"
        if item["type"] in ("missing", "extra_forbidden") or isinstance(item.get("input"), dict):
            shown = ""
        lines.append(f"  {key or '<root>'}: {item['msg']}{shown}")
    return "\n".join(lines)


def load_config(path: str | os.PathLike[str]) -> PipelineConfig:
    """Read, interpolate and validate a pipeline configuration file."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"pipeline configuration {file} not found; pass --config or set FLOE_CONFIG")
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{file} must hold a mapping at the top level")
    data = _interpolate(raw, "")
    warehouse = data.get("iceberg", {}).get("warehouse") if isinstance(data.get("iceberg"), dict) else None
    if isinstance(warehouse, str) and "://" not in warehouse:
        data["iceberg"]["warehouse"] = (file.parent / warehouse).resolve().as_uri()
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(str(file), exc)) from None
    for source in config.sources:
        register_secret(source.password.get_secret_value())
    return config

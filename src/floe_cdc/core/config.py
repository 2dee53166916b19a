"""The pipeline configuration: one YAML file, validated with pydantic, ``${ENV}`` interpolated.

Secrets are ``SecretStr`` so that printing a config, or logging a validation error, never shows
them. Every error names the key path (``sources[0].port``) and what is wrong with it.
"""

from __future__ import annotations

import difflib
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pymongo.errors import InvalidURI
from pymongo.uri_parser import parse_uri

from floe_cdc.core.errors import ConfigError
from floe_cdc.core.secrets import register_secret

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = r"^[a-z][a-z0-9_]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def plain_name(name: str) -> str:
    """A default Iceberg name for any source name: accents dropped, lower case, other characters
    ``_`` (``"Kunden Übersicht"`` -> ``kunden_ubersicht``), starting with a letter."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    plain = re.sub(r"[^a-z0-9_]", "_", ascii_name.lower())
    return plain if re.match(r"[a-z]", plain) else f"t_{plain}"


def kafka_topic(name: str) -> str:
    """*name* as Debezium writes it to Kafka: every character that cannot be in a topic name (only
    ASCII letters, digits, ``.``, ``_`` and ``-`` can) becomes ``_``, one per UTF-16 unit, as in
    Debezium's topic naming strategy (``sanitizedTopicName``)."""
    units = name.encode("utf-16-le")
    chars = [units[i : i + 2].decode("utf-16-le", "surrogatepass") for i in range(0, len(units), 2)]
    return "".join(c if re.fullmatch(r"[A-Za-z0-9._-]", c) else "_" for c in chars)


def _names_shorthand(value: Any) -> Any:
    """``tables: [public.orders]`` is short for ``tables: [{name: public.orders}]``."""
    if isinstance(value, list):
        return [{"name": item} if isinstance(item, str) else item for item in value]
    return value


# A partition field as Iceberg's SQL writes it: a column, a time transform of one, or a bucket
# or truncate with its width.
_PARTITION_FIELD = re.compile(
    r"\s*(?:(?P<time>year|month|day|hour)\(\s*(?P<timed>[^(),]+?)\s*\)"
    r"|(?P<sized>bucket|truncate)\(\s*(?P<width>[0-9]+)\s*,\s*(?P<of>[^(),]+?)\s*\)"
    r"|(?P<column>[^(),]+?))\s*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class PartitionField:
    """One configured partition field: a transform (``identity`` for the column itself), its
    width for bucket and truncate, and the column."""

    transform: str
    width: int | None
    column: str


def parse_partition_field(text: str) -> PartitionField:
    """The partition field *text* names (``day(created_at)``, ``bucket(16, id)``, ``region``)."""
    match = _PARTITION_FIELD.fullmatch(text)
    if match is None or (match["width"] is not None and int(match["width"]) < 1):
        raise ValueError(
            f"'{text}' is not a partition field; write a column, year(column), month(column), "
            "day(column), hour(column), bucket(N, column) or truncate(W, column)"
        )
    if match["time"]:
        return PartitionField(match["time"].lower(), None, match["timed"])
    if match["sized"]:
        return PartitionField(match["sized"].lower(), int(match["width"]), match["of"])
    return PartitionField("identity", None, match["column"])


class _TargetRef(_Model):
    """What every replicated table or collection shares: its Iceberg name and its failure policy."""

    target: str | None = Field(default=None, pattern=_NAME, description="Iceberg table name")
    on_incompatible_change: Literal["fail", "quarantine"] = Field(
        default="fail",
        description="A source type change Iceberg cannot follow: stop this table (fail) or set its "
        "events aside in the quarantine table and go on (quarantine)",
    )
    format_version: Literal[2, 3] | None = Field(
        default=None,
        description="Iceberg format version of this table when Floe creates it (default: "
        "iceberg.format_version)",
    )
    partition_by: list[str] | None = Field(
        default=None,
        description="Partition fields of this table: a column, year(column), month(column), "
        "day(column), hour(column), bucket(N, column) or truncate(W, column). Applied when Floe "
        "creates the table; a changed list changes the table's partition spec (files already "
        "written keep theirs). Unset: iceberg/table-defaults.yaml's (unpartitioned), and a spec "
        "changed by someone else is left alone",
    )
    sort_by: list[str] | None = Field(
        default=None,
        description="Columns the data files Floe writes are sorted by, so that readers skip files "
        "by their column ranges; [] for none. Unset: iceberg/table-defaults.yaml's (the key)",
    )
    history: bool = Field(
        default=False,
        description="Also append every change, in order, to <table>_history: operation, values, "
        "source position and commit time (see docs/history.md)",
    )
    deletes: Literal["hard", "soft"] = Field(
        default="hard",
        description="A row deleted at the source: removed from Iceberg (hard), or kept with "
        "_floe_deleted true and _floe_deleted_at (soft)",
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Columns (MongoDB: top-level fields) that never leave the source: Debezium drops "
        "them from its events, and the direct load does not read them",
    )

    @field_validator("partition_by")
    @classmethod
    def _partition_fields(cls, value: list[str] | None) -> list[str] | None:
        for text in value or []:
            parse_partition_field(text)
        return value


_NAME_PART = re.compile(r'"((?:[^"]|"")+)"|([^".]+)')


def split_table_name(value: str) -> tuple[str, str]:
    """(schema, table) of ``schema.table``. Names are taken as written (capitals, spaces and
    non-ASCII kept); a part in double quotes may also hold dots, with ``""`` for a quote, as in
    SQL: ``"sales.eu"."Say ""hi"" now"`` is schema ``sales.eu``, table ``Say "hi" now``.
    """
    parts, at = [], 0
    while True:
        match = _NAME_PART.match(value, at)
        if match is None:
            break
        quoted, plain = match.groups()
        parts.append(quoted.replace('""', '"') if quoted is not None else plain)
        at = match.end()
        if at == len(value) or value[at] != ".":
            break
        at += 1
    if at != len(value) or len(parts) != 2:
        raise ValueError(
            f"'{value}' must be schema.table, e.g. public.orders; quote a part that holds a dot or a "
            'quote: "sales.eu"."orders"'
        )
    if any(part.startswith('"') or part.endswith('"') for part in parts):
        raise ValueError(
            f"'{value}': a schema or table name that begins or ends with a double quote is not "
            "supported (Debezium takes such a name as already quoted); rename it at the source"
        )
    return parts[0], parts[1]


class TableRef(_TargetRef):
    """A source table and the Iceberg table it replicates into."""

    name: str = Field(description='Source table as schema.table, e.g. public.orders or "sales.eu".orders')
    hash: list[str] = Field(
        default_factory=list,
        description="Text columns replaced by the hex SHA-256 of the source's hash_salt and their value "
        "(cut to the column's declared length), at capture by Debezium and by the direct load alike",
    )

    @model_validator(mode="after")
    def _hash_or_exclude(self) -> TableRef:
        both = sorted(set(self.hash) & set(self.exclude))
        if both:
            raise ValueError(f"table {self.name}: {both} both hashed and excluded; keep each in one list")
        return self

    @field_validator("name")
    @classmethod
    def _qualified(cls, value: str) -> str:
        split_table_name(value)
        return value

    @property
    def schema_name(self) -> str:
        return split_table_name(self.name)[0]

    @property
    def table_name(self) -> str:
        return split_table_name(self.name)[1]

    @property
    def qualified(self) -> str:
        """``schema.table`` unquoted, as Debezium names the table (its data collection id)."""
        return f"{self.schema_name}.{self.table_name}"

    @property
    def target_name(self) -> str:
        return self.target or plain_name(self.table_name)


class CollectionRef(_TargetRef):
    """A MongoDB collection and the Iceberg table it replicates into.

    ``typed``: documents become Iceberg columns, nested documents structs and arrays lists, and the
    schema grows as new fields appear; a value whose type conflicts with its column's is kept as
    extended JSON in ``_floe_conflicts`` (see docs/mongodb.md). ``raw``: the whole document as extended
    JSON in ``_doc``, plus the ``extract``-ed top-level fields as typed columns.
    """

    name: str = Field(pattern=r"^[^.$\s][^$\s]*$", description="Collection name, e.g. orders")
    schema_policy: Literal["typed", "raw"] = "typed"
    extract: list[str] = Field(default_factory=list, description="raw policy: top-level fields as columns")

    @model_validator(mode="after")
    def _extract_with_raw(self) -> CollectionRef:
        if self.extract and self.schema_policy != "raw":
            raise ValueError("extract applies to schema_policy: raw only (typed extracts every field)")
        reserved = {"_id", "_doc"} & set(self.extract)
        if reserved:
            raise ValueError(f"extract cannot name {sorted(reserved)}: Floe writes those columns itself")
        return self

    @property
    def target_name(self) -> str:
        return self.target or plain_name(self.name)


class _SourceBase(_Model):
    name: str = Field(pattern=_NAME, description="Source name; prefixes topics and connector names")
    connector_overrides: dict[str, str] = Field(default_factory=dict)

    @property
    def connector_name(self) -> str:
        return f"floe-{self.name}"

    @property
    def topic_prefix(self) -> str:
        return f"floe.{self.name}"


class PostgresSource(_SourceBase):
    """A PostgreSQL database captured by Debezium's PostgreSQL connector (pgoutput)."""

    kind: Literal["postgres"] = "postgres"
    host: str = "127.0.0.1"
    port: int = Field(default=5432, ge=1, le=65535)
    database: str
    user: str
    password: SecretStr
    tables: list[TableRef] = Field(min_length=1)
    slot_name: str | None = Field(default=None, pattern=_NAME)
    publication: str | None = Field(default=None, pattern=_NAME)
    snapshot_mode: Literal["initial", "no_data", "always", "when_needed", "initial_only"] = "initial"
    initial_load: Literal["debezium", "direct"] = Field(
        default="debezium",
        description="How the tables are read the first time: by Debezium's snapshot, or directly into "
        "Iceberg in chunks by primary key (floe connectors apply loads them, then streams)",
    )

    hash_salt: SecretStr | None = Field(
        default=None,
        description="The salt of the tables' hash columns (at least 16 letters, digits, _ or -); "
        "give it from the environment, ${FLOE_HASH_SALT}",
    )

    _tables_shorthand = field_validator("tables", mode="before")(_names_shorthand)

    @field_validator("hash_salt")
    @classmethod
    def _salt(cls, value: SecretStr | None) -> SecretStr | None:
        # Debezium takes the salt from a property's name: only what a name holds safely.
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{16,}", value.get_secret_value()):
            raise ValueError("must be at least 16 letters, digits, _ or - (the value is not shown)")
        return value

    @model_validator(mode="after")
    def _salted(self) -> PostgresSource:
        hashed = [t.name for t in self.tables if t.hash]
        if hashed and self.hash_salt is None:
            raise ValueError(
                f"source {self.name}: tables {hashed} hash columns; set hash_salt (from a secret, "
                "e.g. hash_salt: ${FLOE_HASH_SALT})"
            )
        return self

    @model_validator(mode="after")
    def _direct_load_streams_only(self) -> PostgresSource:
        if self.initial_load == "direct" and self.snapshot_mode != "initial":
            raise ValueError(
                f"source {self.name}: initial_load: direct reads the tables itself; leave snapshot_mode "
                f"unset (it is {self.snapshot_mode})"
            )
        return self

    @property
    def connector_snapshot_mode(self) -> str:
        """Debezium's snapshot.mode: no_data when Floe loads the tables itself."""
        return "no_data" if self.initial_load == "direct" else self.snapshot_mode

    @property
    def slot(self) -> str:
        return self.slot_name or f"floe_{self.name}"

    @property
    def publication_name(self) -> str:
        return self.publication or f"floe_{self.name}"

    @property
    def secrets(self) -> list[str]:
        salt = [self.hash_salt.get_secret_value()] if self.hash_salt else []
        return [self.password.get_secret_value(), *salt]

    def connection_args(self, application: str) -> dict[str, Any]:
        """psycopg2 connection arguments for Floe's own queries. Hold the password: never log them."""
        return {
            "host": self.host,
            "port": self.port,
            "dbname": self.database,
            "user": self.user,
            "password": self.password.get_secret_value(),
            "connect_timeout": 10,
            "application_name": application,
        }

    def source_table(self, table: TableRef) -> str:
        return table.qualified

    def topic_for(self, table: TableRef) -> str:
        """Debezium names topics <topic.prefix>.<schema>.<table>, with invalid characters replaced."""
        return kafka_topic(f"{self.topic_prefix}.{table.qualified}")


class MongoSource(_SourceBase):
    """A MongoDB replica set (or sharded cluster) captured by Debezium's MongoDB connector."""

    kind: Literal["mongodb"]
    connection_string: SecretStr = Field(description="mongodb:// or mongodb+srv:// URI of a replica set")
    database: str = Field(pattern=r"^[^/\\. \"$]+$")
    collections: list[CollectionRef] = Field(min_length=1)
    capture_mode: Literal[
        "change_streams_update_full",
        "change_streams_update_full_with_pre_image",
        "change_streams",
        "change_streams_with_pre_image",
    ] = Field(
        default="change_streams_update_full",
        description="update_full delivers the whole document on updates; the others only the change, "
        "which Floe applies as a patch to the stored document",
    )
    snapshot_mode: Literal["initial", "no_data", "always", "when_needed", "initial_only"] = "initial"

    _collections_shorthand = field_validator("collections", mode="before")(_names_shorthand)

    @field_validator("connection_string")
    @classmethod
    def _uri(cls, value: SecretStr) -> SecretStr:
        try:
            parse_uri(value.get_secret_value(), warn=True)
        except (InvalidURI, ValueError) as exc:
            # The message of InvalidURI can quote the URI: name the problem without it.
            raise ValueError(f"not a valid MongoDB connection string ({type(exc).__name__})") from None
        return value

    @property
    def tables(self) -> list[CollectionRef]:
        return self.collections

    @property
    def secrets(self) -> list[str]:
        uri = self.connection_string.get_secret_value()
        password = parse_uri(uri, warn=True).get("password")
        return [uri, *([password] if password else [])]

    def source_table(self, collection: CollectionRef) -> str:
        return f"{self.database}.{collection.name}"

    def topic_for(self, collection: CollectionRef) -> str:
        """Debezium names topics <topic.prefix>.<database>.<collection>, invalid characters replaced."""
        return kafka_topic(f"{self.topic_prefix}.{self.database}.{collection.name}")


def _source_kind(value: Any) -> str:
    """Sources without ``kind`` are PostgreSQL, as before MongoDB sources existed."""
    if isinstance(value, dict):
        return value.get("kind", "postgres")
    return getattr(value, "kind", "postgres")


_SOURCE_KINDS = ("postgres", "mongodb")
Source = Annotated[
    Annotated[PostgresSource, Tag("postgres")] | Annotated[MongoSource, Tag("mongodb")],
    Discriminator(_source_kind),
]
TargetRef = TableRef | CollectionRef


class KafkaConfig(_Model):
    bootstrap_servers: str
    group_id: str = Field(default="floe", description="Group for monitoring only; offsets live in Iceberg")
    client_config: dict[str, str] = Field(default_factory=dict, description="Extra librdkafka settings")


class ConnectConfig(_Model):
    url: str = Field(pattern=r"^https?://")
    timeout_seconds: float = Field(default=30.0, gt=0)
    secrets: Literal["file", "env", "inline"] = Field(
        default="file",
        description="How connectors get passwords and connection strings, so that Kafka Connect's REST "
        "API and config topic never hold them: 'file' (Floe writes them to secrets_file, which every "
        "Connect worker reads with FileConfigProvider), 'env' (each worker has them in environment "
        "variables, read with EnvVarConfigProvider), 'inline' (in the connector config itself)",
    )
    secrets_file: str = Field(
        default=".floe/connect-secrets.properties",
        description="With secrets: file, the properties file Floe writes and Connect workers read; a "
        "relative path is taken from the config file's folder",
    )


def _property_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str | SecretStr) else str(value)


# Catalog properties whose values are secrets (credentials, keys, tokens). An access key id names
# a key, it is not one: a short id masked everywhere would hide ordinary words in logs.
_SECRET_PROPERTY = re.compile(r"credential|token|secret|password", re.IGNORECASE)


def _is_secret_property(key: str, value: str) -> bool:
    """A credential-like key, or a URI carrying a password (a SQL catalog's database URL)."""
    if _SECRET_PROPERTY.search(key):
        return True
    return key == "uri" and urlsplit(value).password is not None


class IcebergConfig(_Model):
    """Where the replicated tables live: any catalog pyiceberg supports, by its properties.

    ``catalog`` holds pyiceberg's catalog properties as they are (``type: rest``, ``uri``,
    ``warehouse``, ``credential``, ``s3.endpoint``, ``s3.access-key-id``, ...), so that a REST
    catalog over S3, Glue or a SQL catalog is configuration, not code. ``catalog_uri`` and
    ``warehouse`` are the shorthand for a SQL catalog.
    """

    catalog_name: str = "floe"
    catalog: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="pyiceberg catalog properties: type (rest, sql, glue, ...), uri, warehouse, "
        "credential, s3.*; every value is kept secret",
    )
    catalog_uri: SecretStr | None = Field(
        default=None, description="Shorthand for a SQL catalog: the SQLAlchemy URI of its database"
    )
    warehouse: str | None = Field(
        default=None,
        description="With catalog_uri: the warehouse location (a relative path is taken from "
        "the config file's folder)",
    )
    namespace: str = Field(pattern=_NAME)
    quarantine_table: str = Field(
        default="floe_quarantine",
        pattern=_NAME,
        description="The namespace's table of change events that could not be applied",
    )
    format_version: Literal[2, 3] = Field(
        default=2,
        description="Iceberg format version of the tables Floe creates: 3 writes deletion vectors "
        "(one per data file) instead of position delete files; engines that cannot read them are "
        "listed in docs/tested.md",
    )
    reports_location: str | None = Field(
        default=None,
        description="Where Floe stores report files such as the freshness chart (s3://bucket/prefix, "
        "written with the catalog's s3.* properties); unset: the chart's figures only",
    )

    @field_validator("catalog", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        """YAML gives numbers and booleans; pyiceberg takes every property as text."""
        if not isinstance(value, dict):
            return value
        return {str(key): _property_text(item) for key, item in value.items()}

    @model_validator(mode="after")
    def _one_catalog(self) -> IcebergConfig:
        if self.catalog and (self.catalog_uri is not None or self.warehouse is not None):
            raise ValueError(
                "set either catalog (pyiceberg properties) or catalog_uri and warehouse, not both"
            )
        if not self.catalog and (self.catalog_uri is None or self.warehouse is None):
            raise ValueError(
                "set catalog (pyiceberg catalog properties, e.g. {type: rest, uri: ..., warehouse: ...}), "
                "or catalog_uri and warehouse for a SQL catalog"
            )
        return self

    def catalog_properties(self) -> dict[str, str]:
        """pyiceberg's properties for the catalog. They hold credentials: never log them."""
        if self.catalog:
            return {key: value.get_secret_value() for key, value in self.catalog.items()}
        assert self.catalog_uri is not None and self.warehouse is not None  # _one_catalog
        return {"type": "sql", "uri": self.catalog_uri.get_secret_value(), "warehouse": self.warehouse}

    @property
    def secrets(self) -> list[str]:
        return [value for key, value in self.catalog_properties().items() if _is_secret_property(key, value)]


class LoadConfig(_Model):
    chunk_rows: int = Field(
        default=100_000,
        gt=0,
        description="Rows per chunk of a direct initial load: one Iceberg commit each, and the memory "
        "a chunk takes",
    )


class ReplicateConfig(_Model):
    commit_seconds: float = Field(
        default=1.0, gt=0, description="A table commits once its oldest waiting change has waited this long"
    )
    commit_events: int = Field(
        default=100_000, gt=0, description="A table commits once this many of its changes wait"
    )
    buffer_events: int = Field(
        default=250_000,
        gt=0,
        description="Changes read ahead of the commits, over all tables; reading pauses at this many "
        "(it bounds the memory that waiting changes take)",
    )
    refresh_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often a running replicator looks for new topics, direct re-snapshots and "
        "finished incremental ones",
    )
    max_events: int = Field(default=200_000, gt=0, description="Upper bound of events per one-shot run")
    max_seconds: float = Field(default=60.0, gt=0, description="Upper bound of a one-shot run's reading time")
    idle_seconds: float = Field(
        default=3.0, gt=0, description="A one-shot run ends after this long without events"
    )
    report_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A following run's cadence of connector states, health, alerts and its report",
    )
    reconcile_seconds: float = Field(
        default=600.0,
        gt=0,
        description="A following run's cadence of the count check (at a source position, beside the stream)",
    )
    retry_seconds: float = Field(
        default=5.0, ge=0, description="A following run's pause before it reads again after a transient error"
    )
    schedule_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Interval of each source's replicate deployment's schedule: how soon its long-lived "
        "run starts again after it ended",
    )
    lock_timeout_seconds: float = Field(
        default=600.0, gt=0, description="How long a run waits for another run of the same tables to finish"
    )
    index_dir: str | None = Field(
        default=None,
        description="Folder where replicators keep big tables' key indexes between runs, so that a new run "
        "does not rebuild them (default: $XDG_CACHE_HOME/floe/key-indexes, else ~/.cache/floe/key-indexes)",
    )
    index_save_rows: int = Field(
        default=1_000_000,
        gt=0,
        description="Key indexes of at least this many rows are kept between runs (smaller ones are "
        "built from the table as fast as they load)",
    )
    index_memory_mb: float = Field(
        default=4096,
        gt=0,
        description="The memory a replicator's key indexes may take together. Beyond it, the indexes of "
        "the tables merged longest ago are saved to index_dir and let go (their table's next merge loads "
        "them again), and a table whose index alone is bigger keeps its long sorted runs memory-mapped "
        "from files in index_dir (16 bytes a row for an integer key)",
    )
    index_save_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How often a running replicator saves the key indexes that changed (and when it stops); "
        "a new run reads only what was committed after the save",
    )
    compact_delete_ratio: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="A merge rewrites a data file in passing once this share is deleted",
    )
    compact_rows_per_change: float = Field(
        default=1.0, ge=0, description="Live rows a merge may rewrite in passing, per change event (0: never)"
    )


class MaintainConfig(_Model):
    """Table maintenance: merges add position deletes and small files, which slow every read until
    the files are rewritten; snapshots and replaced files pile up until they are expired."""

    target_file_size_mb: int = Field(default=128, gt=0, description="Size of the data files a rewrite writes")
    rewrite_group_mb: int = Field(
        default=256,
        gt=0,
        description="The most live data (as stored, compressed) one rewrite reads and sorts together, in "
        "one partition: the files it writes hold disjoint ranges of the sort columns, which readers "
        "skip by. It bounds maintain's memory: rows take several times their stored size in memory",
    )
    delete_ratio: float = Field(
        default=0.1, gt=0, le=1, description="Rewrite a data file once this share of its rows is deleted"
    )
    min_small_files: int = Field(
        default=5, ge=2, description="Compact files under 3/4 of the target size once there are this many"
    )
    snapshot_retention_hours: float = Field(
        default=24.0, ge=0, description="Snapshots younger than this are kept (time travel, running readers)"
    )
    snapshot_recent_minutes: float = Field(
        default=10.0,
        ge=0,
        description="Every snapshot younger than this is kept; older ones, within the retention, one per "
        "snapshot_spacing_minutes (a table committed every second would otherwise keep 86,400 a day)",
    )
    snapshot_spacing_minutes: float = Field(
        default=10.0,
        ge=0,
        description="Beyond the recent ones, one snapshot kept per this many minutes (0: all)",
    )
    orphan_min_age_hours: float = Field(
        default=24.0,
        ge=0,
        description="Unreferenced files younger than this are kept: a writer may be about to commit them",
    )


class AlertsConfig(_Model):
    """When Floe raises an alert (a Prefect event an automation turns into a notification)."""

    lag_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A table whose newest applied change is older than this, with more waiting",
    )
    stall_minutes: float = Field(
        default=15.0, gt=0, description="A table with no commit for this long while its topic has new events"
    )
    retained_wal_mb: float = Field(
        default=1024.0, gt=0, description="A replication slot that makes its source keep more WAL than this"
    )
    notify_block: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9-]+/[A-Za-z0-9_-]+$",
        description="Prefect notification block the alerts go to (type/name, e.g. slack-webhook/data-ops)",
    )


class LineageConfig(_Model):
    """Where Floe sends an OpenLineage event for each Iceberg commit (off unless configured)."""

    url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="An OpenLineage HTTP endpoint's base URL (Marquez: http://marquez:5000)",
    )
    endpoint: str = Field(default="api/v1/lineage", description="The path the events are posted to")
    api_key: SecretStr | None = Field(default=None, description="Sent as a Bearer token")
    file: str | None = Field(
        default=None, description="A file the events are appended to, one JSON line each"
    )
    namespace: str = Field(default="floe", min_length=1, description="The namespace of Floe's jobs")
    timeout_seconds: float = Field(default=5.0, gt=0, description="How long one event may take to send")

    @model_validator(mode="after")
    def _one_transport(self) -> LineageConfig:
        if (self.url is None) == (self.file is None):
            raise ValueError("set exactly one of url (an OpenLineage HTTP endpoint) and file")
        return self

    @property
    def secrets(self) -> list[str]:
        return [self.api_key.get_secret_value()] if self.api_key else []


class ChecksConfig(_Model):
    """The user's own SodaCL checks of the Iceberg tables, run with every reconciliation."""

    path: str = Field(
        description="A SodaCL file or a folder of them (*.yml, *.yaml), relative to the pipeline "
        "configuration's folder; 'checks for <table>' names a table by its Iceberg name"
    )


class PipelineConfig(_Model):
    sources: list[Source] = Field(min_length=1)
    kafka: KafkaConfig
    connect: ConnectConfig
    iceberg: IcebergConfig
    replicate: ReplicateConfig = ReplicateConfig()
    load: LoadConfig = LoadConfig()
    maintain: MaintainConfig = MaintainConfig()
    alerts: AlertsConfig = AlertsConfig()
    lineage: LineageConfig | None = None
    checks: ChecksConfig | None = None

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
        topics: dict[str, str] = {}
        for source in self.sources:
            for table in source.tables:
                topic = source.topic_for(table)
                if topic in topics:
                    raise ValueError(
                        f"{topics[topic]} and {source.name}.{table.name} would share the Kafka topic {topic} "
                        "(Debezium replaces characters a topic name cannot hold with '_'); replicate one "
                        "of them from a source of its own"
                    )
                topics[topic] = f"{source.name}.{table.name}"
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        return self

    def tables(self, names: list[str] | None = None) -> list[tuple[Source, TargetRef]]:
        """Every configured table, or the ones *names* chooses (by Iceberg or source name)."""
        if names:
            return [self.find_table(name) for name in names]
        return [(source, table) for source in self.sources for table in source.tables]

    def tables_by_source(self, names: list[str] | None = None) -> list[tuple[Source, list[TargetRef]]]:
        """The chosen tables (see ``tables``) grouped by their source, in configuration order."""
        grouped: dict[str, tuple[Source, list[TargetRef]]] = {}
        for source, table in self.tables(names):
            grouped.setdefault(source.name, (source, []))[1].append(table)
        return list(grouped.values())

    def find_source(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(source.name for source in self.sources)
        raise ConfigError(f"no source '{name}' in the pipeline configuration; known sources: {known}")

    def table_options(self, target: str) -> dict[str, Any]:
        """How Floe creates table *target*: its format version (its own, else the pipeline's),
        partition fields and sort columns (None: the table defaults')."""
        ref = self.find_table(target)[1]
        return {
            "format_version": ref.format_version or self.iceberg.format_version,
            "partition_by": ref.partition_by,
            "sort_by": ref.sort_by,
        }

    def find_table(self, target: str) -> tuple[Source, TargetRef]:
        for source, table in self.tables():
            if target in (table.target_name, table.name, source.source_table(table)):
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


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at *loc* (a validation error's location without its last part)."""
    model: type[BaseModel] = PipelineConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if part in _SOURCE_KINDS:
            model = PostgresSource if part == "postgres" else MongoSource
            continue
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        nested = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        models = [a for a in nested if issubclass(a, BaseModel)]
        if part == "sources":
            models = [PostgresSource, MongoSource]
        if not models:
            return []
        model = models[0]
    return list(model.model_fields)


def _unknown_key(name: str, known: list[str]) -> str:
    """Say which key was probably meant, and which ones exist."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    close += [k for k in known if k.startswith(name) and k not in close]
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown key '{name}'{hint} (allowed: {', '.join(known)})"


def _format_validation_error(origin: str, error: ValidationError) -> str:
    lines = [f"{origin} is invalid:"]
    for item in error.errors():
        loc = item["loc"]
        if loc[:1] == ("sources",) and len(loc) > 2 and loc[2] in _SOURCE_KINDS:
            loc = loc[:2] + loc[3:]  # the union's tag: sources[0].mongodb.database -> sources[0].database
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        secret = any(
            word in key for word in ("password", "uri", "connection_string", "catalog", "salt", "api_key")
        )
        shown = "" if secret else f" (got {item.get('input')!r})"
        if item["type"] in ("missing", "extra_forbidden") or isinstance(item.get("input"), dict):
            shown = ""
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = _unknown_key(str(loc[-1]), _known_keys(loc[:-1]))
        lines.append(f"  {key or '<root>'}: {message}{shown}")
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
    _resolve_local_warehouse(data.get("iceberg"), file.parent)
    if isinstance(data.get("connect"), dict):
        secrets_file = data["connect"].get("secrets_file", ConnectConfig.model_fields["secrets_file"].default)
        if isinstance(secrets_file, str):
            data["connect"]["secrets_file"] = str((file.parent / secrets_file).resolve())
    if isinstance(data.get("checks"), dict) and isinstance(data["checks"].get("path"), str):
        checks = file.parent / data["checks"]["path"]
        if not checks.exists():
            raise ConfigError(f"{file}: checks.path {checks} does not exist; point it at your SodaCL files")
        data["checks"]["path"] = str(checks.resolve())
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(str(file), exc)) from None
    lineage = config.lineage.secrets if config.lineage else []
    for secret in [
        *(s for source in config.sources for s in source.secrets),
        *config.iceberg.secrets,
        *lineage,
    ]:
        register_secret(secret)
    return config


def _resolve_local_warehouse(iceberg: Any, folder: Path) -> None:
    """A SQL catalog's warehouse given as a relative path is taken from the config file's folder."""
    if not isinstance(iceberg, dict):
        return
    catalog = iceberg.get("catalog")
    holder = catalog if isinstance(catalog, dict) and catalog.get("type", "sql") == "sql" else iceberg
    warehouse = holder.get("warehouse")
    if isinstance(warehouse, str) and "://" not in warehouse:
        holder["warehouse"] = (folder / warehouse).resolve().as_uri()

"""Render Debezium connector configurations from the pipeline configuration.

Configuration is data: a typed source model becomes the connector's properties, which the
connector itself validates. Choices that matter for faithful replication are explained inline.
"""

from __future__ import annotations

import re
from importlib import resources

import yaml

from floe_cdc.capture.signals import notification_topic, signal_group, signal_topic
from floe_cdc.core.config import KafkaConfig, MongoSource, PipelineConfig, PostgresSource, Source

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"
MONGODB_CONNECTOR = "io.debezium.connector.mongodb.MongoDbConnector"
# What every Floe connector shares, from the repository's cdc/connectors.yaml (installed with the package).
_COMMON: dict[str, str] = yaml.safe_load(
    (resources.files(__package__) / "defaults" / "connectors.yaml").read_text()
)
MAX_MESSAGE_BYTES = int(_COMMON["producer.override.max.request.size"])


def exact(name: str) -> str:
    """An include-list entry that matches exactly *name*.

    Debezium's include lists are comma-separated Java regular expressions, trimmed, and compiled
    case-insensitively: ``(?-i:…)`` makes ``public.User`` leave ``public.user`` out, an escaped
    comma stays in the name, and ``[ ]`` keeps a trailing space from being trimmed. The scoped
    group, not a bare ``(?-i)``: the MongoDB connector sends the pattern to the server inside its
    change-stream pipeline, and a server whose regex engine refuses a global flag in the middle of
    an alternation (Python's ``re``, in SecantusDB) would fail the stream at the first change.
    """
    pattern = re.sub(r"([\\.\[\]{}()*+?^$|])", r"\\\1", name)
    return "(?-i:" + pattern.replace(",", "\\,").replace(" ", "[ ]") + ")"


def _signals(source: Source, kafka: KafkaConfig) -> dict[str, str]:
    """Debezium reads signals (``floe resnapshot``) from a Kafka topic of the source's own. Its
    signal consumer takes the broker address Floe uses; set ``signal.kafka.bootstrap.servers`` and
    ``signal.consumer.*`` (e.g. SASL) in connector_overrides where Connect sees Kafka otherwise."""
    return {
        "signal.enabled.channels": "kafka",
        "signal.kafka.topic": signal_topic(source),
        "signal.kafka.bootstrap.servers": kafka.bootstrap_servers,
        # The signal consumer commits its position in a group of the connector's own, which
        # 'connectors apply' places at the topic's end (signals.place_signal_readers); a connector
        # that lost its position skips old signals instead of snapshotting again.
        "signal.kafka.groupId": signal_group(source),
        "signal.consumer.auto.offset.reset": "latest",
        # Snapshots report their progress and each table's completion to a topic, through the
        # connector's own producer, in order with the change events they follow.
        "notification.enabled.channels": "sink",
        "notification.sink.topic.name": notification_topic(source),
    }


def render_postgres(source: PostgresSource, kafka: KafkaConfig) -> dict[str, str]:
    """Connector properties for one PostgreSQL source. Contains the password: never log it."""
    config = {
        **_COMMON,
        **_signals(source, kafka),
        "connector.class": POSTGRES_CONNECTOR,
        "database.hostname": source.host,
        "database.port": str(source.port),
        "database.user": source.user,
        "database.password": source.password.get_secret_value(),
        "database.dbname": source.database,
        "topic.prefix": source.topic_prefix,
        "table.include.list": ",".join(exact(source.source_table(t)) for t in source.tables),
        "plugin.name": "pgoutput",
        "slot.name": source.slot,
        "publication.name": source.publication_name,
        # The publication is Floe's (``floe connectors apply``) or Terraform's, made before the
        # connector: a task still running with an older table list would otherwise set the
        # publication back to that list while a new one is applied, and PostgreSQL publishes
        # nothing of a table outside it.
        "publication.autocreate.mode": "disabled",
        "snapshot.mode": source.connector_snapshot_mode,
        # NUMERIC as exact strings; precision and scale come from the propagated source type.
        "decimal.handling.mode": "string",
        # Every column schema carries its PostgreSQL type, length and scale, so that Iceberg types
        # are mapped from the source's declaration, never guessed from values.
        "column.propagate.source.type": ".*",
        "time.precision.mode": "adaptive_time_microseconds",
        "interval.handling.mode": "string",
        "binary.handling.mode": "bytes",
        # Debezium skips truncates by default; Floe applies them in order with other changes.
        "skipped.operations": "none",
        "include.unknown.datatypes": "false",
        # Incremental snapshots (floe resnapshot) without a signal table: window watermarks come
        # from pg_current_snapshot() (PostgreSQL 13 or later), so the connector never writes to
        # the source.
        "read.only": "true",
    }
    config.update(_column_options(source))
    config.update(source.connector_overrides)
    return config


def _column_options(source: PostgresSource) -> dict[str, str]:
    """Columns left out or hashed at capture, so that their values never reach Kafka. Debezium
    names a column ``schema.table.column``; ``v2`` hashes the value's own bytes (UTF-8), which the
    direct load and the reconciliation reproduce (``v1`` hashes Java's serialized object).

    Debezium applies one column mapper per column, the first that matches, and the source type's
    propagation comes before hashing: a hashed column is left out of the propagation, or it would
    never be hashed (its source type is then not in its events' schema, so the column is text)."""
    excluded = [exact(f"{t.qualified}.{c}") for t in source.tables for c in t.exclude]
    hashed = [exact(f"{t.qualified}.{c}") for t in source.tables for c in t.hash]
    options = {}
    if excluded:
        options["column.exclude.list"] = ",".join(excluded)
    if hashed and source.hash_salt is not None:
        options[f"column.mask.hash.v2.SHA-256.with.salt.{source.hash_salt.get_secret_value()}"] = ",".join(
            hashed
        )
        options["column.propagate.source.type"] = f"(?!(?:{'|'.join(hashed)})$).*"
    return options


def render_mongodb(source: MongoSource, kafka: KafkaConfig) -> dict[str, str]:
    """Connector properties for one MongoDB source. Contains the connection string: never log it."""
    config = {
        **_COMMON,
        **_signals(source, kafka),
        "connector.class": MONGODB_CONNECTOR,
        "mongodb.connection.string": source.connection_string.get_secret_value(),
        "topic.prefix": source.topic_prefix,
        # One change stream on the configured database, not the whole deployment: fewer privileges
        # needed, and no events of other databases to filter out.
        "capture.scope": "database",
        "capture.target": source.database,
        "database.include.list": source.database,
        "collection.include.list": ",".join(exact(source.source_table(c)) for c in source.collections),
        # change_streams_update_full: updates carry the whole document (looked up when the event is
        # read) besides updateDescription; Floe falls back to the patch when the lookup finds nothing.
        "capture.mode": source.capture_mode,
        "snapshot.mode": source.snapshot_mode,
    }
    if excluded := [f"{source.database}.{c.name}.{f}" for c in source.collections for f in c.exclude]:
        config["field.exclude.list"] = ",".join(excluded)  # names, not patterns
    config.update(source.connector_overrides)
    return config


def render(source: Source, kafka: KafkaConfig) -> dict[str, str]:
    if isinstance(source, MongoSource):
        return render_mongodb(source, kafka)
    return render_postgres(source, kafka)


def render_all(config: PipelineConfig) -> dict[str, dict[str, str]]:
    """Connector name -> properties for every source in the pipeline."""
    return {source.connector_name: render(source, config.kafka) for source in config.sources}

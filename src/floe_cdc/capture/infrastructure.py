"""What Kafka, Kafka Connect and a PostgreSQL source must hold for a pipeline, as plain data.

``floe render`` writes it as JSON for Terraform, whose modules read it with
``jsondecode(file(…))``; ``floe connectors apply`` puts the same connector configurations on
Kafka Connect. One rendering serves both, so the two can never disagree.
"""

from __future__ import annotations

from typing import Any

from floe_cdc.capture.connect_secrets import SECRET_PROPERTIES
from floe_cdc.capture.connectors import MAX_MESSAGE_BYTES, render
from floe_cdc.capture.signals import notification_topic, signal_topic
from floe_cdc.core.config import PipelineConfig, PostgresSource


def connectors(config: PipelineConfig) -> dict[str, dict[str, Any]]:
    """Connector name -> its configuration without secrets, the names of the secret properties
    (Terraform's ``config_sensitive``), and its source."""
    rendered = {}
    for source in config.sources:
        properties = render(source, config.kafka)
        secret = sorted(p for p in SECRET_PROPERTIES if p in properties)
        rendered[source.connector_name] = {
            "source": source.name,
            "config": {
                "name": source.connector_name,
                **{k: v for k, v in properties.items() if k not in secret},
            },
            "sensitive_keys": secret,
        }
    return rendered


def topics(config: PipelineConfig) -> dict[str, dict[str, Any]]:
    """Topic name -> partitions and topic configuration: each table's change topic (one partition:
    a total order per table), and each source's signal and notification topics."""
    change = {"partitions": 1, "config": {"max.message.bytes": str(MAX_MESSAGE_BYTES)}}
    control = {"partitions": 1, "config": {}}
    rendered: dict[str, dict[str, Any]] = {
        source.topic_for(table): change for source, table in config.tables()
    }
    for source in config.sources:
        rendered[signal_topic(source)] = control
        rendered[notification_topic(source)] = control
    return rendered


def replication(config: PipelineConfig) -> dict[str, dict[str, Any]]:
    """PostgreSQL source name -> where it is, its publication and slot, and the tables published
    (schema and table apart: either may hold a dot)."""
    return {
        source.name: {
            "host": source.host,
            "port": source.port,
            "database": source.database,
            "user": source.user,
            "publication": source.publication_name,
            "slot": source.slot,
            "tables": [{"schema": table.schema_name, "table": table.table_name} for table in source.tables],
        }
        for source in config.sources
        if isinstance(source, PostgresSource)
    }

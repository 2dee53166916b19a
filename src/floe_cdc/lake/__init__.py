"""Iceberg side of Floe: catalog, schema mapping and evolution, checkpoints and the merge engine.
Knows nothing of Kafka or Debezium: it receives ``core.changes.ChangeBatch`` values."""

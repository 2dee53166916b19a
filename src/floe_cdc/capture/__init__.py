"""Change capture: Debezium connector configs, the Kafka Connect REST client, Kafka consumption
and decoding of Debezium change events into columnar change batches. Knows nothing of Iceberg."""

"""The embedded local stack: PostgreSQL, a Kafka-protocol broker, Kafka Connect with Debezium,
a Prefect server and an Iceberg SQL catalog, run as plain processes under one state directory.

It is separate from the pipeline: the pipeline only knows URLs from its configuration.
"""

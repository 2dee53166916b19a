"""Floe: change-data-capture replication into Apache Iceberg."""

__version__ = "0.1.0"

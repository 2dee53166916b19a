"""The embedded local stack: PostgreSQL, a Kafka-protocol broker, Kafka Connect with Debezium,
a Prefect server and an Iceberg SQL catalog, run as plain processes under one state directory.

It is separate from the pipeline: the pipeline only knows URLs from its configuration. It is an
extra (``floe-cdc[stack]``): nothing on a production path imports it.
"""

from floe_cdc.stack.demo.run import run_demo
from floe_cdc.stack.mongodb import check_replica_set, require_replica_sets
from floe_cdc.stack.settings import StackSettings
from floe_cdc.stack.stack import LocalStack

__all__ = ["LocalStack", "StackSettings", "check_replica_set", "require_replica_sets", "run_demo"]

"""Floe's Terraform provider (``floe/floe``): the publication and replication slot of a PostgreSQL
source, Debezium connectors on Kafka Connect, and Prefect's work pool, deployments, global
concurrency limits and automations, each created, read, updated and deleted through Floe's own
clients so that ``terraform plan`` sees what really is there.

It speaks Terraform's plugin protocol through the ``tf`` framework and is installed into a
filesystem mirror by ``floe terraform setup``; ``infra/terraform/envs/local`` uses it.
"""

from floe_cdc.terraform.mirror import install
from floe_cdc.terraform.provider import run

__all__ = ["install", "run"]

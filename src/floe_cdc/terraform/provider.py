"""The provider itself: its settings (where Kafka Connect, Prefect and PostgreSQL are) and its
resources. ``terraform-provider-floe`` runs it; Terraform starts it as a plugin."""

from __future__ import annotations

from typing import Any

from tf.iface import Config, DataSource, Provider
from tf.runner import run_provider
from tf.schema import Attribute, Schema
from tf.types import Number, String
from tf.utils import Diagnostics

from floe_cdc.core.secrets import register_secret
from floe_cdc.terraform.resource import FloeResource
from floe_cdc.terraform.resources import (
    Automation,
    Connector,
    Deployment,
    GlobalConcurrencyLimit,
    Publication,
    ReplicationSlot,
    WorkPool,
)

# Where ``floe terraform setup`` installs it: source "floe/floe" in a configuration.
HOST, NAMESPACE, TYPE, VERSION = "registry.terraform.io", "floe", "floe", "0.1.0"


class FloeProvider(Provider):
    def __init__(self) -> None:
        self.connect_url = ""
        self.prefect_api_url = ""
        self.postgres: dict[str, Any] = {}

    def get_model_prefix(self) -> str:
        return f"{TYPE}_"

    def full_name(self) -> str:
        return f"{HOST}/{NAMESPACE}/{TYPE}"

    def get_provider_schema(self, diags: Diagnostics) -> Schema:
        return Schema(
            attributes=[
                Attribute("connect_url", String(), required=True, description="Kafka Connect's REST URL"),
                Attribute(
                    "prefect_api_url", String(), required=True, description="e.g. http://host:4200/api"
                ),
                Attribute("postgres_host", String(), required=True),
                Attribute("postgres_port", Number(), optional=True, description="5432 when unset"),
                Attribute("postgres_user", String(), required=True, description="May create publications"),
                Attribute("postgres_password", String(), required=True, sensitive=True),
            ]
        )

    def validate_config(self, diags: Diagnostics, config: Config) -> None:
        """Nothing beyond the schema: a wrong address fails the first operation with its name."""

    def configure_provider(self, diags: Diagnostics, config: Config) -> None:
        self.connect_url = config["connect_url"]
        self.prefect_api_url = config["prefect_api_url"].rstrip("/")
        register_secret(config["postgres_password"])  # masked in every diagnostic
        self.postgres = {
            "host": config["postgres_host"],
            "port": int(config.get("postgres_port") or 5432),
            "user": config["postgres_user"],
            "password": config["postgres_password"],
        }

    def get_data_sources(self) -> list[type[DataSource]]:
        return []

    def get_resources(self) -> list[type[FloeResource]]:
        return [
            Publication,
            ReplicationSlot,
            Connector,
            WorkPool,
            Deployment,
            GlobalConcurrencyLimit,
            Automation,
        ]


def run() -> None:
    run_provider(FloeProvider())

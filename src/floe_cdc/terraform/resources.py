"""What Terraform sees of each of Floe's resources: name, description and attributes. What they do
is in ``postgres.py``, ``connect.py`` and ``prefect_objects.py``, imported at the first operation
(see ``resource.py`` for why)."""

from __future__ import annotations

from tf.schema import Attribute
from tf.types import List, Map, NormalizedJson, Number, String

from floe_cdc.terraform.resource import FloeResource, ImportedByName

_ID = Attribute("id", String(), computed=True, description="Prefect's id of the object")


class Publication(FloeResource):
    NAME = "publication"
    DOC = "A publication of exactly the tables a PostgreSQL source replicates (pgoutput reads it)."
    OPERATIONS = "floe_cdc.terraform.postgres:PublicationOperations"

    @classmethod
    def attributes(cls) -> list[Attribute]:
        return [
            Attribute("name", String(), required=True, requires_replace=True),
            Attribute("database", String(), required=True, requires_replace=True),
            Attribute(
                "tables",
                List(List(String())),
                required=True,
                description="[schema, table] pairs: either part may hold a dot",
            ),
        ]


class ReplicationSlot(FloeResource):
    NAME = "replication_slot"
    DOC = "A logical replication slot; it keeps WAL until a consumer confirms it, and until dropped."
    OPERATIONS = "floe_cdc.terraform.postgres:ReplicationSlotOperations"

    @classmethod
    def attributes(cls) -> list[Attribute]:
        return [
            Attribute("name", String(), required=True, requires_replace=True),
            Attribute("database", String(), required=True, requires_replace=True),
            Attribute("plugin", String(), required=True, requires_replace=True),
        ]


class Connector(ImportedByName):
    NAME = "connector"
    DOC = (
        "A connector on Kafka Connect. Create and update wait until it and its tasks run, so that "
        "apply fails where the connector would."
    )
    OPERATIONS = "floe_cdc.terraform.connect:ConnectorOperations"

    @classmethod
    def attributes(cls) -> list[Attribute]:
        return [
            Attribute("name", String(), required=True, requires_replace=True),
            Attribute("config", Map(String()), required=True),
            Attribute(
                "config_sensitive",
                Map(String()),
                optional=True,
                sensitive=True,
                description="Properties such as database.password: sent to Connect, never shown in plans",
            ),
        ]


class WorkPool(ImportedByName):
    NAME = "work_pool"
    DOC = "The work pool Floe's deployments run on; each worker of it can run any of them."
    OPERATIONS = "floe_cdc.terraform.prefect_objects:WorkPoolOperations"

    @classmethod
    def attributes(cls) -> list[Attribute]:
        return [
            Attribute("name", String(), required=True, requires_replace=True),
            Attribute("type", String(), required=True, requires_replace=True),
            _ID,
        ]


class GlobalConcurrencyLimit(ImportedByName):
    NAME = "global_concurrency_limit"
    DOC = "A global concurrency limit; Floe holds one of limit 1 per table, so a table has one writer."
    OPERATIONS = "floe_cdc.terraform.prefect_objects:GlobalConcurrencyLimitOperations"

    @classmethod
    def attributes(cls) -> list[Attribute]:
        return [
            Attribute("name", String(), required=True, requires_replace=True),
            Attribute("limit", Number(), required=True),
            _ID,
        ]


class Deployment(FloeResource):
    NAME = "deployment"
    DOC = (
        "A deployment of one of Floe's flows, run by the work pool's process workers from the "
        "project folder `path`, on an interval schedule or ad hoc."
    )
    OPERATIONS = "floe_cdc.terraform.prefect_objects:DeploymentOperations"

    @classmethod
    def attributes(cls) -> list[Attribute]:
        return [
            Attribute("name", String(), required=True, requires_replace=True),
            Attribute("flow_name", String(), required=True, requires_replace=True),
            Attribute("description", String(), optional=True),
            Attribute("entrypoint", String(), required=True),
            Attribute("path", String(), required=True, description="The project folder workers run from"),
            Attribute("parameters", NormalizedJson(), required=True),
            Attribute("work_pool_name", String(), required=True),
            Attribute("interval_seconds", Number(), optional=True, description="Unset: ad hoc only"),
            Attribute("concurrency_limit", Number(), optional=True, description="Runs at a time"),
            Attribute("job_variables", NormalizedJson(), optional=True, description="Of the run's process"),
            _ID,
        ]


class Automation(FloeResource):
    NAME = "automation"
    DOC = "An automation that notifies through a Prefect block when Floe's trigger fires."
    OPERATIONS = "floe_cdc.terraform.prefect_objects:AutomationOperations"

    @classmethod
    def attributes(cls) -> list[Attribute]:
        return [
            Attribute("name", String(), required=True),
            Attribute("description", String(), optional=True),
            Attribute("trigger", NormalizedJson(), required=True, description="An event trigger"),
            Attribute("actions", NormalizedJson(), required=True, description="[{subject, body}]"),
            Attribute(
                "notify_block_document_id",
                String(),
                optional=True,
                description="The block that notifies; unset, the automation only shows in the UI",
            ),
            _ID,
        ]

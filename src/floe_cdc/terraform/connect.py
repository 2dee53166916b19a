"""A Debezium connector on Kafka Connect, as Mongey/kafka-connect's ``kafka-connect_connector``
has it: ``config`` in the plan, ``config_sensitive`` kept out of it."""

from __future__ import annotations

from tf.schema import Attribute
from tf.types import Map, String

from floe_cdc.capture.connect_client import ConnectClient
from floe_cdc.capture.deploy import SETTLE_SECONDS
from floe_cdc.core.secrets import register_secret
from floe_cdc.terraform.resource import ImportedByName, State

RUNNING_TIMEOUT_SECONDS = 90.0


class Connector(ImportedByName):
    NAME = "connector"
    DOC = (
        "A connector on Kafka Connect. Create and update wait until it and its tasks run, so that "
        "apply fails where the connector would."
    )

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

    def _client(self) -> ConnectClient:
        return ConnectClient(self.provider.connect_url)

    def _put(self, planned: State) -> State:
        sensitive = planned.get("config_sensitive") or {}
        for value in sensitive.values():
            register_secret(value)  # masked in every diagnostic
        config = {**planned["config"], **sensitive, "name": planned["name"]}
        with self._client() as client:
            client.put_config(planned["name"], config)
            client.wait_configured(planned["name"], config, timeout=RUNNING_TIMEOUT_SECONDS)
            # The tasks restart with the new configuration within the settle time; a task that
            # fails on its first records fails within it too.
            client.wait_running(planned["name"], timeout=RUNNING_TIMEOUT_SECONDS, settle=SETTLE_SECONDS)
        return planned

    def _create(self, planned: State) -> State:
        return self._put(planned)

    def _update(self, current: State, planned: State) -> State:
        return self._put(planned)

    def _read(self, current: State) -> State | None:
        with self._client() as client:
            actual = client.get_config(current["name"])
        if actual is None:
            return None
        sensitive = current.get("config_sensitive") or {}
        config = {key: value for key, value in actual.items() if key not in sensitive}
        if "name" not in current.get("config", config):  # Connect adds it; keep it only if declared
            config.pop("name", None)
        secrets = {key: actual[key] for key in sensitive if key in actual}
        return {
            **current,
            "config": config,
            "config_sensitive": secrets if sensitive else current.get("config_sensitive"),
        }

    def _delete(self, current: State) -> None:
        with self._client() as client:
            client.delete(current["name"])

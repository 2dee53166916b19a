"""A Debezium connector on Kafka Connect, as Mongey/kafka-connect's ``kafka-connect_connector``
has it: ``config`` in the plan, ``config_sensitive`` kept out of it."""

from __future__ import annotations

from floe_cdc.capture.connect_client import ConnectClient
from floe_cdc.capture.deploy import SETTLE_SECONDS
from floe_cdc.core.secrets import register_secret
from floe_cdc.terraform.resource import Operations, State

RUNNING_TIMEOUT_SECONDS = 90.0


class ConnectorOperations(Operations):
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

    def create(self, planned: State) -> State:
        return self._put(planned)

    def update(self, current: State, planned: State) -> State:
        return self._put(planned)

    def read(self, current: State) -> State | None:
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

    def delete(self, current: State) -> None:
        with self._client() as client:
            client.delete(current["name"])

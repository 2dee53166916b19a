"""A small Kafka Connect REST client. Errors carry Connect's own message and status code.

Distributed workers answer 409 while they rebalance; those calls are retried for a bounded time
because a rebalance after a config change is routine, not a failure.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from floe.errors import ConnectError, ConnectUnavailable
from floe.secrets import mask


class ConnectClient:
    def __init__(self, url: str, timeout_seconds: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout_seconds
        self._http = httpx.Client(base_url=self.url, timeout=timeout_seconds)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ConnectClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, json: Any = None, ok_missing: bool = False) -> Any:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                response = self._http.request(method, path, json=json)
            except httpx.ReadTimeout as exc:
                raise ConnectUnavailable(
                    f"Kafka Connect at {self.url} did not answer {method} {path} within {self.timeout:.0f}s. "
                    "Validating a connector includes its connection test (for MongoDB, up to the driver's "
                    "server selection timeout): check that the source is reachable from Connect, or raise "
                    "connect.timeout_seconds"
                ) from exc
            except httpx.HTTPError as exc:
                raise ConnectUnavailable(f"Kafka Connect at {self.url} is unreachable ({exc})") from exc
            if response.status_code == 409 and time.monotonic() < deadline:
                time.sleep(1.0)  # rebalance in progress
                continue
            if ok_missing and response.status_code == 404:
                return None
            if response.status_code >= 400:
                try:
                    message = response.json().get("message", response.text)
                except ValueError:
                    message = response.text
                cls = ConnectUnavailable if response.status_code in (409, 503) else ConnectError
                raise cls(
                    f"Kafka Connect {method} {path} failed ({response.status_code}): {mask(str(message))}",
                    response.status_code,
                )
            if response.status_code == 204 or not response.content:
                return None
            return response.json()

    def version(self) -> dict[str, Any]:
        return self._request("GET", "/")

    def plugins(self) -> list[dict[str, Any]]:
        return self._request("GET", "/connector-plugins")

    def connectors(self) -> list[str]:
        return self._request("GET", "/connectors")

    def get_config(self, name: str) -> dict[str, str] | None:
        return self._request("GET", f"/connectors/{name}/config", ok_missing=True)

    def put_config(self, name: str, config: dict[str, str]) -> dict[str, Any]:
        """Create the connector, or update it when it exists (PUT is idempotent)."""
        return self._request("PUT", f"/connectors/{name}/config", json=config)

    def status(self, name: str) -> dict[str, Any] | None:
        return self._request("GET", f"/connectors/{name}/status", ok_missing=True)

    def pause(self, name: str) -> None:
        self._request("PUT", f"/connectors/{name}/pause")

    def resume(self, name: str) -> None:
        self._request("PUT", f"/connectors/{name}/resume")

    def restart(self, name: str, include_tasks: bool = True) -> None:
        flag = "true" if include_tasks else "false"
        self._request("POST", f"/connectors/{name}/restart?includeTasks={flag}&onlyFailed=false")

    def delete(self, name: str) -> None:
        self._request("DELETE", f"/connectors/{name}", ok_missing=True)

    def validate(self, connector_class: str, config: dict[str, str]) -> dict[str, list[str]]:
        """Ask the connector itself to validate *config*; return errors per field (empty if valid)."""
        short = connector_class.rsplit(".", 1)[-1]
        body = self._request("PUT", f"/connector-plugins/{short}/config/validate", json=config)
        errors: dict[str, list[str]] = {}
        for item in body.get("configs", []):
            value = item.get("value", {})
            if value.get("errors"):
                errors[value["name"]] = value["errors"]
        return errors

    def wait_running(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the connector and all its tasks are RUNNING; raise with the trace on FAILED."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            status = self.status(name)
            if status:
                states = [status["connector"]["state"], *(t["state"] for t in status.get("tasks", []))]
                failed = [t for t in status.get("tasks", []) if t["state"] == "FAILED"]
                if status["connector"]["state"] == "FAILED" or failed:
                    trace = (failed[0] if failed else status["connector"]).get("trace", "")
                    raise ConnectError(
                        f"connector {name} FAILED: {mask(trace.splitlines()[0] if trace else '')}"
                    )
                if status.get("tasks") and all(state == "RUNNING" for state in states):
                    return status
            time.sleep(0.5)
        raise ConnectUnavailable(f"connector {name} not RUNNING after {timeout:.0f}s; last status: {status}")

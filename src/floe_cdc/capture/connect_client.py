"""A small Kafka Connect REST client. Errors carry Connect's own message and status code.

Distributed workers answer 409 while they rebalance, and 500 "a rebalance is expected" just before one
(Connect's RebalanceNeededException has no status of its own); those calls are retried (tenacity) for a
bounded time because a rebalance after a config change is routine, not a failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

from floe_cdc.core.errors import ConnectRejected, ConnectUnavailable
from floe_cdc.core.secrets import mask


class _Rebalancing(ConnectUnavailable):
    """409, or 500 naming a rebalance: the distributed workers are rebalancing; the request is retried."""


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
        retrying = Retrying(
            retry=retry_if_exception_type(_Rebalancing),
            stop=stop_after_delay(self.timeout),
            wait=wait_fixed(1.0),
            reraise=True,
        )
        return retrying(self._request_once, method, path, json, ok_missing)

    def _request_once(self, method: str, path: str, json: Any, ok_missing: bool) -> Any:
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
            raise ConnectUnavailable(
                f"Kafka Connect at {self.url} is unreachable ({exc}); check connect.url in the pipeline "
                "configuration and that the Connect worker is running"
            ) from exc
        if ok_missing and response.status_code == 404:
            return None
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            status = response.status_code
            rebalancing = status == 409 or (status >= 500 and "rebalance" in str(message).lower())
            cls = _Rebalancing if rebalancing else ConnectUnavailable if status >= 500 else ConnectRejected
            raise cls(f"Kafka Connect {method} {path} failed ({status}): {mask(str(message))}", status)
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

    def wait_configured(self, name: str, config: dict[str, str], timeout: float = 60.0) -> None:
        """Wait until every task of the connector has *config*.

        Connect applies a new configuration asynchronously: it restarts the connector, which
        writes new task configurations, and only then restarts the tasks; until then the old
        tasks run on, and their status says RUNNING.
        """
        wanted = {key: value for key, value in config.items() if key != "name"}

        def tasks() -> list[dict[str, Any]]:
            return self._request("GET", f"/connectors/{name}/tasks", ok_missing=True) or []

        retrying = Retrying(
            retry=retry_if_result(
                lambda found: not found or any(not wanted.items() <= t["config"].items() for t in found)
            ),
            stop=stop_after_delay(timeout),
            wait=wait_fixed(0.5),
            retry_error_callback=lambda _: None,
        )
        if retrying(tasks) is None:
            raise ConnectUnavailable(
                f"connector {name}: its tasks did not take the new configuration in {timeout:.0f}s"
            )

    def status(self, name: str) -> dict[str, Any] | None:
        return self._request("GET", f"/connectors/{name}/status", ok_missing=True)

    def pause(self, name: str) -> None:
        self._request("PUT", f"/connectors/{name}/pause")

    def resume(self, name: str) -> None:
        self._request("PUT", f"/connectors/{name}/resume")

    def restart(self, name: str, only_failed: bool = False) -> None:
        """Restart the connector and its tasks (only the failed ones with *only_failed*)."""
        flag = "true" if only_failed else "false"
        self._request("POST", f"/connectors/{name}/restart?includeTasks=true&onlyFailed={flag}")

    def wait_cleared(self, name: str, failure: str, timeout: float = 15.0) -> None:
        """Wait until the status no longer shows *failure* (Connect updates it asynchronously
        after a restart); a task that fails the same way again still shows it after *timeout*."""
        cleared = Retrying(
            retry=retry_if_result(lambda status: bool(status) and failure_of(name, status) == failure),
            stop=stop_after_delay(timeout),
            wait=wait_fixed(0.5),
            retry_error_callback=lambda _: None,
        )
        cleared(self.status, name)

    def delete(self, name: str) -> None:
        """Delete the connector and wait until the workers no longer report it (they do so
        asynchronously in distributed mode)."""
        self._request("DELETE", f"/connectors/{name}", ok_missing=True)
        gone = Retrying(
            retry=retry_if_result(lambda status: status is not None),
            stop=stop_after_delay(self.timeout),
            wait=wait_fixed(0.5),
            retry_error_callback=lambda _: None,  # still listed after the timeout: left to Connect
        )
        gone(self.status, name)

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

    def wait_state(self, name: str, state: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the connector and all its tasks report *state* (PAUSED, say)."""

        def reached(status: dict[str, Any] | None) -> dict[str, Any] | None:
            states = (
                [status["connector"]["state"], *(t["state"] for t in status.get("tasks", []))]
                if status
                else []
            )
            return status if states and all(s == state for s in states) else None

        return self._wait(name, reached, timeout, state)

    def wait_running(self, name: str, timeout: float = 60.0, settle: float = 0.0) -> dict[str, Any]:
        """Wait until the connector and all its tasks are RUNNING, and still are *settle* seconds
        later (a task that fails on its first records fails within that time); raise with the
        first line of the trace on FAILED."""
        running_since: float | None = None

        def settled(status: dict[str, Any] | None) -> dict[str, Any] | None:
            nonlocal running_since
            if not status:
                return None
            failure = failure_of(name, status)
            if failure:
                raise ConnectRejected(failure)
            if not is_running(status):
                running_since = None
                return None
            running_since = running_since or time.monotonic()
            return status if time.monotonic() - running_since >= settle else None

        return self._wait(name, settled, timeout, "RUNNING")

    def _wait(
        self,
        name: str,
        check: Callable[[dict[str, Any] | None], dict[str, Any] | None],
        timeout: float,
        wanted: str,
    ) -> dict[str, Any]:
        """Poll the connector's status until *check* returns it, for at most *timeout* seconds."""
        last: dict[str, Any] | None = None

        def attempt() -> dict[str, Any] | None:
            nonlocal last
            last = self.status(name)
            return check(last)

        retrying = Retrying(
            retry=retry_if_result(lambda status: status is None),
            stop=stop_after_delay(timeout),
            wait=wait_fixed(0.5),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except RetryError:
            raise ConnectUnavailable(
                f"connector {name} not {wanted} after {timeout:.0f}s; last status: {last}"
            ) from None


def is_running(status: dict[str, Any]) -> bool:
    """The connector and every one of its tasks (at least one) are RUNNING."""
    tasks = status.get("tasks", [])
    return bool(tasks) and all(s["state"] == "RUNNING" for s in [status["connector"], *tasks])


def failure_of(name: str, status: dict[str, Any]) -> str | None:
    """The first line of a FAILED connector's or task's trace, with the way out; None if none failed."""
    failed = [t for t in status.get("tasks", []) if t["state"] == "FAILED"]
    if status["connector"]["state"] != "FAILED" and not failed:
        return None
    what = f"task {failed[0]['id']}" if failed else "the connector"
    trace = mask((failed[0] if failed else status["connector"]).get("trace", "") or "")
    lines = trace.splitlines()
    causes = [line.strip() for line in lines if line.startswith("Caused by:")]
    first = lines[0] if lines else "no trace reported"
    if causes:  # the root cause says what went wrong (e.g. a record's size)
        first = f"{first} ({causes[-1]})"
    hint = ""
    if "RecordTooLargeException" in trace:
        hint = (
            " A change event is larger than the producer or broker allows: raise "
            "producer.override.max.request.size and producer.override.buffer.memory in the source's "
            "connector_overrides, and the topic's max.message.bytes (broker: message.max.bytes)."
        )
    return (
        f"connector {name}: {what} FAILED: {first}.{hint} Fix the cause, then run 'floe connectors apply', "
        "which restarts failed tasks"
    )

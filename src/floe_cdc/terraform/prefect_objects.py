"""Prefect's objects that run Floe: the work pool, the deployments, the one-writer-per-table
global concurrency limits, and the alert automations, as ``floe render``'s prefect.json has
them. The client talks to the provider's ``prefect_api_url``, never to a profile's."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from prefect.automations import AutomationCore, EventTrigger
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
    WorkPoolCreate,
)
from prefect.exceptions import ObjectNotFound

from floe_cdc.flows.alerts import notification, trigger_document
from floe_cdc.flows.deployments import DeploymentSpec, put_deployment
from floe_cdc.terraform.resource import Operations, State


@contextlib.contextmanager
def _client(resource: Operations) -> Iterator[SyncPrefectClient]:
    with SyncPrefectClient(resource.provider.prefect_api_url) as client:
        yield client


class WorkPoolOperations(Operations):
    def create(self, planned: State) -> State:
        with _client(self) as client:
            pool = client.create_work_pool(WorkPoolCreate(name=planned["name"], type=planned["type"]))
        return {**planned, "id": str(pool.id)}

    def read(self, current: State) -> State | None:
        with _client(self) as client:
            try:
                pool = client.read_work_pool(current["name"])
            except ObjectNotFound:
                return None
        return {**current, "type": pool.type, "id": str(pool.id)}

    def update(self, current: State, planned: State) -> State:
        raise AssertionError("every attribute of a work pool replaces it")

    def delete(self, current: State) -> None:
        with _client(self) as client, contextlib.suppress(ObjectNotFound):
            client.delete_work_pool(current["name"])


class GlobalConcurrencyLimitOperations(Operations):
    def create(self, planned: State) -> State:
        with _client(self) as client:
            limit_id = client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=planned["name"], limit=planned["limit"])
            )
        return {**planned, "id": str(limit_id)}

    def read(self, current: State) -> State | None:
        with _client(self) as client:
            try:
                limit = client.read_global_concurrency_limit_by_name(current["name"])
            except ObjectNotFound:
                return None
        return {**current, "limit": limit.limit, "id": str(limit.id)}

    def update(self, current: State, planned: State) -> State:
        with _client(self) as client:
            client.update_global_concurrency_limit(
                planned["name"], GlobalConcurrencyLimitUpdate(limit=planned["limit"])
            )
        return planned

    def delete(self, current: State) -> None:
        with _client(self) as client, contextlib.suppress(ObjectNotFound):
            client.delete_global_concurrency_limit_by_name(current["name"])


class DeploymentOperations(Operations):
    def _put(self, planned: State) -> State:
        """Create or replace, as ``floe deploy`` does."""
        spec = DeploymentSpec(
            name=planned["name"],
            flow=planned["flow_name"],
            entrypoint=planned["entrypoint"],
            description=planned.get("description") or "",
            parameters=planned["parameters"],
            interval_seconds=planned.get("interval_seconds"),
            concurrency_limit=planned.get("concurrency_limit"),
            job_variables=planned.get("job_variables"),
        )
        with _client(self) as client:
            deployment_id = put_deployment(client, spec, planned["path"], planned["work_pool_name"])
        return {**planned, "id": str(deployment_id)}

    def create(self, planned: State) -> State:
        if self.read(planned) is not None:  # Prefect's create would silently take it over
            raise ValueError(
                f"deployment {planned['flow_name']}/{planned['name']} exists already (registered by "
                "'floe deploy'?); delete it in Prefect, then apply again"
            )
        return self._put(planned)

    def update(self, current: State, planned: State) -> State:
        return self._put(planned)

    def read(self, current: State) -> State | None:
        with _client(self) as client:
            try:
                deployment = client.read_deployment_by_name(f"{current['flow_name']}/{current['name']}")
            except ObjectNotFound:
                return None
        intervals = [
            schedule.schedule.interval.total_seconds()
            for schedule in deployment.schedules
            if hasattr(schedule.schedule, "interval")
        ]
        limit = deployment.global_concurrency_limit.limit if deployment.global_concurrency_limit else None
        return {
            **current,
            "description": deployment.description or None,
            "entrypoint": deployment.entrypoint,
            "path": deployment.path,
            "parameters": deployment.parameters,
            "work_pool_name": deployment.work_pool_name,
            # Schedules added behind Terraform's back read as interval 0, which the next apply replaces.
            "interval_seconds": (intervals[0] if len(intervals) == 1 else 0) if intervals else None,
            "concurrency_limit": limit,
            "job_variables": deployment.job_variables or None,
            "id": str(deployment.id),
        }

    def delete(self, current: State) -> None:
        with _client(self) as client, contextlib.suppress(ObjectNotFound):
            client.delete_deployment(UUID(current["id"]))


class AutomationOperations(Operations):
    def _core(self, planned: State) -> Any:
        return AutomationCore(
            name=planned["name"],
            description=planned.get("description") or "",
            trigger=EventTrigger.model_validate(planned["trigger"]),
            actions=[
                notification(planned.get("notify_block_document_id"), action["subject"], action["body"])
                for action in planned["actions"]
            ],
        )

    def create(self, planned: State) -> State:
        with _client(self) as client:
            if client.read_automations_by_name(planned["name"]):
                raise ValueError(
                    f"an automation named {planned['name']!r} exists already (made by 'floe deploy'?); "
                    "delete it in Prefect, then apply again"
                )
            automation_id = client.create_automation(self._core(planned))
        return {**planned, "id": str(automation_id)}

    def update(self, current: State, planned: State) -> State:
        with _client(self) as client:
            client.update_automation(UUID(current["id"]), self._core(planned))
        return {**planned, "id": current["id"]}

    def read(self, current: State) -> State | None:
        with _client(self) as client:
            automation = client.read_automation(current["id"])
        if automation is None:
            return None
        declared = current.get("actions") or []
        actions, blocks = [], set()
        for index, action in enumerate(automation.actions):
            if action.type == "send-notification":
                actions.append({"subject": action.subject, "body": action.body})
                blocks.add(str(action.block_document_id))
            else:  # do-nothing keeps no subject or body: what was declared stands
                actions.append(declared[index] if index < len(declared) else {"subject": "", "body": ""})
        return {
            **current,
            "name": automation.name,
            "description": automation.description or None,
            "trigger": trigger_document(automation.trigger),
            "actions": actions,
            "notify_block_document_id": blocks.pop() if len(blocks) == 1 else None,
        }

    def delete(self, current: State) -> None:
        with _client(self) as client, contextlib.suppress(ObjectNotFound):
            client.delete_automation(UUID(current["id"]))

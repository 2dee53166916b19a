"""Floe's alerts in Prefect: the events runs emit, and the automations that notify people.

Runs emit a Prefect event per alert (``pipeline.health`` decides which); ``floe deploy`` creates
one automation per kind of alert, and one each for a failed or crashed Floe run and for
replicate not reporting at all. An automation sends its notification through the Prefect
block named by ``alerts.notify_block``; without one it still fires and shows in the Prefect UI
(Automations, Event feed). Deploying again replaces Floe's automations, so that they follow
``floe.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prefect import get_client
from prefect.automations import AutomationCore, DoNothing, EventTrigger, Posture, SendNotification
from prefect.blocks.core import Block
from prefect.events import emit_event

from floe_cdc.core.config import PipelineConfig
from floe_cdc.core.errors import ConfigError
from floe_cdc.pipeline.health import LAGGING, RECONCILIATION_FAILED, STALLED, WAL_RETAINED, Alert

FLOE_FLOWS = ["replicate", "reconcile", "maintain", "pause", "resume", "resnapshot"]
# Each replicate report emits it (a one-shot run's, and a long-lived run's on its cadence): its
# silence is the "replicate stopped" alert. A report runs between commits, so a run whose process
# lives on but whose commits hang falls silent too.
REPORTED = "floe.replicate.reported"
_MESSAGE = "{{ event.payload.message }}"


def emit_reported(tables: list[str], events: int) -> None:
    """A replicate run reported on *tables*, having merged *events* since its last report."""
    emit_event(
        REPORTED,
        resource={"prefect.resource.id": "floe.replicate", "prefect.resource.name": "replicate"},
        payload={"tables": tables, "events": events},
    )


def emit_alerts(alerts: list[Alert]) -> None:
    for alert in alerts:
        emit_event(
            alert.event,
            resource={"prefect.resource.id": f"floe.{alert.subject}", "prefect.resource.name": alert.subject},
            payload={**alert.payload, "message": alert.message},
        )


def _action(config: PipelineConfig, subject: str, body: str) -> DoNothing | SendNotification:
    slug = config.alerts.notify_block
    if slug is None:
        return notification(None, subject, body)
    try:
        block = Block.load(slug)
    except ValueError:
        raise ConfigError(
            f"alerts.notify_block '{slug}' is not a Prefect block; create it (for example 'prefect block "
            "create slack-webhook') or correct the name in the pipeline configuration"
        ) from None
    return notification(str(block._block_document_id), subject, body)


@dataclass(frozen=True)
class AlertRule:
    """One of Floe's automations without its action: what fires it and what it says."""

    name: str
    description: str
    trigger: EventTrigger
    subject: str
    body: str


def _floe_event(name: str, event: str, what: str) -> AlertRule:
    return AlertRule(
        name,
        f"Floe: {what}. The notification names the table or slot and the fix.",
        EventTrigger(expect={event}, for_each={"prefect.resource.id"}, posture=Posture.Reactive, threshold=1),
        f"Floe: {what} ({{{{ event.resource.name }}}})",
        _MESSAGE,
    )


def alert_rules(config: PipelineConfig) -> list[AlertRule]:
    """Floe's automations, built from *config*'s ``alerts:``; ``floe deploy`` and ``floe render``
    (for Terraform) share them."""
    flows = {"prefect.resource.role": "flow", "prefect.resource.name": FLOE_FLOWS}
    run_failed = (
        "Flow run {{ flow_run.name }} of {{ flow.name }} ended {{ flow_run.state.name }}: "
        "{{ flow_run.state.message }}. Its logs and artifacts: {{ flow_run|ui_url }}"
    )
    stopped = (
        "No replicate run has reported for {{ trigger.within }}: the tables are not being "
        "replicated. Check the floe work pool's workers, the replicate deployments' runs and their "
        "schedules in the Prefect UI."
    )
    return [
        _floe_event("floe: reconciliation failed", RECONCILIATION_FAILED, "a reconciliation failed"),
        _floe_event("floe: replication lag", LAGGING, "replication lag over the threshold"),
        _floe_event("floe: table stalled", STALLED, "a table stopped committing while changes wait"),
        _floe_event("floe: WAL retained", WAL_RETAINED, "a replication slot retains too much WAL"),
        AlertRule(
            "floe: run failed",
            "Floe: a Floe flow run failed or crashed.",
            EventTrigger(
                expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                match_related=flows,
                posture=Posture.Reactive,
                threshold=1,
            ),
            "Floe: {{ flow.name }} run {{ flow_run.state.name }}",
            run_failed,
        ),
        AlertRule(
            "floe: replicate stopped",
            "Floe: no replicate run reported within alerts.stall_minutes.",
            EventTrigger(
                expect={REPORTED},
                match_related={"prefect.resource.role": "flow", "prefect.resource.name": "replicate"},
                posture=Posture.Proactive,
                threshold=1,
                within=timedelta(minutes=config.alerts.stall_minutes),
            ),
            "Floe: replicate stopped",
            stopped,
        ),
    ]


def trigger_document(trigger: EventTrigger) -> dict[str, Any]:
    """*trigger* as plain JSON, the way ``floe render`` writes it for Terraform and Floe's provider
    reads it back (``EventTrigger.model_validate`` takes it as it is)."""
    within = trigger.within.total_seconds()
    return {
        "posture": trigger.posture.value,
        "expect": sorted(trigger.expect),
        "for_each": sorted(trigger.for_each),
        "match": trigger.match.model_dump(mode="json") if trigger.match else {},
        "match_related": trigger.match_related.model_dump(mode="json") if trigger.match_related else {},
        "threshold": trigger.threshold,
        "within": int(within) if within.is_integer() else within,
    }


def notification(
    notify_block_document_id: str | None, subject: str, body: str
) -> DoNothing | SendNotification:
    """An automation's action: a notification through that block, or nothing without one."""
    if notify_block_document_id is None:
        return DoNothing()
    return SendNotification(block_document_id=notify_block_document_id, subject=subject, body=body)


def automations(config: PipelineConfig) -> list[AutomationCore]:
    """The automations ``floe deploy`` keeps in Prefect, notifying through ``alerts.notify_block``."""
    return [
        AutomationCore(
            name=rule.name,
            description=rule.description,
            trigger=rule.trigger,
            actions=[_action(config, rule.subject, rule.body)],
        )
        for rule in alert_rules(config)
    ]


def ensure_automations(wanted: list[AutomationCore]) -> list[str]:
    """Create *wanted* (see :func:`automations`), replacing earlier ones of the same name; their names."""
    with get_client(sync_client=True) as client:
        for automation in wanted:
            for existing in client.read_automations_by_name(automation.name):
                client.delete_automation(existing.id)
            client.create_automation(automation)
    return [automation.name for automation in wanted]

"""Prefect entrypoint (named by prefect.yaml): the flow lives in floe_cdc.flows.reconcile."""

from floe_cdc.flows.reconcile import reconcile

__all__ = ["reconcile"]

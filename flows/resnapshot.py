"""Prefect entrypoint (named by prefect.yaml): the flow lives in floe_cdc.flows.resnapshot."""

from floe_cdc.flows.resnapshot import resnapshot

__all__ = ["resnapshot"]

"""Prefect entrypoint (named by prefect.yaml): the flow lives in floe_cdc.flows.maintain."""

from floe_cdc.flows.maintain import maintain

__all__ = ["maintain"]

"""Prefect entrypoint (named by prefect.yaml): the flow lives in floe_cdc.flows.replicate."""

from floe_cdc.flows.replicate import replicate

__all__ = ["replicate"]

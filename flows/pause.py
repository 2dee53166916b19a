"""Prefect entrypoints (named by prefect.yaml): the flows live in floe_cdc.flows.pause."""

from floe_cdc.flows.pause import pause, resume

__all__ = ["pause", "resume"]

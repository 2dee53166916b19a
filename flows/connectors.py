"""Prefect entrypoint (named by prefect.yaml): the flow lives in floe_cdc.flows.connectors."""

from floe_cdc.flows.connectors import connectors

__all__ = ["connectors"]

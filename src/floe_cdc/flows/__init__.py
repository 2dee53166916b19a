"""Prefect flows: thin recipes over the pipeline (``pipeline/``), with retries, reports and deployments."""

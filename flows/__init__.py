"""Prefect flows: thin recipes that wire ``cdc/``, ``iceberg/`` and ``soda_checks/`` together."""

"""Floe: change-data-capture replication from PostgreSQL and MongoDB into Apache Iceberg.

Prefect reads its settings when it is imported; they are set here, before any module of Floe
can import it (``core.prefect_settings``).
"""

from floe_cdc.core.prefect_settings import configure_prefect

__version__ = "0.1.0"

configure_prefect()

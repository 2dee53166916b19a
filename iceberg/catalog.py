"""Open the Iceberg SQL catalog named in the pipeline configuration."""

from __future__ import annotations

import contextlib

from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError
from pyiceberg.table import Table

from floe.config import IcebergConfig


def open_catalog(config: IcebergConfig) -> Catalog:
    """The SQL catalog, with the configured namespace created if missing."""
    catalog = SqlCatalog(
        config.catalog_name,
        uri=config.catalog_uri.get_secret_value(),
        warehouse=config.warehouse,
        init_catalog_tables="true",
    )
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(config.namespace)
    return catalog


def load_table(catalog: Catalog, namespace: str, name: str) -> Table | None:
    """The table, or None when it has not been created yet (no change seen for it)."""
    try:
        return catalog.load_table((namespace, name))
    except NoSuchTableError:
        return None

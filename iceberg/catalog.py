"""Open the Iceberg SQL catalog named in the pipeline configuration."""

from __future__ import annotations

import contextlib

from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError
from pyiceberg.table import Table
from sqlalchemy.exc import SQLAlchemyError

from floe.config import IcebergConfig
from floe.errors import FloeError, Transient
from floe.secrets import masked_line


class CatalogUnavailable(FloeError, Transient):
    """The Iceberg catalog's database could not be reached or refused the connection."""


def open_catalog(config: IcebergConfig) -> Catalog:
    """The SQL catalog. Nothing is created in it until a table is (see ``ensure_namespace``)."""
    try:
        return SqlCatalog(
            config.catalog_name,
            uri=config.catalog_uri.get_secret_value(),
            warehouse=config.warehouse,
            init_catalog_tables="true",
        )
    except SQLAlchemyError as exc:
        reason = masked_line(getattr(exc, "orig", None) or exc)
        raise CatalogUnavailable(
            f"the Iceberg catalog database did not accept a connection ({reason}); check "
            "iceberg.catalog_uri in the pipeline configuration (host, port, user and password) and "
            "that the database is running"
        ) from None


def ensure_namespace(catalog: Catalog, namespace: str) -> None:
    """Create *namespace* if missing: called only when a table is about to be created in it."""
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(namespace)


def load_table(catalog: Catalog, namespace: str, name: str) -> Table | None:
    """The table, or None when it has not been created yet (no change seen for it)."""
    try:
        return catalog.load_table((namespace, name))
    except NoSuchTableError:
        return None

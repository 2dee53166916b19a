"""Open the Iceberg catalog the pipeline configuration names (any pyiceberg catalog)."""

from __future__ import annotations

import contextlib

import requests
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError, OAuthError, RESTError
from pyiceberg.table import Table
from sqlalchemy.exc import SQLAlchemyError

from floe.config import IcebergConfig
from floe.errors import FloeError, Transient
from floe.secrets import masked_line


class CatalogUnavailable(FloeError, Transient):
    """The Iceberg catalog could not be reached or refused the connection."""


# What opening a catalog raises when its service is away or refuses the credentials.
_UNREACHABLE = (SQLAlchemyError, requests.RequestException, RESTError, OAuthError)


def open_catalog(config: IcebergConfig) -> Catalog:
    """The configured catalog. Nothing is created in it until a table is (see ``ensure_namespace``)."""
    properties = config.catalog_properties()
    if properties.get("type") == "sql":
        properties.setdefault("init_catalog_tables", "true")
    try:
        return load_catalog(config.catalog_name, **properties)
    except _UNREACHABLE as exc:
        reason = masked_line(getattr(exc, "orig", None) or exc)
        setting = (
            "iceberg.catalog_uri" if config.catalog_uri is not None else "iceberg.catalog (uri, credential)"
        )
        raise CatalogUnavailable(
            f"the Iceberg catalog did not accept a connection ({reason}); check {setting} in the pipeline "
            "configuration and that the catalog is running"
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

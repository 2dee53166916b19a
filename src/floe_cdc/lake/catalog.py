"""Open the Iceberg catalog the pipeline configuration names (any pyiceberg catalog)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import requests
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import (
    BadRequestError,
    CommitStateUnknownException,
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    OAuthError,
    RESTError,
    ServerError,
    ServiceUnavailableError,
    TooManyRequestsError,
)
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER, SortOrder
from sqlalchemy.exc import SQLAlchemyError

from floe_cdc.core.config import IcebergConfig
from floe_cdc.core.errors import FloeError, Terminal, Transient
from floe_cdc.core.secrets import masked_line
from floe_cdc.lake.file_io import FILE_IO


class CatalogUnavailable(FloeError, Transient):
    """The Iceberg catalog or the warehouse's storage could not be reached or refused the connection."""


class CatalogRefused(FloeError, Terminal):
    """The catalog refused to create a namespace or table, most often for its name."""


# What opening a catalog raises when its service is away or refuses the credentials.
_UNREACHABLE = (SQLAlchemyError, requests.RequestException, RESTError, OAuthError)

# What reading or committing raises while the catalog or the object store is away: pyarrow's S3
# errors are OSErrors. A commit whose outcome is unknown is safe to retry, because Floe's offsets
# travel in the same commit: either both landed or neither did.
AWAY = (
    OSError,
    SQLAlchemyError,
    requests.RequestException,
    ServerError,
    ServiceUnavailableError,
    TooManyRequestsError,
    CommitStateUnknownException,
)


def away_error(table: str, exc: BaseException, reading: bool = False) -> CatalogUnavailable:
    """The error for *table* when the catalog or its object store went away under a read or a
    commit, naming the settings that point at them."""
    outcome = "" if reading else "nothing was committed, the next cycle applies the same changes; "
    return CatalogUnavailable(
        f"table {table}: the Iceberg catalog or its object store did not answer ({masked_line(exc)}); "
        f"{outcome}check iceberg.catalog in the pipeline configuration (its uri, s3.endpoint and "
        "credentials) and that the catalog and the object store are running"
    )


@contextlib.contextmanager
def reading(table: str) -> Iterator[None]:
    """Reads of *table*: a catalog or object store that does not answer is the error that names
    the table and the settings (transient: it may pass)."""
    try:
        yield
    except AWAY as exc:
        raise away_error(table, exc, reading=True) from exc


def open_catalog(config: IcebergConfig) -> Catalog:
    """The configured catalog, its tables written through Floe's FileIO unless the configuration
    names one. Nothing is created in it until a table is (see ``new_table``)."""
    properties = {**FILE_IO, **config.catalog_properties()}
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


def new_table(
    catalog: Catalog,
    namespace: str,
    name: str,
    schema: Schema,
    setting: str,
    properties: dict[str, str],
    partition_spec: PartitionSpec = UNPARTITIONED_PARTITION_SPEC,
    sort_order: SortOrder = UNSORTED_SORT_ORDER,
) -> Table:
    """Create *namespace* if missing, then the table. Catalogs differ in the names they accept (S3
    Tables take only ``a-z0-9_-``, starting with a letter or digit): a refusal names *setting*,
    the configuration that gives the table its name."""
    try:
        with contextlib.suppress(NamespaceAlreadyExistsError):
            catalog.create_namespace(namespace)
        return catalog.create_table(
            (namespace, name),
            schema=schema,
            properties=properties,
            partition_spec=partition_spec,
            sort_order=sort_order,
        )
    except BadRequestError as exc:
        raise CatalogRefused(
            f"the Iceberg catalog refused to create table '{namespace}.{name}' ({masked_line(exc)}); "
            f"set {setting} to a name this catalog accepts"
        ) from None


def load_table(catalog: Catalog, namespace: str, name: str) -> Table | None:
    """The table, or None when it has not been created yet (no change seen for it)."""
    try:
        return catalog.load_table((namespace, name))
    except NoSuchTableError:
        return None
    except AWAY as exc:
        raise away_error(f"{namespace}.{name}", exc) from None

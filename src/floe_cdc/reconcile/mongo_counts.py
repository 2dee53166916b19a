"""Count a MongoDB collection's documents with pymongo, for reconciliation.

Soda Core has no MongoDB data source, so the count is taken here and handed to the Soda scan as
a variable; the check itself (``row_count = ${count}`` on the Iceberg table) stays in SodaCL.
"""

from __future__ import annotations

from pymongo.errors import ConnectionFailure, PyMongoError

from floe_cdc.core.config import MongoSource
from floe_cdc.core.errors import FloeError, Transient
from floe_cdc.core.mongo_client import open_client, unreachable


class SourceCountError(FloeError, Transient):
    """The source could not be counted (unreachable, or not allowed)."""


def count_documents(source: MongoSource, collections: list[str]) -> dict[str, int]:
    """Exact document counts (``count_documents({})``, not the collection statistics' estimate,
    which can be off after an unclean shutdown) of *collections* in the source's database.

    """
    client = open_client(source, "reconcile")
    counts: dict[str, int] = {}
    try:
        database = client[source.database]
        for name in collections:
            try:
                counts[name] = database[name].count_documents({})
            except ConnectionFailure as exc:
                raise SourceCountError(
                    f"cannot reach MongoDB source {source.name} to count its documents: {unreachable(exc)}. "
                    "Check that the replica set is up and reachable from here"
                ) from None
            except PyMongoError as exc:
                # pymongo's messages name hosts and the error, never the credentials.
                raise SourceCountError(
                    f"cannot count the documents of {source.database}.{name} in MongoDB source "
                    f"{source.name}: {exc}. Check that the replica set is reachable and that the user may "
                    "read the collection"
                ) from None
    finally:
        client.close()
    return counts

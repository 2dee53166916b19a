"""Count a MongoDB collection's documents with pymongo, for reconciliation.

Soda Core has no MongoDB data source, so the count is taken here and handed to the Soda scan as
a variable; the check itself (``row_count = ${count}`` on the Iceberg table) stays in SodaCL.
"""

from __future__ import annotations

from pymongo import MongoClient
from pymongo.errors import ConnectionFailure, PyMongoError
from pymongo.uri_parser import parse_uri

from floe.config import MongoSource
from floe.errors import FloeError, Transient


class SourceCountError(FloeError, Transient):
    """The source could not be counted (unreachable, or not allowed)."""


def count_documents(source: MongoSource, collections: list[str]) -> dict[str, int]:
    """Exact document counts (``count_documents({})``, not the collection statistics' estimate,
    which can be off after an unclean shutdown) of *collections* in the source's database.

    An unreachable server fails after 10 s, or the URI's own ``serverSelectionTimeoutMS``.
    """
    uri = source.connection_string.get_secret_value()
    given = {name.lower() for name in parse_uri(uri)["options"]}
    options = {} if "serverselectiontimeoutms" in given else {"serverSelectionTimeoutMS": 10_000}
    client: MongoClient = MongoClient(
        uri, appname=f"floe-reconcile-{source.name}", uuidRepresentation="standard", **options
    )
    counts: dict[str, int] = {}
    try:
        database = client[source.database]
        for name in collections:
            try:
                counts[name] = database[name].count_documents({})
            except ConnectionFailure as exc:
                # The first line names each host and why it failed; the topology dump adds nothing.
                reason = str(exc).split(", Topology Description")[0]
                raise SourceCountError(
                    f"cannot reach MongoDB source {source.name} to count its documents: {reason}. Check "
                    "that the replica set is up and reachable from here"
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

"""pymongo clients for MongoDB sources (reconciliation counts, stack checks)."""

from __future__ import annotations

from pymongo import MongoClient
from pymongo.errors import ConnectionFailure
from pymongo.uri_parser import parse_uri

from floe_cdc.core.config import MongoSource

DEFAULT_TIMEOUT_MS = 10_000


def open_client(source: MongoSource, purpose: str) -> MongoClient:
    """A client for *source*; an unreachable server fails after 10 s, or after the URI's own
    ``serverSelectionTimeoutMS``. *purpose* names the client in the server's logs."""
    uri = source.connection_string.get_secret_value()
    given = {name.lower() for name in parse_uri(uri)["options"]}
    options = {} if "serverselectiontimeoutms" in given else {"serverSelectionTimeoutMS": DEFAULT_TIMEOUT_MS}
    return MongoClient(uri, appname=f"floe-{purpose}-{source.name}", uuidRepresentation="standard", **options)


def unreachable(exc: ConnectionFailure) -> str:
    """pymongo's reason, without the topology dump: each host and why it failed, never credentials."""
    return str(exc).split(", Topology Description")[0]

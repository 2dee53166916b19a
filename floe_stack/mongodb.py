"""MongoDB in the local stack: an existing replica set, named by a source's connection string.

No MongoDB server ships with the stack (none is packaged for these machines' registries), so a
user with MongoDB points Floe at their own replica set; ``floe stack up --config`` checks that each
MongoDB source is reachable and can serve change streams before anything is replicated.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.errors import ConnectionFailure, PyMongoError

from floe.config import MongoSource
from floe.errors import StackError
from floe.mongo_client import open_client, unreachable


@dataclass(frozen=True)
class ReplicaSetStatus:
    source: str
    healthy: bool
    detail: str


def check_replica_set(source: MongoSource) -> ReplicaSetStatus:
    """Whether *source* is a replica set (or a sharded cluster) Debezium can open change streams on.

    A standalone server has no oplog, so change streams, and Debezium, cannot run on it.
    """
    client = open_client(source, "stack")
    try:
        hello = client.admin.command("hello")
        version = client.server_info().get("version", "?")
    except ConnectionFailure as exc:
        return ReplicaSetStatus(source.name, False, f"unreachable: {unreachable(exc)}")
    except PyMongoError as exc:
        return ReplicaSetStatus(source.name, False, f"refused: {exc}")
    finally:
        client.close()
    if hello.get("setName"):
        return ReplicaSetStatus(
            source.name,
            True,
            f"replica set {hello['setName']}, primary {hello.get('primary')}, MongoDB {version}",
        )
    if hello.get("msg") == "isdbgrid":
        return ReplicaSetStatus(source.name, True, f"sharded cluster (mongos), MongoDB {version}")
    return ReplicaSetStatus(
        source.name,
        False,
        f"a standalone MongoDB {version}: change streams need a replica set; start mongod with --replSet "
        "and run rs.initiate() (a one-member replica set is enough locally)",
    )


def require_replica_sets(sources: list[MongoSource]) -> list[ReplicaSetStatus]:
    """Check every MongoDB source; raise naming each one that cannot be captured."""
    statuses = [check_replica_set(source) for source in sources]
    bad = [s for s in statuses if not s.healthy]
    if bad:
        raise StackError(
            "; ".join(f"MongoDB source {s.source} is not usable: {s.detail}" for s in bad)
            + ". Fix its connection_string in the pipeline configuration"
        )
    return statuses

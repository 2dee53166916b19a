"""MongoDB in the local stack: a MongoDB wire-protocol server of its own, or the user's replica set.

No MongoDB server is packaged for these machines' registries. With ``FLOE_STACK_MONGODB=true`` the
stack runs SecantusDB, a MongoDB wire-protocol server on WiredTiger that advertises a one-member
replica set (``secantus``) and serves change streams; Debezium's MongoDB connector snapshots and
streams from it. It is not MongoDB: a user with MongoDB points Floe at their own replica set, and
``floe stack up --config`` checks that each MongoDB source is reachable and can serve change
streams before anything is replicated.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import ConnectionFailure, PyMongoError

from floe_cdc.core.config import MongoSource
from floe_cdc.core.errors import StackError
from floe_cdc.core.mongo_client import open_client, unreachable
from floe_cdc.stack.processes import ManagedProcess
from floe_cdc.stack.settings import StackSettings

REPLICA_SET = "secantus"


class LocalMongo:
    """SecantusDB on the stack's host and ``mongo_port``, its data under the state directory."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.process = ManagedProcess("mongodb", settings.state_dir)

    @property
    def uri(self) -> str:
        return f"mongodb://{self.settings.host}:{self.settings.mongo_port}/?replicaSet={REPLICA_SET}"

    def start(self) -> None:
        data = self.settings.state_dir / "mongodb"
        data.mkdir(parents=True, exist_ok=True)
        # An empty configuration file of its own: otherwise it would look for one in ~ and /etc.
        config = self.settings.state_dir / "secantusd.toml"
        config.touch()
        argv = [
            str(Path(sys.executable).parent / "secantusd-py"),
            f"--config={config}",
            f"--host={self.settings.host}",
            f"--port={self.settings.mongo_port}",
            f"--storage-path={data}",
            "--cache-size=128M",
            # An oplog entry every 10 s, as mongod writes, keeps an idle stream's resume token fresh.
            "--noop-heartbeat-seconds=10",
            "--log-level=WARNING",
        ]
        self.process.start(argv, env=dict(os.environ), cwd=self.settings.state_dir)
        self.process.wait_healthy(self.healthy, self.settings.health_timeout_seconds)

    def healthy(self) -> bool:
        with MongoClient(self.uri, serverSelectionTimeoutMS=1000) as client:
            return client.admin.command("hello").get("setName") == REPLICA_SET

    def stop(self) -> bool:
        return self.process.stop(grace_seconds=10)


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

"""``floe stack up | down | status``: the whole local stack in dependency order."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from floe_cdc.stack.broker import LocalBroker
from floe_cdc.stack.connect_worker import LocalConnectWorker
from floe_cdc.stack.mongodb import LocalMongo
from floe_cdc.stack.object_store import LocalObjectStore
from floe_cdc.stack.postgres import LocalPostgres
from floe_cdc.stack.prefect_server import PREFECT_DATABASE, LocalPrefect
from floe_cdc.stack.processes import ManagedProcess
from floe_cdc.stack.settings import StackSettings

log = logging.getLogger("floe.stack")


def _send_pending_prefect_logs() -> None:
    """Flow runs of this process may still hold logs for the server about to stop; send them now,
    or Prefect retries them against the stopped server for a minute at interpreter exit."""
    if "prefect.logging.handlers" in sys.modules:
        sys.modules["prefect.logging.handlers"].APILogHandler().flush()


@dataclass
class ComponentStatus:
    name: str
    pid: int | None
    healthy: bool
    address: str
    log_file: Path


class LocalStack:
    def __init__(self, settings: StackSettings, project_dir: Path) -> None:
        self.settings = settings
        self.postgres = LocalPostgres(settings)
        self.broker = LocalBroker(settings)
        self.connect = LocalConnectWorker(settings)
        self.prefect = LocalPrefect(settings, project_dir)
        self.object_store = LocalObjectStore(settings)
        self.mongodb = LocalMongo(settings)

    def up(self) -> list[str]:
        """Start every component that is not running, waiting for each to be healthy before the
        next. Returns the names of those started while others ran: restarted after a crash."""
        running = {process.name for process, _, _ in self._components() if process.pid() is not None}
        if self.broker.process.pid() is None and self.connect.process.pid() is not None:
            # The broker keeps its topics in memory: a new one has none of Kafka Connect's
            # (configurations, offsets, status), which a running worker never makes again.
            log.info("stopping Kafka Connect: its topics were lost with the broker")
            self.connect.stop()
            running.discard(self.connect.process.name)
        self.settings.record()
        log.info("starting PostgreSQL on port %s", self.settings.pg_port)
        self.postgres.start()
        self.postgres.ensure_database(PREFECT_DATABASE)
        s = self.settings
        log.info("starting S3 and the Iceberg REST catalog on ports %s and %s", s.s3_port, s.iceberg_port)
        self.object_store.start()
        if s.mongodb:
            log.info("starting SecantusDB (MongoDB wire protocol) on port %s", s.mongo_port)
            self.mongodb.start()
        log.info("starting the Kafka broker on port %s", self.settings.kafka_port)
        self.broker.start()
        log.info("starting Kafka Connect on port %s", self.settings.connect_port)
        self.connect.start()
        log.info("starting the Prefect server on port %s", self.settings.prefect_port)
        self.prefect.start()
        if not running:
            return []
        return [process.name for process, _, _ in self._components() if process.name not in running]

    def down(self) -> list[str]:
        """Stop everything in reverse order; drop the replication slots; return the dropped slots."""
        began = time.monotonic()
        _send_pending_prefect_logs()
        self.prefect.stop()
        log.info("stopped Prefect (%.1fs)", time.monotonic() - began)
        self.connect.stop()
        log.info("stopped Kafka Connect (%.1fs)", time.monotonic() - began)
        dropped: list[str] = []
        if self.postgres.process.pid() is not None:
            try:
                dropped = self.postgres.drop_replication_slots()
            except Exception as exc:
                log.warning("could not drop replication slots: %s", exc)
        self.broker.stop()
        self.mongodb.stop()
        self.object_store.stop()
        self.postgres.stop()
        log.info("stopped the broker, the object store and PostgreSQL (%.1fs)", time.monotonic() - began)
        return dropped

    def _components(self) -> list[tuple[ManagedProcess, object, str]]:
        s = self.settings
        components = [
            (self.postgres.process, self.postgres.healthy, f"{s.host}:{s.pg_port}"),
            (self.object_store.process, self.object_store.healthy, s.catalog_properties()["uri"]),
            (self.broker.process, self.broker.healthy, s.kafka_bootstrap),
            (self.connect.process, self.connect.healthy, s.connect_url),
            (self.prefect.server, self.prefect.healthy, s.prefect_ui_url),
        ]
        if s.mongodb:
            components.append((self.mongodb.process, self.mongodb.healthy, self.mongodb.uri))
        components += [(worker, lambda: True, f"work pool {s.work_pool}") for worker in self.prefect.workers]
        return components

    def status(self) -> list[ComponentStatus]:
        result = []
        for process, check, address in self._components():
            pid = process.pid()
            healthy = False
            if pid is not None:
                try:
                    healthy = bool(check())  # type: ignore[operator]
                except Exception:
                    healthy = False
            result.append(ComponentStatus(process.name, pid, healthy, address, process.log_file))
        return result

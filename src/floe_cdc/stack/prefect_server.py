"""The Prefect server of the local stack (its database on the stack's PostgreSQL) and a process
worker that runs the deployments from ``prefect.yaml``.

PostgreSQL rather than SQLite: on SQLite, concurrency-slot acquisition stalls on "database is
locked" for seconds; on PostgreSQL it takes milliseconds.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import httpx
from prefect.client.orchestration import SyncPrefectClient

from floe_cdc.core.errors import StackError
from floe_cdc.flows.deployments import ensure_work_pool
from floe_cdc.stack.processes import ManagedProcess
from floe_cdc.stack.settings import StackSettings

PREFECT_DATABASE = "prefect"


def prefect_cli() -> str:
    """The ``prefect`` command of this Python environment (the stack's server and workers)."""
    path = Path(sys.executable).parent / "prefect"
    if not path.exists():
        raise StackError(f"prefect CLI not found next to {sys.executable}; run 'make install'")
    return str(path)


def worker_name(index: int) -> str:
    return f"prefect-worker-{index}"


class LocalPrefect:
    def __init__(self, settings: StackSettings, project_dir: Path) -> None:
        self.settings = settings
        self.project_dir = project_dir
        self.server = ManagedProcess("prefect-server", settings.state_dir)
        self.workers = [
            ManagedProcess(worker_name(index), settings.state_dir) for index in range(1, settings.workers + 1)
        ]

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **self.settings.prefect_client_env()}
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.settings.pg_url(
            PREFECT_DATABASE, "postgresql+asyncpg"
        )
        env["PREFECT_UI_API_URL"] = self.settings.prefect_api_url
        return env

    def start(self) -> None:
        argv = [
            prefect_cli(),
            "server",
            "start",
            "--host",
            self.settings.host,
            "--port",
            str(self.settings.prefect_port),
        ]
        self.server.start(argv, env=self._env(), cwd=self.project_dir)
        self.server.wait_healthy(self.healthy, self.settings.health_timeout_seconds)
        self._ensure_work_pool()
        worker_env = {k: v for k, v in self._env().items() if k != "PREFECT_API_DATABASE_CONNECTION_URL"}
        for worker in self.workers:
            argv = [prefect_cli(), "worker", "start", "--pool", self.settings.work_pool, "--type", "process"]
            argv += ["--name", worker.name, "--limit", str(self.settings.worker_limit)]
            worker.start(argv, env=worker_env, cwd=self.project_dir)

    def _ensure_work_pool(self) -> None:
        with SyncPrefectClient(self.settings.prefect_api_url) as client:
            ensure_work_pool(client, self.settings.work_pool)

    def healthy(self) -> bool:
        return httpx.get(f"{self.settings.prefect_api_url}/health", timeout=3).status_code == 200

    def stop(self) -> None:
        for worker in self.workers:
            # A worker ends at SIGINT (Ctrl-C); SIGTERM leaves it running until the grace ends.
            worker.stop(grace_seconds=10, sig=signal.SIGINT)
        self.server.stop(grace_seconds=15)

"""A dedicated PostgreSQL 15 cluster with ``wal_level=logical``, never the system's default one.

PostgreSQL refuses to run as root, so when Floe runs as root the cluster's files belong to the
``postgres`` system user and the server runs as that user. That user must reach the cluster's
folder: when the state directory lies where it cannot (a clone in root's home, mode 700), the
cluster lives in ``/var/tmp/floe-pg-<hash of the state directory>`` instead, and
``<state>/pg`` links to it.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
from collections.abc import Iterable
from pathlib import Path

import psycopg2
from psycopg2 import sql

from floe_cdc.core.errors import StackError
from floe_cdc.stack.processes import ManagedProcess
from floe_cdc.stack.settings import StackSettings

_RUN_AS = "postgres"


def reachable(path: Path, user: str) -> bool:
    """Whether *user* may traverse every existing folder down to *path* (by the mode bits: root
    passes every check, so ``os.access`` cannot tell)."""
    entry = pwd.getpwnam(user)
    groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    for folder in [*reversed(path.parents), path]:
        if not folder.exists():
            break  # created later by root, with the usual o+x
        info = folder.stat()
        if info.st_uid == entry.pw_uid:
            bit = stat.S_IXUSR
        elif info.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


def cluster_root(state_dir: Path, user: str | None) -> Path:
    """Where the cluster's files go: ``<state>/pg``, unless *user* (who runs the server) cannot
    reach it; then a folder of its own under /var/tmp, one per state directory."""
    wanted = state_dir / "pg"
    if user is None or wanted.is_symlink() or reachable(wanted, user):
        return wanted.resolve() if wanted.is_symlink() else wanted
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"floe-pg-{digest}"


class LocalPostgres:
    """Init, start, stop and administer the stack's PostgreSQL cluster."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.root = cluster_root(settings.state_dir, self._user)
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.process = ManagedProcess("postgres", settings.state_dir)

    @property
    def _user(self) -> str | None:
        return _RUN_AS if os.geteuid() == 0 else None

    def _binary(self, name: str) -> str:
        path = self.settings.pg_bin / name
        if not path.exists():
            raise StackError(
                f"{path} not found: the local stack needs PostgreSQL 15 server binaries "
                "(Debian package postgresql-15) or FLOE_STACK_PG_BIN pointing at them"
            )
        return str(path)

    def _chown(self, paths: Iterable[Path]) -> None:
        if self._user is None:
            return
        entry = pwd.getpwnam(self._user)
        for path in paths:
            for item in [path, *path.rglob("*")]:
                os.chown(item, entry.pw_uid, entry.pw_gid)

    def init(self) -> None:
        """Create the cluster once; later calls keep the existing data."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        link = self.settings.state_dir / "pg"
        if self.root != link and not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(self.root, target_is_directory=True)
        self.socket_dir.mkdir(exist_ok=True)
        pwfile = self.root / "initdb.pw"
        pwfile.write_text(self.settings.pg_password.get_secret_value() + "\n")
        pwfile.chmod(0o600)
        self._chown([self.root])
        argv = [
            self._binary("initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.settings.pg_user,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ]
        result = subprocess.run(
            argv, capture_output=True, text=True, user=self._user, cwd=self.root, check=False
        )
        pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise StackError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")

    def start(self) -> None:
        self.init()
        self.process.log_file.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            self._binary("postgres"),
            "-D",
            str(self.data_dir),
            "-c",
            f"port={self.settings.pg_port}",
            "-c",
            f"listen_addresses={self.settings.host}",
            "-c",
            f"unix_socket_directories={self.socket_dir}",
            "-c",
            "wal_level=logical",
            "-c",
            "max_replication_slots=20",
            "-c",
            "max_wal_senders=20",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
        ]
        self.process.start(argv, cwd=self.root, user=self._user)
        self.process.wait_healthy(self.healthy, self.settings.health_timeout_seconds)

    def connect(self, database: str = "postgres"):
        return psycopg2.connect(
            host=self.settings.host,
            port=self.settings.pg_port,
            user=self.settings.pg_user,
            password=self.settings.pg_password.get_secret_value(),
            dbname=database,
            connect_timeout=3,
        )

    def healthy(self) -> bool:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW wal_level")
            return cur.fetchone()[0] == "logical"

    def ensure_database(self, name: str) -> None:
        conn = self.connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            conn.close()

    def drop_replication_slots(self) -> list[str]:
        """Drop every slot of this dedicated cluster (all were created by Floe's connectors)."""
        conn = self.connect()
        conn.autocommit = True
        dropped = []
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                    "WHERE active_pid IS NOT NULL"
                )
                cur.execute("SELECT slot_name FROM pg_replication_slots")
                for (slot,) in cur.fetchall():
                    cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                    dropped.append(slot)
        finally:
            conn.close()
        return dropped

    def stop(self) -> bool:
        # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to disconnect.
        return self.process.stop(grace_seconds=30, sig=signal.SIGINT)

"""Start, watch and stop the stack's processes by pid file, each in its own process group.

A pid file records the pid and the process start time, so that a stale file never makes us
signal an unrelated process that reused the pid. Processes are inspected with psutil, and
waits are tenacity retries.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from floe_cdc.core.errors import StackError


def _start_time(pid: int) -> str | None:
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
        return None


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


@dataclass(frozen=True)
class ManagedProcess:
    """One long-running process of the stack: its name, pid file and log file."""

    name: str
    state_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The recorded pid if that process is still the one we started, else None."""
        try:
            pid_text, started = self.pid_file.read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        current = _start_time(pid)
        # psutil derives the start time from the boot time, which the kernel may report a second
        # apart between calls: a pid reused by another process would start far later than that.
        if current is None or abs(float(current) - float(started)) > 2.0 or not _alive(pid):
            return None
        return pid

    def start(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> int:
        """Start *argv* in a new session with output to the log file; return its pid."""
        existing = self.pid()
        if existing:
            return existing
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                user=user,
                group=user,
                extra_groups=[] if user else None,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
        return proc.pid

    def stop(self, grace_seconds: float = 15.0, sig: signal.Signals = signal.SIGTERM) -> bool:
        """Send *sig* to the process group, then SIGKILL what is left after the grace period."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal_group(pid, sig)
        if not _group_gone(pid, grace_seconds):
            _signal_group(pid, signal.SIGKILL)
            _group_gone(pid, 5.0)
        self.pid_file.unlink(missing_ok=True)
        return True

    def wait_healthy(self, check: Callable[[], bool], timeout: float) -> None:
        """Poll *check* until it returns True; fail naming this component and its log."""

        def healthy() -> bool:
            if self.pid() is None:
                raise StackError(
                    f"{self.name} exited during start-up; see {self.log_file}:\n{log_tail(self.log_file)}"
                )
            try:
                return bool(check())
            except Exception:  # not answering yet: any error of the check means "not yet"
                return False

        # Retried while not healthy; an exit during start-up raises at once.
        retrying = Retrying(
            stop=stop_after_delay(timeout),
            wait=wait_fixed(0.5),
            retry=retry_if_result(lambda ok: not ok),
            reraise=True,
        )
        try:
            retrying(healthy)
        except RetryError:
            raise StackError(
                f"{self.name} was not healthy after {timeout:.0f}s; "
                f"see {self.log_file}:\n{log_tail(self.log_file)}"
            ) from None


def _group_members(pgid: int) -> list[psutil.Process]:
    """The living processes of process group *pgid*."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (psutil.Error, ProcessLookupError):
            continue
    return members


def _group_gone(pgid: int, timeout: float) -> bool:
    """Wait up to *timeout* for every process of the group to exit; whether they all did."""
    _, alive = psutil.wait_procs(_group_members(pgid), timeout=timeout)
    return not alive


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)

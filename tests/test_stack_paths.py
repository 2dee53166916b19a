"""The local stack's PostgreSQL cluster goes where the ``postgres`` user can reach it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from floe_cdc.stack.postgres import cluster_root, reachable


@pytest.fixture
def private():
    """A folder like root's home: mode 700, owned by someone other than ``postgres`` (made in
    /tmp itself: pytest's own temporary folders are mode 700 already)."""
    with tempfile.TemporaryDirectory(prefix="floe-home-") as folder:
        home = Path(folder)
        (home / "floe").mkdir()
        home.chmod(0o700)
        yield home


def test_a_mode_700_home_is_not_reachable_and_the_cluster_moves(private):
    state = private / "floe" / ".floe" / "stack"
    assert not reachable(state / "pg", "postgres")
    root = cluster_root(state, "postgres")
    assert root.parent.as_posix() == "/var/tmp" and root.name.startswith("floe-pg-")
    assert cluster_root(state, "postgres") == root  # one place per state directory


def test_a_reachable_state_directory_keeps_the_cluster(private):
    private.chmod(0o755)
    state = private / "floe" / ".floe" / "stack"
    assert reachable(state / "pg", "postgres")
    assert cluster_root(state, "postgres") == state / "pg"
    assert cluster_root(state, None) == state / "pg"

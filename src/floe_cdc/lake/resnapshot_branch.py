"""The branch a direct re-snapshot fills before its table switches to it.

A re-snapshot read straight from the source fills the branch ``floe-resnapshot``. The branch
starts at the table's current snapshot (its *base*) with a commit that removes every row, so it
holds only what the reading adds, chunk by chunk, and readers of the table see none of it. Once
the reading is complete, the table's main branch moves to the branch's head, in one commit that
asserts main is still at the base, and the branch goes with it. While the branch exists,
replicate leaves the table alone: its changes wait in Kafka, from the base's checkpoint on.
"""

from __future__ import annotations

from pyiceberg.exceptions import CommitFailedException
from pyiceberg.manifest import ManifestContent
from pyiceberg.table import Table
from pyiceberg.table.update.snapshot import ManageSnapshots

from floe_cdc.core.errors import FloeError, Transient
from floe_cdc.lake.checkpoint import Checkpoint
from floe_cdc.lake.pyiceberg_adapter import RowDelta, manifest_entries, snapshot_manifests, transaction

BRANCH = "floe-resnapshot"
BASE_KEY = "floe.resnapshot-base"  # on the branch's commits: the snapshot of main it began at


class MainMoved(FloeError, Transient):
    """Main was committed to after the re-snapshot branch began; the branch is of no use."""


def branch_base(table: Table) -> int | None:
    """The snapshot of main the table's re-snapshot branch began at; None without a branch."""
    head = table.snapshot_by_name(BRANCH)
    raw = head.summary.get(BASE_KEY) if head is not None and head.summary is not None else None
    return int(raw) if raw else None


def begin_branch(table: Table, checkpoint: Checkpoint) -> int:
    """Create the branch at main's current snapshot, emptied, in one commit that carries
    *checkpoint* (main's); returns that snapshot's id, the base."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        raise ValueError("a table with no snapshot has nothing to re-snapshot")
    base = snapshot.snapshot_id
    with transaction(table) as tx:
        with ManageSnapshots(tx) as refs:
            refs.create_branch(base, BRANCH)
        emptied = RowDelta(tx, {**checkpoint.properties(), BASE_KEY: str(base)}, BRANCH)
        version = table.metadata.format_version
        for manifest in snapshot_manifests(table.metadata, table.io, snapshot):
            for entry in manifest_entries(table.io, manifest, version):
                if manifest.content == ManifestContent.DATA:
                    emptied.delete_data_file(entry.data_file)
                else:
                    emptied.remove_delete_file(entry.data_file)
        emptied.commit()
    return base


def drop_branch(table: Table) -> None:
    """Remove the branch (a reading that can no longer be switched to)."""
    with table.transaction() as tx, ManageSnapshots(tx) as refs:
        refs.remove_branch(BRANCH)


def switch_to_branch(table: Table, base: int) -> None:
    """Move main to the branch's head and remove the branch, in one commit that fails (MainMoved)
    if main is no longer at *base*."""
    table.refresh()
    head = table.snapshot_by_name(BRANCH)
    current = table.current_snapshot()
    if head is None or current is None or current.snapshot_id != base:
        raise MainMoved(f"main moved from {base} while the re-snapshot was read")
    try:
        with table.transaction() as tx, ManageSnapshots(tx) as refs:
            refs.set_current_snapshot(ref_name=BRANCH)
            refs.remove_branch(BRANCH)
    except CommitFailedException as exc:
        raise MainMoved(f"main moved from {base} while the re-snapshot was switched to ({exc})") from exc

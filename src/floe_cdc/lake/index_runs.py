"""The key index's storage: packed entries in sorted runs, split into shards by their key code.

An entry is a 64-bit key code, a 32-bit file ordinal and a 32-bit row position: 16 bytes. Each
of the 64 shards (by a multiplicative hash of the code, so that consecutive integer keys spread
evenly) holds a few runs sorted by code, merged like a log-structured merge tree: a new run is
merged into the one before it once it reaches a quarter of its size, by a linear merge, so that
no merge copies more than one shard. A removed entry is marked (file ordinal ``GONE``) and
dropped when its run is merged or half dead. Long runs can be memory-mapped from files on disk
(``mapped``) for an index bigger than the memory it may take.
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHARD_BITS = 6  # 64 shards: a shard of a 1B-row table is 16M entries, 256 MB to merge
SHARDS = 1 << SHARD_BITS
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: spreads sequential integer keys
_GROWTH = 4  # a run is merged into the one before it once it reaches a quarter of its size
SPILL_ENTRIES = 1 << 18  # runs at least this long are the ones memory-mapped from disk
GONE = -1  # the file ordinal of a removed entry
# An entry's handle, valid until the next change to the index: shard, run and offset.
RUN_SHIFT, SHARD_SHIFT = 40, 56


@dataclass
class Run:
    """Entries sorted by code. ``file`` is written in place when an entry is removed, so a
    snapshot of the index (:meth:`KeyIndex.state`) copies it; ``codes`` and ``pos`` never are."""

    codes: np.ndarray  # int64, sorted
    file: np.ndarray  # int32 file ordinal, GONE once removed
    pos: np.ndarray  # uint32 row position in the file
    removed: int = 0

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes + self.file.nbytes + self.pos.nbytes

    def live(self) -> Run:
        if not self.removed:
            return self
        kept = self.file != GONE
        return Run(self.codes[kept], self.file[kept], self.pos[kept])


def merged(older: Run, newer: Run) -> Run:
    """Two runs as one, removed entries left out: a linear merge by binary search, not a sort."""
    older, newer = older.live(), newer.live()
    at = np.searchsorted(older.codes, newer.codes, "right") + np.arange(len(newer))
    theirs = np.zeros(len(older) + len(newer), bool)
    theirs[at] = True
    parts = []
    for name in ("codes", "file", "pos"):
        out = np.empty(len(theirs), getattr(older, name).dtype)
        out[at] = getattr(newer, name)
        out[~theirs] = getattr(older, name)
        parts.append(out)
    return Run(*parts)


def sorted_run(codes: np.ndarray, file: np.ndarray, pos: np.ndarray) -> Run:
    order = np.argsort(codes, kind="stable")
    return Run(codes[order], file[order], pos[order])


def shards_of(codes: np.ndarray) -> np.ndarray:
    """Each code's shard: the top bits of a multiplicative hash, so that runs of consecutive
    integer keys spread over every shard."""
    return ((codes.view(np.uint64) * _GOLDEN) >> np.uint64(64 - SHARD_BITS)).astype(np.intp)


def by_shard(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An order grouping *codes* by shard, and where each shard's group starts and ends."""
    shards = shards_of(codes)
    order = np.argsort(shards, kind="stable")
    return order, np.searchsorted(shards[order], np.arange(SHARDS + 1))


def entry_handles(shard: int, run: int, offsets: np.ndarray) -> np.ndarray:
    return (np.int64(shard) << SHARD_SHIFT) | (np.int64(run) << RUN_SHIFT) | offsets.astype(np.int64)


def by_run(handles: np.ndarray) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """*handles* grouped by their run: its shard and number, which of *handles* are its, and
    their offsets in it."""
    places = handles >> RUN_SHIFT
    order = np.argsort(places, kind="stable")  # one pass, however many runs
    bounds = np.append(np.nonzero(np.diff(places[order], prepend=-1))[0], len(order))
    groups = []
    for start, end in itertools.pairwise(bounds):
        mine = order[start:end]
        place = int(places[mine[0]])
        shard, run = place >> (SHARD_SHIFT - RUN_SHIFT), place & ((1 << (SHARD_SHIFT - RUN_SHIFT)) - 1)
        groups.append((shard, run, mine, handles[mine] & ((1 << RUN_SHIFT) - 1)))
    return groups


def is_mapped(array: np.ndarray) -> bool:
    return isinstance(array, np.memmap) or isinstance(array.base, np.memmap)


def mapped(directory: Path, array: np.ndarray) -> np.ndarray:
    """*array* written to a file without a name in *directory*, memory-mapped read-only."""
    with tempfile.TemporaryFile(dir=directory) as handle:
        array.tofile(handle)
        handle.flush()
        return np.memmap(handle, array.dtype, "r", shape=array.shape)


def tidy(runs: list[Run]) -> None:
    """Merge the newest run into the one before it while that is under ``_GROWTH`` times its
    size, and compact runs that are mostly removed entries: a shard holds a few runs of
    geometrically growing size, and removed entries never outnumber its live ones for long."""
    for number, run in enumerate(runs):
        if 2 * run.removed > len(run):
            runs[number] = run.live()
    while len(runs) > 1 and len(runs[-2]) < _GROWTH * len(runs[-1]):
        newer = runs.pop()
        runs[-1] = merged(runs[-1], newer)
    runs[:] = [run for run in runs if len(run)]


def pair_codes(file_codes: np.ndarray | np.int64, positions: np.ndarray) -> np.ndarray:
    """One 64-bit code per (file ordinal, row position)."""
    return (np.asarray(file_codes, np.int64) << 32) | positions.astype(np.int64)

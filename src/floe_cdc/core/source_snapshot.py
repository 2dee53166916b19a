"""Which source transactions a count saw: a PostgreSQL snapshot, and the WAL position after it.

An exact reconciliation counts the source rows in one snapshot, then compares them with an
Iceberg table that has applied every transaction that snapshot saw, plus perhaps some it did not.
The change events of the latter, told apart by their transaction id, account for the difference.
"""

from __future__ import annotations

from dataclasses import dataclass

_XID_SPACE = 1 << 32


def parse_lsn(text: str) -> int:
    """A ``pg_lsn`` (``16/B374D848``) as a number."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


@dataclass(frozen=True)
class SourceSnapshot:
    """A PostgreSQL snapshot (``pg_current_snapshot()``: ``xmin:xmax:xip``) and ``lsn``, the WAL
    position read in the statement that took the snapshot: every transaction the snapshot saw
    committed before it."""

    xmin: int
    xmax: int
    in_progress: frozenset[int]
    lsn: int

    @classmethod
    def parse(cls, snapshot: str, lsn: str) -> SourceSnapshot:
        xmin, xmax, xip = snapshot.split(":")
        running = frozenset(int(x) for x in xip.split(",") if x)
        return cls(int(xmin), int(xmax), running, parse_lsn(lsn))

    def _full(self, txid: int) -> int:
        """A 32-bit transaction id (as change events carry it) widened with the snapshot's epoch."""
        if txid >= _XID_SPACE:
            return txid
        # Of the ids with these low bits, the one nearest the snapshot's (ids wrap at 2**32).
        full = (self.xmax & ~(_XID_SPACE - 1)) | txid
        if full > self.xmax + _XID_SPACE // 2:
            return full - _XID_SPACE
        if full < self.xmax - _XID_SPACE // 2:
            return full + _XID_SPACE
        return full

    def saw(self, txid: int) -> bool:
        """Whether the snapshot saw the transaction's changes (it had committed before)."""
        full = self._full(txid)
        return full < self.xmin or (full < self.xmax and full not in self.in_progress)

    @property
    def position(self) -> str:
        return format_lsn(self.lsn)

"""Which transactions a PostgreSQL snapshot saw, from the 32-bit ids change events carry."""

from __future__ import annotations

from floe_cdc.core.source_snapshot import SourceSnapshot, format_lsn, parse_lsn


def test_a_snapshot_sees_what_committed_before_it_and_not_what_ran_or_came_after():
    snapshot = SourceSnapshot.parse("100:110:103,105", "16/B374D848")
    assert [snapshot.saw(t) for t in (99, 100, 103, 104, 105, 109, 110, 111)] == [
        True,
        True,
        False,
        True,
        False,
        True,
        False,
        False,
    ]
    assert snapshot.lsn == (0x16 << 32) | 0xB374D848 and snapshot.position == "16/B374D848"


def test_ids_from_events_are_widened_with_the_snapshots_epoch_across_a_wraparound():
    epoch = 3 << 32
    snapshot = SourceSnapshot(epoch + 10, epoch + 20, frozenset(), 0)
    assert snapshot.saw(15) and not snapshot.saw(25)
    assert snapshot.saw((1 << 32) - 5)  # just before the wrap: the previous epoch, long committed
    wrapping = SourceSnapshot(epoch - 10, epoch + 5, frozenset(), 0)
    assert wrapping.saw((1 << 32) - 3) and wrapping.saw(2) and not wrapping.saw(7)


def test_lsn_text_round_trips():
    assert format_lsn(parse_lsn("0/2056B98")) == "0/2056B98"

"""The merge engine against a real pyiceberg SQL catalog (SQLite), compared with a model."""

from __future__ import annotations

import itertools
import uuid
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyiceberg.catalog.sql import SqlCatalog

from floe_cdc.core.changes import ChangeBatch, Column, make_position
from floe_cdc.core.errors import SchemaMappingError
from floe_cdc.lake.checkpoint import read_checkpoint
from floe_cdc.lake.key_index import KeyIndex
from floe_cdc.lake.merge import Compaction, ConcurrentWriteError, merge_batch
from floe_cdc.lake.resnapshot_mark import RESNAPSHOT_PROPERTY, ResnapshotMark, mark_resnapshot
from floe_cdc.lake.schema import POSITION_FIELD, create_table
from tests.batches import make_batch

ITEMS = [
    Column("id", pa.int64(), False, "INT8"),
    Column("name", pa.string()),
    Column("price", pa.decimal128(10, 2)),
]


def apply(catalog, batch, table=None, indexes=None, compaction=None):
    table = (
        table or catalog.load_table(("ns", batch.table))
        if catalog.table_exists(("ns", batch.table))
        else None
    )
    if table is None:
        table = create_table(catalog, "ns", batch)
    return table, merge_batch(table, batch, read_checkpoint(table), indexes, compaction)


def rows(table, key="id"):
    found = [
        {k: v for k, v in row.items() if k != POSITION_FIELD} for row in table.scan().to_arrow().to_pylist()
    ]
    return sorted(found, key=lambda r: tuple(r[k] for k in key.split(",")))


def test_inserts_updates_deletes_and_counts(catalog):
    table, first = apply(
        catalog,
        make_batch(
            "items", ["id"], ITEMS, [("r", {"id": i, "name": f"n{i}", "price": Decimal(i)}) for i in range(5)]
        ),
    )
    assert (first.inserted, first.updated, first.deleted) == (5, 0, 0)
    events = [
        ("u", {"id": 1, "name": "one", "price": Decimal("1.50")}),
        ("d", {"id": 2}),
        ("c", {"id": 9, "name": "nine", "price": None}),
        ("d", {"id": 42}),  # a delete of a row Floe never saw changes nothing
    ]
    table, second = apply(catalog, make_batch("items", ["id"], ITEMS, events, offset=5))
    assert (second.inserted, second.updated, second.deleted) == (1, 1, 1)
    assert rows(table) == [
        {"id": 0, "name": "n0", "price": Decimal("0.00")},
        {"id": 1, "name": "one", "price": Decimal("1.50")},
        {"id": 3, "name": "n3", "price": Decimal("3.00")},
        {"id": 4, "name": "n4", "price": Decimal("4.00")},
        {"id": 9, "name": "nine", "price": None},
    ]
    assert read_checkpoint(table).offsets == {"topic.items": {0: 9}}
    assert table.current_snapshot().summary["floe.events"] == "4"


def test_last_change_per_key_wins_within_a_batch(catalog):
    events = [("c", {"id": 1, "name": "v0"})]
    events += [("u", {"id": 1, "name": f"v{i}"}) for i in range(1, 30)]
    events += [("c", {"id": 2, "name": "short-lived"}), ("d", {"id": 2})]
    events += [("d", {"id": 3}), ("c", {"id": 3, "name": "re-created"})]
    table, result = apply(catalog, make_batch("items", ["id"], ITEMS, events))
    assert [(r["id"], r["name"]) for r in rows(table)] == [(1, "v29"), (3, "re-created")]
    assert result.inserted == 2


def test_composite_key(catalog):
    columns = [
        Column("order_id", pa.int64(), False),
        Column("line_no", pa.int16(), False),
        Column("qty", pa.int32()),
    ]
    key = ["order_id", "line_no"]
    batch = make_batch(
        "lines",
        key,
        columns,
        [("r", {"order_id": o, "line_no": n, "qty": 1}) for o in (1, 2) for n in (1, 2)],
    )
    table, _ = apply(catalog, batch)
    events = [("u", {"order_id": 1, "line_no": 2, "qty": 7}), ("d", {"order_id": 2, "line_no": 1})]
    table, result = apply(catalog, make_batch("lines", key, columns, events, offset=4))
    assert (result.updated, result.deleted) == (1, 1)
    assert [(r["order_id"], r["line_no"], r["qty"]) for r in rows(table, "order_id,line_no")] == [
        (1, 1, 1),
        (1, 2, 7),
        (2, 2, 1),
    ]


def test_truncate_empties_the_table_in_order(catalog):
    table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, [("r", {"id": i}) for i in range(3)]))
    events = [("c", {"id": 10}), ("t", {}), ("c", {"id": 11}), ("u", {"id": 11, "name": "after"})]
    table, result = apply(catalog, make_batch("items", ["id"], ITEMS, events, offset=3))
    assert result.truncated and result.deleted == 3
    assert [(r["id"], r["name"]) for r in rows(table)] == [(11, "after")]


def test_uuid_keys(catalog):
    columns = [Column("id", pa.uuid(), False, "UUID"), Column("v", pa.int32())]
    ids = [uuid.UUID(int=i) for i in range(4)]
    batch = make_batch("u", ["id"], columns, [("r", {"id": i.bytes, "v": n}) for n, i in enumerate(ids)])
    table, _ = apply(catalog, batch)
    table, result = apply(
        catalog,
        make_batch(
            "u", ["id"], columns, [("d", {"id": ids[0].bytes}), ("u", {"id": ids[1].bytes, "v": 9})], offset=4
        ),
    )
    assert (result.updated, result.deleted) == (1, 1)
    assert sorted((r["id"], r["v"]) for r in rows(table)) == sorted([(ids[1], 9), (ids[2], 2), (ids[3], 3)])


def test_a_change_writes_its_rows_and_a_position_delete_and_rewrites_no_file(catalog):
    table = None
    for start in (0, 100, 200):
        batch = make_batch(
            "items", ["id"], ITEMS, [("r", {"id": i}) for i in range(start, start + 100)], offset=start
        )
        table, _ = apply(catalog, batch)
    table, result = apply(
        catalog, make_batch("items", ["id"], ITEMS, [("u", {"id": 150, "name": "x"})], offset=300)
    )
    assert (result.files_rewritten, result.files_added, result.delete_files_added) == (0, 1, 1)
    assert table.current_snapshot().summary["added-position-deletes"] == "1"
    assert len(rows(table)) == 300 and [r["name"] for r in rows(table) if r["id"] == 150] == ["x"]


@pytest.mark.parametrize(("granularity", "delete_files"), [(None, 1), ("partition", 1), ("file", 3)])
def test_delete_files_are_scoped_as_the_table_property_says(catalog, granularity, delete_files):
    """Iceberg's ``write.delete.granularity``: one delete file per partition and commit (Floe's
    default), or one per data file."""
    table = None
    for start in (0, 100, 200):
        batch = make_batch(
            "items", ["id"], ITEMS, [("r", {"id": i}) for i in range(start, start + 100)], offset=start
        )
        table, _ = apply(catalog, batch)
    if granularity:
        with table.transaction() as tx:
            tx.set_properties({"write.delete.granularity": granularity})
    events = [("u", {"id": 50, "name": "x"}), ("d", {"id": 150}), ("u", {"id": 250, "name": "y"})]
    table, result = apply(catalog, make_batch("items", ["id"], ITEMS, events, offset=300))
    assert result.delete_files_added == delete_files
    paths = [{d.file_path for d in task.delete_files} for task in table.scan().plan_files()]
    assert len(set().union(*paths)) == delete_files
    expected = {i: None for i in range(300) if i != 150} | {50: "x", 250: "y"}
    assert {r["id"]: r["name"] for r in rows(table)} == expected


def test_a_merge_rewrites_worn_files_in_passing_within_its_budget(catalog):
    table, _ = apply(
        catalog, make_batch("items", ["id"], ITEMS, [("r", {"id": i, "name": "a"}) for i in range(100)])
    )
    table, _ = apply(
        catalog,
        make_batch(
            "items", ["id"], ITEMS, [("r", {"id": i, "name": "b"}) for i in range(100, 400)], offset=100
        ),
        table,
    )
    indexes: dict = {}
    small, large = (
        task.file.file_path for task in sorted(table.scan().plan_files(), key=lambda t: t.file.record_count)
    )
    # 60 of the small file's 100 rows change: it passes half deleted. The large one barely moves.
    changes = [("u", {"id": i, "name": "c"}) for i in [*range(60), 100, 101]]
    table, result = apply(
        catalog,
        make_batch("items", ["id"], ITEMS, changes, offset=400),
        table,
        indexes,
        Compaction(delete_ratio=0.5, rows_per_change=1),
    )
    files = {task.file.file_path: task for task in table.scan().plan_files()}
    assert small not in files and large in files and result.files_rewritten == 1
    assert (
        len(files) == 2 and sum(len(t.delete_files) for t in files.values()) == 1
    )  # the large file's two rows
    expected = {i: "c" if i < 60 or i in (100, 101) else ("a" if i < 100 else "b") for i in range(400)}
    assert {r["id"]: r["name"] for r in rows(table)} == expected
    # The rewritten rows are where the warm index says.
    probe = pa.table({"id": pa.array(range(400), pa.int64())})
    warm, rebuilt = (
        indexes["items"].locate(probe),
        KeyIndex.build(table, ["id"], "_floe_position").locate(probe),
    )
    assert sorted(zip(warm.incoming.tolist(), warm.file, warm.pos.tolist(), strict=True)) == sorted(
        zip(rebuilt.incoming.tolist(), rebuilt.file, rebuilt.pos.tolist(), strict=True)
    )
    # A budget too small for the worn file's 40 live rows leaves it for maintenance.
    table2, result2 = apply(
        catalog,
        make_batch("other", ["id"], ITEMS, [("r", {"id": i, "name": "a"}) for i in range(100)]),
    )
    table2, result2 = apply(
        catalog,
        make_batch("other", ["id"], ITEMS, [("u", {"id": i, "name": "c"}) for i in range(60)], offset=100),
        table2,
        {},
        Compaction(delete_ratio=0.5, rows_per_change=0.5),
    )
    assert result2.files_rewritten == 0 and result2.delete_files_added == 1


def test_schema_evolves_in_the_same_commit(catalog):
    table, _ = apply(
        catalog,
        make_batch(
            "items",
            ["id"],
            [Column("id", pa.int32(), False), Column("n", pa.int32())],
            [("r", {"id": 1, "n": 1})],
        ),
    )
    wider = [
        Column("id", pa.int32(), False),
        Column("n", pa.int64()),
        Column("added", pa.string(), source_type="TEXT"),
    ]
    table, result = apply(
        catalog, make_batch("items", ["id"], wider, [("c", {"id": 2, "n": 2**40, "added": "yes"})], offset=1)
    )
    assert result.schema_changes == ["widened n int -> long", "added column added string"]
    assert len(table.snapshots()) == 2  # schema change and data landed in one snapshot
    assert rows(table) == [{"id": 1, "n": 1, "added": None}, {"id": 2, "n": 2**40, "added": "yes"}]
    assert table.schema().find_field("added").doc == "TEXT"


def test_incompatible_type_change_names_column_types_and_fix(catalog):
    table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, [("r", {"id": 1, "name": "a"})]))
    changed = [ITEMS[0], Column("name", pa.int32(), source_type="INT4"), ITEMS[2]]
    with pytest.raises(
        SchemaMappingError, match=r"column name changed from string to int.*floe resnapshot --table items"
    ):
        apply(catalog, make_batch("items", ["id"], changed, [("u", {"id": 1, "name": 5})], offset=1))
    assert rows(table)[0]["name"] == "a"


def test_stale_checkpoint_is_refused_and_writes_nothing(catalog):
    table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, [("r", {"id": 1})]))
    stale = read_checkpoint(table)
    apply(catalog, make_batch("items", ["id"], ITEMS, [("u", {"id": 1, "name": "winner"})], offset=1))
    table = catalog.load_table(("ns", "items"))
    with pytest.raises(ConcurrentWriteError, match="another writer"):
        merge_batch(
            table, make_batch("items", ["id"], ITEMS, [("u", {"id": 1, "name": "loser"})], offset=1), stale
        )
    assert rows(table)[0]["name"] == "winner"


def test_redelivered_older_changes_never_regress_a_row(catalog):
    table, _ = apply(
        catalog,
        make_batch(
            "items", ["id"], ITEMS, [("c", {"id": 1, "name": "v1"}, 1), ("u", {"id": 1, "name": "v3"}, 3)]
        ),
    )
    # A connector restart re-sends an older change at new offsets, and an older insert of a deleted row.
    apply(
        catalog,
        make_batch("items", ["id"], ITEMS, [("c", {"id": 2, "name": "x"}, 4), ("d", {"id": 2}, 5)], offset=2),
    )
    replay = [("u", {"id": 1, "name": "v2"}, 2), ("c", {"id": 2, "name": "x"}, 4)]
    table, result = apply(catalog, make_batch("items", ["id"], ITEMS, replay, offset=4))
    assert rows(table) == [{"id": 1, "name": "v3", "price": None}]
    assert result.replayed == 2 and (result.inserted, result.updated) == (0, 0)


def _from_kafka_partition_one(batch: ChangeBatch) -> ChangeBatch:
    """*batch* as read from Kafka partition 1, whose watermark says nothing of partition 0's."""
    column = batch.data.schema.get_field_index("__floe_partition")
    values = pa.array([1] * batch.data.num_rows, pa.int32())
    batch.data = batch.data.set_column(column, batch.data.schema.field(column), values)
    return batch


def test_a_change_newer_than_its_row_wins_though_its_file_holds_newer_rows(catalog):
    """The key index bounds a stored row's position by its file's newest: a change between the
    two is compared with the row itself, read from the file."""
    rows_in = [("c", {"id": 1, "name": "old"}, 1), ("c", {"id": 2, "name": "other"}, 9)]
    table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, rows_in))
    batch = make_batch("items", ["id"], ITEMS, [("u", {"id": 1, "name": "new"}, 5)], offset=2)
    table, result = apply(catalog, _from_kafka_partition_one(batch))
    assert [r["name"] for r in rows(table)] == ["new", "other"] and result.replayed == 0


def test_stored_row_newer_than_a_change_wins(catalog):
    table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, [("c", {"id": 1, "name": "new"}, 9)]))
    # Another partition's watermark says nothing about this one: the row's own position decides.
    batch = make_batch("items", ["id"], ITEMS, [("u", {"id": 1, "name": "old"}, 5)], offset=1)
    table, result = apply(catalog, _from_kafka_partition_one(batch))
    assert rows(table)[0]["name"] == "new" and result.replayed == 1


def test_order_follows_source_position_not_arrival(catalog):
    events = [("u", {"id": 1, "name": "later"}, 5), ("c", {"id": 1, "name": "earlier"}, 4)]
    table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, events))
    assert rows(table)[0]["name"] == "later"


def test_unchanged_toasted_values_keep_the_stored_value(catalog):
    body = [Column("id", pa.int64(), False), Column("body", pa.string()), Column("n", pa.int32())]
    table, _ = apply(
        catalog, make_batch("docs", ["id"], body, [("c", {"id": 1, "body": "A" * 5000, "n": 1})])
    )
    events = [
        ("u", {"id": 1, "n": 2}, 2, ["body"]),  # stored value kept
        ("c", {"id": 2, "body": "B", "n": 1}, 3),
        ("u", {"id": 2, "n": 2}, 4, ["body"]),  # value from the same batch kept
    ]
    table, result = apply(catalog, make_batch("docs", ["id"], body, events, offset=1))
    assert rows(table) == [{"id": 1, "body": "A" * 5000, "n": 2}, {"id": 2, "body": "B", "n": 2}]
    assert (result.updated, result.inserted) == (1, 1)


def test_completed_resnapshot_removes_rows_the_source_no_longer_has(catalog):
    table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, [("r", {"id": i}) for i in (1, 2, 3)]))
    # The topic was lost; the connector re-snapshots: row 2 was deleted meanwhile.
    resnapshot = [("r", {"id": 1, "name": "a"}, 10), ("r", {"id": 3, "name": "c"}, 10)]
    table, result = apply(
        catalog, make_batch("items", ["id"], ITEMS, resnapshot, offset=0, snapshot_completed=10)
    )
    assert [(r["id"], r["name"]) for r in rows(table)] == [(1, "a"), (3, "c")]
    assert result.deleted == 1 and result.updated == 2


def test_an_incremental_resnapshot_completes_with_an_empty_batch(catalog):
    """Rows read again or changed since the request sit at or above the floor (just above the
    highest position applied at the request); the completion, with nothing else to apply, removes
    the rest and the mark."""
    table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, [("r", {"id": i}) for i in (1, 2, 3, 4)]))
    mark_resnapshot(table, ResnapshotMark(signal="s", floor=make_position(4) + 1))
    reads = [("u", {"id": 1, "name": "changed"}, 6), ("r", {"id": 3, "name": "read again"}, 8)]
    table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, reads, offset=4))
    assert RESNAPSHOT_PROPERTY in table.refresh().properties
    empty = ChangeBatch.empty("items", "test", "public.items", ["id"])
    empty.snapshot_completed = make_position(4) + 1
    table, result = apply(catalog, empty)
    assert [(r["id"], r["name"]) for r in rows(table)] == [(1, "changed"), (3, "read again")]
    assert result.deleted == 2 and RESNAPSHOT_PROPERTY not in table.refresh().properties
    assert read_checkpoint(table).offsets == {"topic.items": {0: 6}}


def test_a_completion_with_floor_zero_removes_only_the_mark(catalog):
    table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, [("r", {"id": i}) for i in (1, 2)]))
    mark_resnapshot(table, ResnapshotMark(signal="s", floor=make_position(2)))
    empty = ChangeBatch.empty("items", "test", "public.items", ["id"])
    empty.snapshot_completed = 0
    table, result = apply(catalog, empty)
    assert [r["id"] for r in rows(table)] == [1, 2] and result.deleted == 0
    assert RESNAPSHOT_PROPERTY not in table.refresh().properties


def test_new_column_default_applies_to_existing_rows(catalog):
    table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, [("r", {"id": 1}), ("r", {"id": 2})]))
    with_default = [*ITEMS, Column("flag", pa.int32(), True, "INT4", default=7)]
    table, result = apply(
        catalog, make_batch("items", ["id"], with_default, [("c", {"id": 3, "flag": 1})], offset=2)
    )
    assert [(r["id"], r["flag"]) for r in rows(table)] == [(1, 7), (2, 7), (3, 1)]
    assert result.schema_changes == ["added column flag int"]


def test_primary_key_change_moves_the_row(catalog):
    table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, [("r", {"id": 1, "name": "moving"})]))
    events = [("d", {"id": 1}), ("c", {"id": 100, "name": "moving"})]
    table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, events, offset=1))
    assert [(r["id"], r["name"]) for r in rows(table)] == [(100, "moving")]


OPS = st.one_of(
    st.tuples(st.sampled_from(["c", "u", "r"]), st.integers(0, 7), st.text(max_size=3)),
    st.tuples(st.just("d"), st.integers(0, 7), st.none()),
    st.tuples(st.just("t"), st.none(), st.none()),
    st.tuples(st.just("add-column"), st.none(), st.none()),
    st.tuples(st.just("move"), st.integers(0, 7), st.integers(0, 7)),  # primary-key change
)
EXTRA = Column("extra", pa.string(), True, "TEXT", default="dflt")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(OPS, max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=4),
    redeliveries=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 8)), max_size=5),
)
@example(  # a re-sent older insert must not undo the newer update committed in the batch before
    ops=[("c", 0, "a"), ("u", 0, "b"), ("c", 1, "x")], cuts=[2], redeliveries=[(0, 0), (0, 1)]
)
@example(  # a re-sent insert must not bring back a row deleted in an earlier batch
    ops=[("c", 0, "a"), ("d", 0, None), ("c", 1, "x")], cuts=[2], redeliveries=[(0, 0), (0, 1)]
)
@example(  # rows written before ADD COLUMN ... DEFAULT take the default
    ops=[("c", 0, "a"), ("add-column", None, None), ("c", 1, "x")], cuts=[1], redeliveries=[]
)
@example(  # a re-sent truncate must not empty the rows written after it
    ops=[("c", 0, "a"), ("t", None, None), ("c", 1, "b"), ("c", 2, "c")],
    cuts=[3],
    redeliveries=[(0, 0), (1, 1)],
)
def test_random_change_streams_match_a_model(tmp_path_factory, ops, cuts, redeliveries):
    """Random changes and a column added with a default, in random batches; some batches first
    re-deliver a run of earlier events, as a connector does after a restart (a batch may end
    inside that run). The table must always end equal to the model."""
    directory = tmp_path_factory.mktemp("prop")
    catalog = SqlCatalog("p", uri=f"sqlite:///{directory}/c.db", warehouse=(directory / "wh").as_uri())
    catalog.create_namespace("ns")
    model: dict[int, dict] = {}
    events: list[tuple] = []
    added_at: int | None = None  # index of the first event written after ADD COLUMN extra DEFAULT 'dflt'
    for step, (op, key, value) in enumerate(ops, start=1):
        if op == "add-column":
            if added_at is None:
                added_at = len(events)
                for row in model.values():
                    row["extra"] = "dflt"
        elif op == "move":
            if key in model and value not in model:  # UPDATE ... SET id = value: a delete and a create
                moved = {**model.pop(key), "id": value}
                model[value] = moved
                events.append(("d", {"id": key}, 2 * step))
                events.append(("c", dict(moved), 2 * step + 1))
        elif op == "t":
            model.clear()
            events.append(("t", {}, 2 * step))
        elif op == "d":
            model.pop(key, None)
            events.append(("d", {"id": key}, 2 * step))
        else:
            row = {"id": key, "name": value}
            if added_at is not None:
                row["extra"] = f"e{step}"
            model[key] = dict(row)
            events.append((op, row, 2 * step))
    bounds = sorted({0, len(events), *(c for c in cuts if c < len(events))})
    table, delivered = None, 0
    indexes: dict[str, KeyIndex] = {}  # kept warm across batches, as a long-running replicator does
    # Half the streams let merges rewrite worn files in passing, eagerly.
    compaction = Compaction(delete_ratio=0.2, rows_per_change=3) if len(ops) % 2 else None
    for number, (start, end) in enumerate(itertools.pairwise(bounds)):
        first, length = redeliveries[number] if number < len(redeliveries) else (0, 0)
        indices = [*range(min(first, start), min(first + length, start)), *range(start, end)]
        columns = ITEMS
        batch_events = [events[i] for i in indices]
        if added_at is not None and any(i >= added_at for i in indices):
            # As the decoder does: events written before the column existed take its default.
            columns = [*ITEMS, EXTRA]
            batch_events = [
                (e[0], {**e[1], "extra": e[1].get("extra", "dflt")} if e[1] else e[1], *e[2:])
                for e in batch_events
            ]
        batch = make_batch("items", ["id"], columns, batch_events, offset=delivered)
        delivered += batch.size
        table, _ = apply(catalog, batch, table, indexes, compaction)
    # Debezium reports an added column with the next change of the table, not before.
    column_seen = added_at is not None and added_at < len(events)
    got = {r["id"]: (r["name"], r.get("extra")) for r in rows(table)} if table is not None else {}
    expected = {k: (row["name"], row.get("extra") if column_seen else None) for k, row in model.items()}
    assert got == expected
    if table is not None and indexes["items"].snapshot_id == table.current_snapshot().snapshot_id:
        # The warm index says what a rebuild from the table says.
        probe = pa.table({"id": pa.array(sorted(got), pa.int64())})
        warm, rebuilt = (
            indexes["items"].locate(probe),
            KeyIndex.build(table, ["id"], "_floe_position").locate(probe),
        )
        assert sorted(zip(warm.incoming.tolist(), warm.file, warm.pos.tolist(), strict=True)) == sorted(
            zip(rebuilt.incoming.tolist(), rebuilt.file, rebuilt.pos.tolist(), strict=True)
        )

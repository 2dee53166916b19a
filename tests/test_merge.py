"""The merge engine against a real pyiceberg SQL catalog (SQLite), compared with a model."""

from __future__ import annotations

import itertools
import uuid
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyiceberg.catalog.sql import SqlCatalog

from floe.changes import Column
from floe.errors import SchemaMappingError
from iceberg.checkpoint import read_checkpoint
from iceberg.merge import ConcurrentWriteError, merge_batch
from iceberg.schema import create_table
from tests.batches import make_batch

ITEMS = [
    Column("id", pa.int64(), False, "INT8"),
    Column("name", pa.string()),
    Column("price", pa.decimal128(10, 2)),
]


@pytest.fixture
def catalog(tmp_path):
    catalog = SqlCatalog("test", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=(tmp_path / "wh").as_uri())
    catalog.create_namespace("ns")
    return catalog


def apply(catalog, batch, table=None):
    table = (
        table or catalog.load_table(("ns", batch.table))
        if catalog.table_exists(("ns", batch.table))
        else None
    )
    if table is None:
        table = create_table(catalog, "ns", batch)
    return table, merge_batch(table, batch, read_checkpoint(table))


def rows(table, key="id"):
    return sorted(table.scan().to_arrow().to_pylist(), key=lambda r: tuple(r[k] for k in key.split(",")))


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
        make_batch("u", ["id"], columns, [("d", {"id": ids[0].bytes}), ("u", {"id": ids[1].bytes, "v": 9})]),
    )
    assert (result.updated, result.deleted) == (1, 1)
    assert sorted((r["id"], r["v"]) for r in rows(table)) == sorted([(ids[1], 9), (ids[2], 2), (ids[3], 3)])


def test_only_files_holding_changed_keys_are_rewritten(catalog):
    table = None
    for start in (0, 100, 200):
        batch = make_batch(
            "items", ["id"], ITEMS, [("r", {"id": i}) for i in range(start, start + 100)], offset=start
        )
        table, _ = apply(catalog, batch)
    table, result = apply(
        catalog, make_batch("items", ["id"], ITEMS, [("u", {"id": 150, "name": "x"})], offset=300)
    )
    assert result.files_rewritten == 1
    assert len(rows(table)) == 300


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
    with pytest.raises(SchemaMappingError, match=r"column name changed from string to int.*re-snapshot"):
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


OPS = st.one_of(
    st.tuples(st.sampled_from(["c", "u", "r"]), st.integers(0, 7), st.text(max_size=3)),
    st.tuples(st.just("d"), st.integers(0, 7), st.none()),
    st.tuples(st.just("t"), st.none(), st.none()),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, max_size=40), cuts=st.lists(st.integers(0, 40), max_size=4))
def test_random_change_streams_match_a_model(tmp_path_factory, ops, cuts):
    directory = tmp_path_factory.mktemp("prop")
    catalog = SqlCatalog("p", uri=f"sqlite:///{directory}/c.db", warehouse=(directory / "wh").as_uri())
    catalog.create_namespace("ns")
    model: dict[int, str | None] = {}
    events = []
    for op, key, value in ops:
        if op == "t":
            model.clear()
            events.append(("t", {}))
        elif op == "d":
            model.pop(key, None)
            events.append(("d", {"id": key}))
        else:
            model[key] = value
            events.append((op, {"id": key, "name": value}))
    bounds = sorted({0, len(events), *(c for c in cuts if c < len(events))})
    table = None
    for start, end in itertools.pairwise(bounds):
        batch = make_batch("items", ["id"], ITEMS, events[start:end], offset=start)
        table, _ = apply(catalog, batch, table)
    got = {r["id"]: r["name"] for r in rows(table)} if table is not None else {}
    assert got == model

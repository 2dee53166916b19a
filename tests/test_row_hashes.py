"""What keys mode compares and how it names the rows that differ."""

from __future__ import annotations

from floe_cdc.reconcile.row_hashes import differences, key_text, layout


def test_columns_both_sides_render_alike_are_compared_and_the_others_named():
    types = {
        "id": "integer",
        "name": "character varying(20)",
        "price": "numeric(10,2)",
        "ratio": "double precision",
        "at": "timestamp(3) with time zone",
        "tags": "text[]",
        "blob": "bytea",
    }
    plan = layout(types, ["id", "name", "price", "ratio", "at", "tags", "blob", "gone"], ["id"])
    assert plan.key == [("id", "text")]
    assert plan.columns == [("name", "text"), ("price", "text"), ("at", "epoch"), ("blob", "hex")]
    assert plan.left_out == ["ratio", "tags", "gone"]


def test_differences_name_missing_extra_and_changed_keys_but_excuse_later_changes():
    sep = key_text([1, "a"])[1]
    source = {"1" + sep + "a": "h1", "2" + sep + "b": "h2", "3" + sep + "c": "h3", "5" + sep + "e": "h5"}
    iceberg = {"1" + sep + "a": "h1", "2" + sep + "b": "other", "4" + sep + "d": "h4", "5" + sep + "e": "x"}
    found = differences(source, iceberg, excused={key_text([5, "e"])}, limit=10)
    assert [str(d) for d in found] == [
        "2, b (values differ)",
        "3, c (missing in Iceberg)",
        "4, d (not in the source)",
    ]
    assert len(differences(source, iceberg, set(), limit=2)) == 2
    assert key_text([None, True, 7]) == sep.join(["\\N", "true", "7"])

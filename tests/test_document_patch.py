import pytest

from floe_cdc.capture.mongodb.patch import Patch, PatchError, apply_patch


def test_updated_fields_set_nested_paths_and_array_elements():
    document = {"_id": 1, "a": {"b": 1}, "tags": ["x", "y"]}
    patched = apply_patch(document, Patch(updated={"a.c": 2, "tags.1": "z", "tags.3": "w", "n.m": True}))
    assert patched == {"_id": 1, "a": {"b": 1, "c": 2}, "tags": ["x", "z", None, "w"], "n": {"m": True}}
    assert document == {"_id": 1, "a": {"b": 1}, "tags": ["x", "y"]}  # the input is not changed


def test_removed_fields_unset_and_array_elements_become_null():
    document = {"_id": 1, "a": {"b": 1, "c": 2}, "tags": ["x", "y"], "gone": 0}
    patched = apply_patch(document, Patch(removed=["a.b", "tags.0", "gone", "never.there"]))
    assert patched == {"_id": 1, "a": {"c": 2}, "tags": [None, "y"]}


def test_truncated_arrays_apply_before_updates():
    document = {"_id": 1, "items": [{"q": 1}, {"q": 2}, {"q": 3}]}
    patched = apply_patch(document, Patch(updated={"items.1.q": 5}, truncated=[("items", 2)]))
    assert patched == {"_id": 1, "items": [{"q": 1}, {"q": 5}]}


def test_a_path_through_a_scalar_is_an_error():
    with pytest.raises(PatchError, match=r"a\.b\.c"):
        apply_patch({"a": {"b": 3}}, Patch(updated={"a.b.c": 1}))
    with pytest.raises(PatchError, match="not an array"):
        apply_patch({"a": 1}, Patch(truncated=[("a", 0)]))

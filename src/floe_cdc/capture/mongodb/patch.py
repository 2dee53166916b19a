"""Apply a MongoDB change stream ``updateDescription`` to a document.

When Debezium delivers no full document for an update (``capture.mode=change_streams``, or the
post-image lookup of ``change_streams_update_full`` found the document already deleted), the
event only says what changed: ``updatedFields`` (dotted paths to new values, array elements by
index), ``removedFields`` (``$unset`` paths) and ``truncatedArrays`` (arrays shortened to a new
size). MongoDB reconstructs the new document by truncating, then setting, then removing; so does
this module. Neither pymongo nor Debezium offers this as a function (Debezium's
``ExtractNewDocumentState`` only flattens the event), hence the code here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


class PatchError(ValueError):
    """The patch does not fit the document (e.g. a path runs through a scalar)."""


@dataclass(frozen=True)
class Patch:
    updated: dict[str, Any] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    truncated: list[tuple[str, int]] = field(default_factory=list)


def _step(container: Any, segment: str, path: str, create: bool) -> Any:
    if isinstance(container, dict):
        if segment not in container:
            if not create:
                return None
            container[segment] = {}
        return container[segment]
    if isinstance(container, list) and segment.isdigit():
        index = int(segment)
        if index >= len(container):
            if not create:
                return None
            container.extend([None] * (index + 1 - len(container)))
        if container[index] is None and create:
            container[index] = {}
        return container[index]
    raise PatchError(f"path {path} runs through a {type(container).__name__} value")


def _parent(document: dict[str, Any], path: str, create: bool) -> tuple[Any, str]:
    *parents, last = path.split(".")
    container: Any = document
    for segment in parents:
        container = _step(container, segment, path, create)
        if container is None:
            return None, last
    return container, last


def _set(document: dict[str, Any], path: str, value: Any) -> None:
    container, last = _parent(document, path, create=True)
    if isinstance(container, dict):
        container[last] = value
    elif isinstance(container, list) and last.isdigit():
        index = int(last)
        container.extend([None] * (index + 1 - len(container)))
        container[index] = value
    else:
        raise PatchError(f"cannot set {path} inside a {type(container).__name__} value")


def _unset(document: dict[str, Any], path: str) -> None:
    container, last = _parent(document, path, create=False)
    if isinstance(container, dict):
        container.pop(last, None)
    elif isinstance(container, list) and last.isdigit() and int(last) < len(container):
        container[int(last)] = None  # $unset of an array element leaves null in its place


def _truncate(document: dict[str, Any], path: str, size: int) -> None:
    container, last = _parent(document, path, create=False)
    target = container.get(last) if isinstance(container, dict) else None
    if not isinstance(target, list):
        raise PatchError(f"truncated array {path} is not an array in the stored document")
    del target[size:]


def apply_patch(document: dict[str, Any], patch: Patch) -> dict[str, Any]:
    """The document after *patch*; *document* itself is left unchanged."""
    result = copy.deepcopy(document)
    for path, size in patch.truncated:
        _truncate(result, path, size)
    for path, value in patch.updated.items():
        _set(result, path, value)
    for path in patch.removed:
        _unset(result, path)
    return result

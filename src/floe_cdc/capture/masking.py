"""Columns kept out of the lake (a table's ``exclude``) or hashed at capture (its ``hash``).

Debezium does both in the connector, so that the values never reach Kafka: ``column.exclude.list``
and ``column.mask.hash.v2.SHA-256.with.salt.<salt>`` (``capture.connectors``). The direct initial
load and the direct re-snapshot read the source themselves, so they leave out and hash the same
columns here, the same way, and a row reads the same whichever path wrote it.
"""

from __future__ import annotations

import hashlib
import re

import pyarrow as pa

from floe_cdc.core.config import TableRef

# The declared types whose values Debezium hashes (its string JDBC types); it passes others through.
HASHABLE = ("TEXT", "VARCHAR", "BPCHAR")


def hash_values(values: pa.ChunkedArray | pa.Array, salt: str, length: int | None) -> pa.Array:
    """Debezium's v2 hash of each value: the hex SHA-256 of the salt's and the value's UTF-8 bytes,
    cut to the column's declared *length* (varchar(n), char(n)); nulls stay null. Written out
    here because it must equal what the connector writes, byte for byte."""
    prefix = salt.encode()
    digests = [
        None if value is None else hashlib.sha256(prefix + value.encode()).hexdigest()[:length]
        for value in values.to_pylist()
    ]
    return pa.array(digests, pa.string())


def declared_length(source_type: str) -> int | None:
    """n of ``VARCHAR(n)`` or ``BPCHAR(n)``; None for a type without a length."""
    match = re.fullmatch(r"\w+\((\d+)\)", source_type)
    return int(match.group(1)) if match else None


def masking_problems(table: TableRef, setting: str, columns: dict[str, tuple[str, bool]]) -> list[str]:
    """What is wrong with *table*'s exclude and hash lists, given its *columns* (name -> its
    declared type's name, upper case without length, and whether it is part of the key)."""
    problems = []
    for kind, names in (("exclude", table.exclude), ("hash", table.hash)):
        for name in names:
            if name not in columns:
                problems.append(
                    f"table {table.name} has no column {name} ({setting}.{kind}); correct or remove it"
                )
            elif columns[name][1]:
                problems.append(
                    f"column {name} of table {table.name} is part of its primary key, which cannot be "
                    f"{'excluded' if kind == 'exclude' else 'hashed'} (changes would no longer find "
                    f"their rows); remove it from {setting}.{kind}"
                )
            elif kind == "hash" and columns[name][0] not in HASHABLE:
                problems.append(
                    f"column {name} of table {table.name} is {columns[name][0]}: hash applies to text "
                    f"columns (text, varchar, char); move it to {setting}.exclude"
                )
    return problems

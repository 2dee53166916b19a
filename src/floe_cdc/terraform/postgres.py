"""A PostgreSQL source's publication and logical replication slot, made before its connector.

Debezium would make both itself when its task starts; made by Terraform they exist, and are
dropped, on Terraform's terms: ``destroy`` drops the slot, which would otherwise pin WAL forever.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg2

from floe_cdc.capture.replication_objects import (
    create_publication,
    create_slot,
    drop_publication,
    drop_slot,
    publication_tables,
    set_publication_tables,
    slot_details,
)
from floe_cdc.terraform.resource import Operations, State


@contextlib.contextmanager
def _cursor(resource: Operations, database: str) -> Iterator[psycopg2.extensions.cursor]:
    conn = psycopg2.connect(dbname=database, application_name="floe-terraform", **resource.provider.postgres)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def _pairs(tables: list[list[str]]) -> list[tuple[str, str]]:
    return [(schema, table) for schema, table in tables]


class PublicationOperations(Operations):
    def create(self, planned: State) -> State:
        with _cursor(self, planned["database"]) as cur:
            create_publication(cur, planned["name"], _pairs(planned["tables"]))
        return planned

    def read(self, current: State) -> State | None:
        with _cursor(self, current["database"]) as cur:
            tables = publication_tables(cur, current["name"])
        if tables is None:
            return None
        same = sorted(_pairs(current["tables"])) == tables
        return {**current, "tables": current["tables"] if same else [list(pair) for pair in tables]}

    def update(self, current: State, planned: State) -> State:
        with _cursor(self, planned["database"]) as cur:
            set_publication_tables(cur, planned["name"], _pairs(planned["tables"]))
        return planned

    def delete(self, current: State) -> None:
        with _cursor(self, current["database"]) as cur:
            drop_publication(cur, current["name"])


class ReplicationSlotOperations(Operations):
    def create(self, planned: State) -> State:
        with _cursor(self, planned["database"]) as cur:
            create_slot(cur, planned["name"], planned["plugin"])
        return planned

    def read(self, current: State) -> State | None:
        with _cursor(self, current["database"]) as cur:
            details = slot_details(cur, current["name"])
        if details is None:
            return None
        database, plugin = details
        return {**current, "database": database, "plugin": plugin}

    def update(self, current: State, planned: State) -> State:
        raise AssertionError("every attribute of a replication slot replaces it")

    def delete(self, current: State) -> None:
        with _cursor(self, current["database"]) as cur:
            drop_slot(cur, current["name"])

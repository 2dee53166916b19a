"""What every resource of Floe's provider shares: errors become Terraform diagnostics that name
the resource, and a resource that is gone reads as None so that ``plan`` proposes to create it."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Protocol

from tf.iface import CreateContext, DeleteContext, ImportContext, ReadContext, Resource, UpdateContext
from tf.schema import Schema

from floe_cdc.core.secrets import mask

State = dict[str, Any]


class Settings(Protocol):
    """Where the provider's configuration says the services are."""

    connect_url: str
    prefect_api_url: str
    postgres: dict[str, Any]  # psycopg2 connection arguments but the database


class FloeResource(Resource):
    """A resource whose operations may raise; the exception's message becomes the diagnostic.

    Subclasses implement ``_create``, ``_read``, ``_update`` and ``_delete`` and describe
    themselves with ``NAME``, ``DOC`` and ``attributes``.
    """

    NAME = ""
    DOC = ""

    def __init__(self, provider: Settings) -> None:
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return cls.NAME

    @classmethod
    def get_schema(cls) -> Schema:
        # version=1: states written by this version need no upgrade step.
        return Schema(version=1, attributes=cls.attributes(), description=cls.DOC)

    @classmethod
    @abstractmethod
    def attributes(cls) -> list: ...

    @abstractmethod
    def _create(self, planned: State) -> State: ...

    @abstractmethod
    def _read(self, current: State) -> State | None: ...

    @abstractmethod
    def _update(self, current: State, planned: State) -> State: ...

    @abstractmethod
    def _delete(self, current: State) -> None: ...

    def _guard(self, ctx: Any, action: str, name: str, operation: Any) -> Any:
        try:
            return operation()
        except Exception as exc:  # every failure must reach Terraform as a diagnostic, not a crash
            ctx.diagnostics.add_error(f"floe_{self.NAME} {name}: {action} failed", mask(str(exc)))
            return None

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        return self._guard(ctx, "create", planned.get("name", ""), lambda: self._create(planned))

    def read(self, ctx: ReadContext, current: State) -> State | None:
        return self._guard(ctx, "read", current.get("name", ""), lambda: self._read(current))

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        return self._guard(ctx, "update", planned.get("name", ""), lambda: self._update(current, planned))

    def delete(self, ctx: DeleteContext, current: State) -> None:
        self._guard(ctx, "delete", current.get("name", ""), lambda: self._delete(current))

    def upgrade(self, ctx: Any, version: int, old: State) -> State:
        return old


class ImportedByName(FloeResource):
    """A resource its name alone finds, so that ``terraform import`` can adopt one that exists
    (the local stack's own work pool, a connector ``floe connectors apply`` made)."""

    def import_(self, ctx: ImportContext, id: str) -> State | None:
        return self._guard(ctx, "import", id, lambda: self._read({"name": id}))

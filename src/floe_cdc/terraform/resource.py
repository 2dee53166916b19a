"""What every resource of Floe's provider shares: errors become Terraform diagnostics that name
the resource, and a resource that is gone reads as None so that ``plan`` proposes to create it.

A resource is two classes: its declaration (``resources.py``: name, description, attributes) and
its operations (``postgres.py``, ``connect.py``, ``prefect_objects.py``), imported at the first
operation. Terraform starts the provider three to five times per command and most starts only
ask for the schema or validate a configuration; the operations need psycopg2, Prefect and Floe's
pipeline, about 2-3 s of imports per start.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from functools import cached_property
from typing import Any, ClassVar, Protocol

from tf.iface import CreateContext, DeleteContext, ImportContext, ReadContext, Resource, UpdateContext
from tf.schema import Schema

from floe_cdc.core.secrets import mask

State = dict[str, Any]


class Settings(Protocol):
    """Where the provider's configuration says the services are."""

    connect_url: str
    prefect_api_url: str
    postgres: dict[str, Any]  # psycopg2 connection arguments but the database


class Operations(ABC):
    """What a resource does on the services, for one provider configuration."""

    def __init__(self, provider: Settings) -> None:
        self.provider = provider

    @abstractmethod
    def create(self, planned: State) -> State: ...

    @abstractmethod
    def read(self, current: State) -> State | None: ...

    @abstractmethod
    def update(self, current: State, planned: State) -> State: ...

    @abstractmethod
    def delete(self, current: State) -> None: ...


class FloeResource(Resource):
    """A resource as Terraform sees it; its operations may raise, and the exception's message
    becomes the diagnostic.

    Subclasses describe themselves with ``NAME``, ``DOC`` and ``attributes``, and name their
    ``Operations`` subclass in ``OPERATIONS`` as ``module:Class``.
    """

    NAME = ""
    DOC = ""
    OPERATIONS: ClassVar[str] = ""

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

    @cached_property
    def operations(self) -> Operations:
        module, _, name = self.OPERATIONS.partition(":")
        return getattr(importlib.import_module(module), name)(self.provider)

    def _guard(self, ctx: Any, action: str, name: str, operation: Any) -> Any:
        try:
            return operation()
        except Exception as exc:  # every failure must reach Terraform as a diagnostic, not a crash
            ctx.diagnostics.add_error(f"floe_{self.NAME} {name}: {action} failed", mask(str(exc)))
            return None

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        return self._guard(ctx, "create", planned.get("name", ""), lambda: self.operations.create(planned))

    def read(self, ctx: ReadContext, current: State) -> State | None:
        return self._guard(ctx, "read", current.get("name", ""), lambda: self.operations.read(current))

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        return self._guard(
            ctx, "update", planned.get("name", ""), lambda: self.operations.update(current, planned)
        )

    def delete(self, ctx: DeleteContext, current: State) -> None:
        self._guard(ctx, "delete", current.get("name", ""), lambda: self.operations.delete(current))

    def upgrade(self, ctx: Any, version: int, old: State) -> State:
        return old


class ImportedByName(FloeResource):
    """A resource its name alone finds, so that ``terraform import`` can adopt one that exists
    (the local stack's own work pool, a connector ``floe connectors apply`` made)."""

    def import_(self, ctx: ImportContext, id: str) -> State | None:
        return self._guard(ctx, "import", id, lambda: self.operations.read({"name": id}))

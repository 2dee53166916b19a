"""One root exception for Floe, with mixins that tell callers whether retrying can help.

Retry logic asks ``isinstance(exc, Transient)`` instead of matching message strings; a
``Terminal`` error needs a person (bad configuration, an incompatible schema change). Each
error is classified where it is raised; callers never guess from the message.
"""


class FloeError(Exception):
    """Base of every error Floe raises on purpose. The message names what failed and the fix."""


class Transient:
    """Mixin: the same call may succeed later (a service still starting, a commit conflict)."""


class Terminal:
    """Mixin: retrying will not help until someone changes something."""


class ConfigError(FloeError, Terminal):
    """The pipeline or stack configuration is invalid."""


class StackError(FloeError, Terminal):
    """A local-stack component failed to start or stop; the message points at its log."""


class ConnectError(FloeError):
    """Kafka Connect answered with an error; carries Connect's own message."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ConnectUnavailable(ConnectError, Transient):
    """Kafka Connect could not be reached, timed out, or is rebalancing."""


class ConnectRejected(ConnectError, Terminal):
    """Kafka Connect refused a request or a configuration, or a connector's task failed: someone
    has to fix the cause (the message says which) before it can succeed."""


class SchemaMappingError(FloeError, Terminal):
    """A source type has no faithful Iceberg type, or a change Iceberg cannot follow."""


class ReplicationFailed(FloeError, Transient):
    """A replication cycle could not merge every table (the others were committed), and every
    cause may pass by itself (a concurrent writer, a source or service not answering)."""


class ReplicationStopped(FloeError, Terminal):
    """A replication cycle hit a cause that needs a person: an incompatible schema change, a
    failed connector task, a configuration error. The message names it and the way out."""


class SourceUnavailable(FloeError, Transient):
    """A source database did not answer a query Floe needed; the message names the source."""


class ReconciliationFailed(FloeError, Terminal):
    """A table did not reconcile (or could not be checked); *rows* hold every table's result, so
    that the run still reports them all."""

    def __init__(self, message: str, rows: list[dict]) -> None:
        super().__init__(message)
        self.rows = rows

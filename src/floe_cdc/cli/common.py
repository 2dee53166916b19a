"""What every ``floe`` command shares: options, logging, Prefect's settings and the one-line error.

Prefect reads its settings at import time, so commands import flows lazily, after
``prefect_env`` has pointed Prefect at the local stack's server when no PREFECT_API_URL is set.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from floe_cdc.core.errors import ConfigError
from floe_cdc.core.secrets import install_log_masking

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", envvar="FLOE_CONFIG", help="Pipeline configuration file")
]
TablesOption = Annotated[
    list[str] | None, typer.Option("--table", "-t", help="Only this table (repeatable); default: all")
]
PROJECT_DIR = Path.cwd()


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "pyiceberg", "soda"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_log_masking()


def prefect_env(local_stack: dict[str, str] | None = None) -> None:
    """Point Prefect at a local stack's server when no PREFECT_API_URL is set: the one about to
    start (*local_stack*, its client settings), or one started from here, which left its client
    settings in ``$FLOE_STACK_DIR/prefect.env`` (default ``.floe/stack``). Otherwise Prefect's own
    settings apply, and nothing is created in the working directory."""
    env_file = Path(os.environ.get("FLOE_STACK_DIR", ".floe/stack")) / "prefect.env"
    if "PREFECT_API_URL" not in os.environ:
        if local_stack is None and env_file.is_file():
            local_stack = dict(
                line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
            )
        for key, value in (local_stack or {}).items():
            os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "floe")
    import prefect  # noqa: F401  (sets up Prefect's console handlers, read with the settings above)

    hide_tracebacks()


def fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


class _WithoutTraceback(logging.Filter):
    """Console output of an error shows its message, not its traceback (``--verbose`` shows it).

    Prefect logs a failed flow's or task's exception with its traceback; the message stays, and
    the command's own ``error:`` line says what to do.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not VERBOSE:
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


VERBOSE = False


_QUIET = _WithoutTraceback()


def hide_tracebacks() -> None:
    """Attach the filter to every console handler, Prefect's included (set up when it is imported);
    attaching it again to a handler that has it does nothing."""
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.addFilter(_QUIET)


@contextlib.contextmanager
def writing_to(option: str, directory: Path) -> Iterator[None]:
    """Writing files under *directory*, given by *option*: an OSError becomes the one-line error."""
    try:
        yield
    except OSError as exc:
        raise ConfigError(
            f"cannot write to {option} {directory} ({exc.strerror}); choose a writable directory"
        ) from None

"""What every ``floe`` command shares: options, logging, the extras and the one-line error.

Prefect's settings are set when the package is imported (``floe_cdc.core.prefect_settings``).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from floe_cdc.core.errors import ConfigError, FloeError
from floe_cdc.core.secrets import install_log_masking, mask

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", envvar="FLOE_CONFIG", help="Pipeline configuration file")
]
TablesOption = Annotated[
    list[str] | None, typer.Option("--table", "-t", help="Only this table (repeatable); default: all")
]
PROJECT_DIR = Path.cwd()


def setup_logging() -> None:
    """Floe's INFO lines on the console, through Prefect's console handler where Prefect (imported
    by then) has set one on the root logger, whose level it sets to WARNING."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(logging.INFO)
    # prefect.engine: a line before and after every state hook of a run.
    for noisy in ("httpx", "pyiceberg", "soda", "prefect.engine", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Prefect's event sender warns "Still processing items" while it flushes at exit: progress,
    # not a problem, and it would land after a command's error line.
    logging.getLogger("EventsWorker").setLevel(logging.ERROR)
    install_log_masking()


class OneLineErrors(TyperGroup):
    """The ``floe`` command group: an error a user can cause (a ``FloeError``) ends any command
    with one ``error:`` line, secrets masked, and exit code 1; ``--verbose`` shows its traceback.
    Here rather than in each command, so that no command can forget it."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except FloeError as exc:
            if VERBOSE:
                raise
            typer.secho(f"error: {mask(str(exc))}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=1) from None


def extra(package: str, name: str) -> ModuleType:
    """An optional part of Floe, imported when a command needs it; missing, it is the one-line
    error that says how to install it (production installs carry neither extra)."""
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"this command needs Floe's '{name}' extra ({exc.name} is not installed); "
            f"install it with: pip install 'floe-cdc[{name}]'"
        ) from None


class _QuietConsole(logging.Filter):
    """The console shows what a command says, not how Prefect got there (``--verbose`` shows it).

    Prefect logs a failed flow's or task's exception with its traceback, each retry of a task,
    and each failed state: the command's own ``error:`` line says what went wrong and what to do,
    and the Prefect UI keeps every one of those records (this filter sits on console handlers
    only). Other errors keep their message and lose their traceback.
    """

    _PREFECT_RUNS = ("prefect.flow_runs", "prefect.task_runs")
    _FAILURES = ("Task run failed with", "Finished in state Failed", "Finished in state Crashed")

    def filter(self, record: logging.LogRecord) -> bool:
        if VERBOSE:
            return True
        if record.name.startswith(self._PREFECT_RUNS) and (
            record.levelno >= logging.WARNING or record.getMessage().startswith(self._FAILURES)
        ):
            return False
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


VERBOSE = False


_QUIET = _QuietConsole()


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

"""Floe's Prefect settings, set once, before anything imports Prefect.

Prefect reads its settings from the environment when it is imported. ``floe_cdc/__init__.py``
calls :func:`configure_prefect` first, so every module of Floe may import Prefect at its top.
Nothing here imports Prefect.

Where the settings come from: Prefect's own (the environment, the active profile) whenever
``PREFECT_API_URL`` is set; otherwise the local stack's server, whose client settings the stack
leaves in ``$FLOE_STACK_DIR/prefect.env`` (default ``.floe/stack``) when it starts. A stack
started by this very process (``floe demo``) is reached through Prefect's
``temporary_settings`` instead (``floe_cdc.stack.settings.StackSettings.prefect_context``).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

STACK_DIR_DEFAULT = ".floe/stack"  # the local stack's state folder, unless FLOE_STACK_DIR says otherwise
PREFECT_ENV_FILE = "prefect.env"


def stack_dir(environ: MutableMapping[str, str] = os.environ) -> Path:
    """The local stack's state folder: ``$FLOE_STACK_DIR``, else ``.floe/stack`` here."""
    return Path(environ.get("FLOE_STACK_DIR", STACK_DIR_DEFAULT))


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines, as the local stack writes them."""
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def configure_prefect(environ: MutableMapping[str, str] = os.environ) -> None:
    """Point Prefect at the local stack's server unless ``PREFECT_API_URL`` is set; keep its
    analytics off and forward the ``floe`` loggers to the Prefect UI within flow runs. Settings
    already in the environment win; nothing is created in the working directory."""
    env_file = stack_dir(environ) / PREFECT_ENV_FILE
    if "PREFECT_API_URL" not in environ and env_file.is_file():
        for key, value in read_env_file(env_file).items():
            environ.setdefault(key, value)
    environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "floe")
    # Floe's commands log outside flow runs too (connectors apply, stack up): those lines stay on
    # the console, without a warning that they did not reach the Prefect UI.
    environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

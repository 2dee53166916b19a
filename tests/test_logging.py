"""Every module logs under ``floe``: Prefect forwards that logger tree to the UI
(``PREFECT_LOGGING_EXTRA_LOGGERS=floe``) and the secret filter is attached to it."""

from __future__ import annotations

import importlib
import logging
import pkgutil

PACKAGES = ["floe_cdc"]


def _modules():
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        yield package
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            if not info.name.endswith(".__main__"):  # a program (the Terraform provider), not a module
                yield importlib.import_module(info.name)


def test_module_loggers_are_under_floe():
    loggers = {
        m.__name__: m.log.name for m in _modules() if isinstance(getattr(m, "log", None), logging.Logger)
    }
    assert len(loggers) >= 8
    assert {name: logger for name, logger in loggers.items() if not logger.startswith("floe.")} == {}

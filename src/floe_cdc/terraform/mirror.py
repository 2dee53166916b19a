"""Install the provider where ``terraform init`` finds it without a registry: an unpacked
filesystem mirror, and a CLI configuration (``TF_CLI_CONFIG_FILE``) that points at it.

The mirror holds a small executable that starts this Python environment's provider, so the
provider always runs Floe's installed code.
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
from pathlib import Path

from floe_cdc.terraform.provider import HOST, NAMESPACE, TYPE, VERSION

SOURCE = f"{HOST}/{NAMESPACE}/{TYPE}"


def _target() -> str:
    machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "amd64")
    return f"{sys.platform}_{machine}"


def install(directory: Path, plugin_mirrors: list[Path]) -> Path:
    """Write the mirror and the CLI configuration into *directory*; return the configuration's
    path. *plugin_mirrors* are filesystem mirrors of other providers (hashicorp/aws where no
    registry is reachable); with them, Terraform fetches nothing from the registry."""
    package = directory / "mirror" / SOURCE / VERSION / _target()
    package.mkdir(parents=True, exist_ok=True)
    executable = package / f"terraform-provider-{TYPE}_v{VERSION}"
    executable.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m floe_cdc.terraform "$@"\n')
    executable.chmod(0o755)
    mirrors = [directory / "mirror", *plugin_mirrors]
    blocks = [
        f"  filesystem_mirror {{\n    path = {json.dumps(str(path.resolve()))}\n  }}\n" for path in mirrors
    ]
    excluded = '"registry.terraform.io/*/*"' if plugin_mirrors else json.dumps(SOURCE)
    config = directory / "terraformrc"
    config.write_text(
        "# Written by 'floe terraform setup': Floe's provider from its mirror, the rest as listed.\n"
        "provider_installation {\n" + "".join(blocks) + f"  direct {{\n    exclude = [{excluded}]\n  }}\n}}\n"
    )
    return config

"""Keep source secrets out of Kafka Connect's REST API and config topic.

Kafka Connect stores a connector's configuration as given and shows it to anyone who can call
``GET /connectors/<name>/config``. Its config providers resolve ``${provider:path:key}``
references when a connector starts, so the stored configuration holds only the reference:
- ``file``: Floe writes the secrets to a properties file (mode 600) that every Connect worker
  reads with ``FileConfigProvider``; a changed secret restarts the connector.
- ``env``: every Connect worker has them in environment variables (``EnvVarConfigProvider``);
  Floe writes nothing, the variable names are in docs/secrets.md.
- ``inline``: the secret itself, for a Connect cluster without config providers.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from floe_cdc.core.config import ConnectConfig

SECRET_PROPERTIES = ("database.password", "mongodb.connection.string")


def env_variable(connector: str, prop: str) -> str:
    """The environment variable a Connect worker holds *prop* of *connector* in, with secrets: env
    (``floe-shop`` and ``database.password`` -> ``FLOE_SHOP_DATABASE_PASSWORD``)."""
    return re.sub(r"[^A-Z0-9]", "_", f"{connector}_{prop}".upper())


def externalize(
    connector: str, properties: dict[str, str], connect: ConnectConfig
) -> tuple[dict[str, str], dict[str, str]]:
    """(*properties* with each secret replaced by a config-provider reference, the secrets by the
    key they have in the secrets file). With secrets: env or inline the second part is empty."""
    if connect.secrets == "inline":
        return properties, {}
    referenced, values = dict(properties), {}
    for prop in SECRET_PROPERTIES:
        if prop not in properties:
            continue
        if connect.secrets == "env":
            referenced[prop] = f"${{env:{env_variable(connector, prop)}}}"
        else:
            key = f"{connector}.{prop}"
            referenced[prop] = f"${{file:{connect.secrets_file}:{key}}}"
            values[key] = properties[prop]
    return referenced, values


def _escape(text: str, key: bool = False) -> str:
    """*text* in Java properties syntax, ASCII only (``Properties.load`` reads it back exactly).
    Written here because it is this one function; no library is needed for it."""
    out = []
    for index, char in enumerate(text):
        if char in "\\=:#!" or (char == " " and (key or index == 0)):
            out.append("\\" + char)
        elif char in "\n\r\t\f":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}[char])
        elif " " <= char <= "~":
            out.append(char)
        else:
            encoded = char.encode("utf-16-be")
            out += [f"\\u{encoded[i : i + 2].hex()}" for i in range(0, len(encoded), 2)]
    return "".join(out)


def write_secrets(path: Path, values: dict[str, str]) -> set[str]:
    """Write *values* (key -> secret) to the secrets file, readable by its owner only; return the
    connectors whose secrets changed (they must restart to read them)."""
    lines = {key: f"{_escape(key, key=True)}={_escape(value)}" for key, value in sorted(values.items())}
    old = set(path.read_text().splitlines()) if path.is_file() else set()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write("# Written by 'floe connectors apply'; read by Kafka Connect's FileConfigProvider\n")
        handle.writelines(line + "\n" for line in lines.values())
    os.replace(temporary, path)
    return {_connector_of(key) for key, line in lines.items() if line not in old}


def _connector_of(key: str) -> str:
    return next(key[: -len(prop) - 1] for prop in SECRET_PROPERTIES if key.endswith("." + prop))

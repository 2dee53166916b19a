"""MongoDB extended JSON, read and written with pymongo's ``bson.json_util``.

Floe writes compact relaxed extended JSON (numbers and strings plain, ``{"$oid": ...}``,
``{"$date": ...}``, ``{"$numberDecimal": ...}``, ``{"$binary": ...}`` where JSON has no type), the
form MongoDB's own tools print, and reads every mode, including the legacy strict one.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from bson import json_util
from bson.binary import UuidRepresentation
from bson.codec_options import DatetimeConversion
from bson.json_util import JSONMode, JSONOptions

JSON_OPTIONS = JSONOptions(
    json_mode=JSONMode.RELAXED,
    uuid_representation=UuidRepresentation.STANDARD,
    tz_aware=True,
    tzinfo=UTC,
    # Dates outside Python's range (years before 1 or after 9999) stay exact as DatetimeMS.
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,
)


def to_json(value: Any) -> str:
    """Compact relaxed extended JSON, as stored in ``_id``, ``_doc`` and ``_floe_conflicts``."""
    return json_util.dumps(value, json_options=JSON_OPTIONS, separators=(",", ":"))


def from_json(text: str) -> Any:
    """Parses every extended JSON mode (canonical, relaxed and the legacy strict one)."""
    return json_util.loads(text, json_options=JSON_OPTIONS)

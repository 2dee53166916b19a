"""Validation of OpenLineage events: against the RunEvent structure of the OpenLineage
specification and the JSON schemas of Floe's own run facets."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema

ROOT = Path(__file__).parent.parent
RUN_EVENT = json.loads((ROOT / "tests/fixtures/openlineage_run_event.schema.json").read_text())
FACETS = {
    "floe_commit": json.loads((ROOT / "docs/lineage/CommitRunFacet.json").read_text()),
    "floe_reconciliation": json.loads((ROOT / "docs/lineage/ReconciliationRunFacet.json").read_text()),
}


def valid(received: dict[str, Any]) -> dict[str, Any]:
    """*received*, once it has validated (raises jsonschema's ValidationError otherwise)."""
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    jsonschema.Draft202012Validator(RUN_EVENT, format_checker=checker).validate(received)
    for name, schema in FACETS.items():
        facet = received["run"]["facets"][name]
        jsonschema.Draft202012Validator(schema, format_checker=checker).validate({name: facet})
        assert facet["_schemaURL"].startswith(schema["$id"])
    datetime.fromisoformat(received["eventTime"])
    return received

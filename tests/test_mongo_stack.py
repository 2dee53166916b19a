"""``floe stack up --config`` and ``floe stack status --config`` check MongoDB sources' replica sets.

No MongoDB server can run here (see the README), so only the unreachable case is exercised.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from floe_cdc.core.config import MongoSource
from floe_cdc.core.errors import StackError
from floe_cdc.stack.mongodb import check_replica_set, require_replica_sets

PASSWORD = "never-in-messages"


def _source(uri: str) -> MongoSource:
    return MongoSource(
        kind="mongodb", name="docs", connection_string=SecretStr(uri), database="shop", collections=["orders"]
    )


def test_an_unreachable_replica_set_is_reported_without_credentials():
    source = _source(f"mongodb://floe:{PASSWORD}@127.0.0.1:9/?replicaSet=rs0&serverSelectionTimeoutMS=300")
    status = check_replica_set(source)
    assert not status.healthy and status.detail.startswith("unreachable: 127.0.0.1:9")
    with pytest.raises(StackError) as caught:
        require_replica_sets([source])
    message = str(caught.value)
    assert "MongoDB source docs is not usable: unreachable" in message and "connection_string" in message
    assert PASSWORD not in message


def test_no_mongodb_sources_need_no_check():
    assert require_replica_sets([]) == []

import socket

import pytest

from floe_cdc.capture.consumer import KEEP, REWIND, SKIP, ChangeConsumer, ConsumeError, probe_verdict
from floe_cdc.core.config import KafkaConfig


def test_an_unreachable_broker_names_the_setting():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: no broker there
    config = KafkaConfig(bootstrap_servers=f"127.0.0.1:{port}")
    with ChangeConsumer(config) as consumer, pytest.raises(ConsumeError) as caught:
        consumer.partitions(["floe.shop.public.orders"], timeout=1.0)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "check kafka.bootstrap_servers" in message


@pytest.mark.parametrize(
    ("probe", "offset", "stamp", "verdict"),
    [
        ((41, 1700), 41, 1700, SKIP),  # the record the table holds: history intact
        ((41, None), 41, 1234, SKIP),  # no timestamp recorded: the offset alone decides
        ((41, 1700), 41, 1999, REWIND),  # another record at that offset: topic re-created
        ((41, 1700), 57, 1999, KEEP),  # the probe is gone (retention), the history goes on
    ],
)
def test_the_first_record_read_tells_whether_the_topic_kept_its_history(probe, offset, stamp, verdict):
    assert probe_verdict(probe, offset, stamp) == verdict

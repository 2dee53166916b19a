import socket

import pytest

from cdc.consumer import ChangeConsumer, ConsumeError
from floe.config import KafkaConfig


def test_an_unreachable_broker_names_the_setting():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: no broker there
    config = KafkaConfig(bootstrap_servers=f"127.0.0.1:{port}")
    with ChangeConsumer(config) as consumer, pytest.raises(ConsumeError) as caught:
        consumer.partitions(["floe.shop.public.orders"], timeout=1.0)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "check kafka.bootstrap_servers" in message

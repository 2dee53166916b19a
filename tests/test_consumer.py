import socket
import time

import pytest

from floe_cdc.capture.consumer import KEEP, REWIND, SKIP, ChangeConsumer, probe_verdict
from floe_cdc.capture.kafka_clients import BrokerUnavailable, check_broker
from floe_cdc.core.config import KafkaConfig


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed once the block ends: no broker there


def test_an_unreachable_broker_names_the_setting_in_one_line(capfd):
    config = KafkaConfig(bootstrap_servers=f"127.0.0.1:{_closed_port()}")
    began = time.monotonic()
    with pytest.raises(BrokerUnavailable) as refused:
        ChangeConsumer(config)
    # Every broker refused the connection: said at once, with the reason, not after 10 s.
    assert time.monotonic() - began < 5
    assert "Connection refused" in str(refused.value)
    with pytest.raises(BrokerUnavailable) as checked:
        check_broker(config, timeout=1.0)
    for error in (refused.value, checked.value):
        message = str(error)
        assert config.bootstrap_servers in message and "check kafka.bootstrap_servers" in message
    # librdkafka's own lines (a "Connect to ... failed" per attempt) never reach the terminal.
    printed = capfd.readouterr()
    assert "rdkafka" not in printed.out + printed.err and "Connection refused" not in printed.err


def test_a_broker_that_takes_the_connection_but_never_answers_times_out(capfd):
    """A listening socket that never speaks Kafka: librdkafka's connection is up, so only the
    timeout can tell, and the error line says how long it waited."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        config = KafkaConfig(bootstrap_servers=f"127.0.0.1:{silent.getsockname()[1]}")
        with pytest.raises(BrokerUnavailable) as caught:
            check_broker(config, timeout=1.0)
    assert "did not answer within 1s" in str(caught.value)


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

"""Options are checked at construction: clear TypeError/ValueError, no I/O, no loop needed."""

from __future__ import annotations

import ssl

import pytest

from channels_rabbitmq_threaded import RabbitmqChannelLayer
from channels_rabbitmq_threaded._config import DEFAULT_HEARTBEAT, DEFAULT_HOST, Settings, redact_url


def test_defaults() -> None:
    settings = Settings.from_options()
    assert settings.hosts == (DEFAULT_HOST,)
    assert (settings.expiry, settings.local_expiry) == (60, 60)
    assert (settings.local_capacity, settings.remote_capacity, settings.prefetch_count) == (100, 2000, 10)
    assert settings.groups_exchange == "groups" and settings.group_expiry == 86400
    assert settings.connect_timeout == 10
    assert settings.max_message_size == 16 * 1024 * 1024  # RabbitMQ 4.0's own default: no bigger message by default
    assert settings.normal_queue("jobs")[1]["x-queue-type"] == "classic"  # said, whatever the vhost's default


def test_local_expiry_defaults_to_expiry() -> None:
    assert Settings.from_options(expiry=5).local_expiry == 5
    assert Settings.from_options(expiry=5, local_expiry=2).local_expiry == 2


def test_unknown_options_are_named() -> None:
    with pytest.raises(TypeError, match=r"'hosts'.*the options are: host"):
        RabbitmqChannelLayer(hosts=["redis://x"])


@pytest.mark.parametrize(
    ("options", "error", "text"),
    [
        ({"host": 5672}, TypeError, "host must be an AMQP URL"),
        ({"host": []}, ValueError, "empty list"),
        ({"host": ["amqp://a/", 5]}, TypeError, "host must be an AMQP URL"),
        ({"host": ["amqp://a/", "amqp://b/?x=1"]}, ValueError, "not a valid AMQP URL"),
        ({"host": "redis://localhost"}, ValueError, "amqp:// or amqps://"),
        ({"host": "amqp://localhost:notaport/"}, ValueError, "not a valid AMQP URL"),
        ({"host": "amqp://h/?bogus=1"}, ValueError, "not a valid AMQP URL"),
        ({"ssl_context": ssl.create_default_context()}, ValueError, "use amqps://"),
        ({"host": "amqps://h/", "ssl_context": "yes"}, TypeError, "ssl_context must be an ssl.SSLContext"),
        ({"expiry": "60"}, TypeError, "expiry must be a number"),
        ({"expiry": 0}, ValueError, "expiry must be a positive"),
        ({"local_expiry": float("nan")}, ValueError, "local_expiry must be a positive"),
        ({"local_capacity": 1.5}, TypeError, "local_capacity must be an int"),
        ({"remote_capacity": 0}, ValueError, "remote_capacity must be at least 1"),
        ({"prefetch_count": True}, TypeError, "prefetch_count must be an int"),
        ({"groups_exchange": ""}, ValueError, "not a usable exchange name"),
        ({"groups_exchange": "amq.direct"}, ValueError, "not a usable exchange name"),
        ({"group_expiry": -1}, ValueError, "group_expiry must be at least 1"),
        ({"connect_timeout": None}, TypeError, "connect_timeout must be a number"),
        ({"wait_for_confirms": "no"}, TypeError, "wait_for_confirms must be True or False"),
        ({"connect_timeout": -1}, ValueError, "connect_timeout must be a positive"),
        ({"heartbeat": 2.5}, TypeError, "heartbeat must be an int"),
        ({"capacity": 0}, ValueError, "capacity must be at least 1"),
        ({"channel_capacity": [("a", 1)]}, TypeError, "channel_capacity must be a dict"),
        ({"channel_capacity": {5: 1}}, TypeError, "glob strings or compiled regexes"),
        ({"channel_capacity": {"a*": 0}}, ValueError, "channel_capacity"),
        ({"heartbeat": -1}, ValueError, "heartbeat must be at least 0"),
        ({"normal_queue_type": "stream"}, ValueError, "normal_queue_type must be one of classic, quorum"),
        ({"normal_queue_type": None}, TypeError, "normal_queue_type must be a str"),
        ({"hosts": ["redis://localhost:6379"]}, TypeError, "use host with an amqp:// URL"),
    ],
)
def test_bad_options(options: dict, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        RabbitmqChannelLayer(**options)


def test_passwords_are_redacted() -> None:
    assert redact_url("amqp://user:secret@host:5672/v") == "amqp://user:***@host:5672/v"
    assert redact_url("amqp://host/") == "amqp://host/"
    with pytest.raises(ValueError) as info:
        RabbitmqChannelLayer(host="amqp://user:secret@host/?bogus=1")
    assert "secret" not in str(info.value)


def test_construction_needs_no_loop_and_opens_nothing() -> None:
    layer = RabbitmqChannelLayer(host="amqp://guest:guest@127.0.0.1:1/%2F", group_expiry=3600)
    assert layer._io_thread is None
    assert layer.group_expiry == 3600
    assert layer.extensions == ["groups", "flush"]


def test_tls_parameters_use_the_given_context() -> None:
    context = ssl.create_default_context()
    params = Settings.from_options(host="amqps://u:p@localhost/v", ssl_context=context).connection_parameters("n")
    assert params.ssl_options.context is context
    assert params.port == 5671 and params.virtual_host == "v"
    assert params.client_properties["connection_name"] == "n"


def test_a_list_of_hosts_is_tried_in_turn() -> None:
    settings = Settings.from_options(host=["amqp://u:p@a/", "amqp://u:p@b:5673/"])
    assert [settings.connection_parameters("n", attempt).host for attempt in range(3)] == ["a", "b", "a"]
    assert settings.redacted_host(1) == "amqp://u:***@b:5673/"


def test_channel_capacity_globs_and_regexes_first_match_wins() -> None:
    import re

    settings = Settings.from_options(
        capacity=7, channel_capacity={"http.response!*": 10, re.compile(r"^chat\."): 20, "*": 30}
    )
    assert settings.capacity_of("http.response!abc") == 10
    assert settings.capacity_of("chat.room!1") == 20
    assert settings.capacity_of("anything") == 30
    assert Settings.from_options(capacity=7).capacity_of("anything") == 7


def test_heartbeat_option_overrides_the_url() -> None:
    settings = Settings.from_options(host="amqp://h/?heartbeat=60", heartbeat=5)
    assert settings.connection_parameters("n").heartbeat == 5
    assert Settings.from_options(host="amqp://h/?heartbeat=60").connection_parameters("n").heartbeat == 60


def test_the_process_queue_type() -> None:
    assert Settings.from_options().process_queue()["arguments"]["x-queue-type"] == "classic"
    quorum = Settings.from_options(queue_type="quorum").process_queue()
    assert quorum["durable"] and not quorum["exclusive"] and quorum["arguments"]["x-queue-type"] == "quorum"
    with pytest.raises(ValueError, match="quorum queue cannot be exclusive"):
        Settings.from_options(queue_type="quorum", queue_lease=0)
    with pytest.raises(ValueError, match="queue_type must be one of classic, quorum"):
        Settings.from_options(queue_type="stream")
    with pytest.raises(TypeError, match="queue_type must be a str"):
        Settings.from_options(queue_type=1)


def test_without_a_heartbeat_in_the_options_or_the_url_the_layer_asks_for_ten_seconds() -> None:
    assert Settings.from_options(host="amqp://h/").connection_parameters("n").heartbeat == DEFAULT_HEARTBEAT == 10
    assert Settings.from_options(host="amqp://h/?heartbeat=0").connection_parameters("n").heartbeat == 0


@pytest.mark.parametrize(("connect_timeout", "attempt"), [(10, 5.0), (4, 2.0), (0.5, 0.5), (60, 5.0)])
def test_each_connection_attempt_is_bounded_by_half_of_connect_timeout(connect_timeout: float, attempt: float) -> None:
    params = Settings.from_options(connect_timeout=connect_timeout).connection_parameters("test")
    assert (params.socket_timeout, params.stack_timeout) == (attempt, attempt)


def test_a_url_that_names_its_own_attempt_timeouts_keeps_them() -> None:
    url = "amqp://guest:guest@localhost/%2F?socket_timeout=7&stack_timeout=9"
    params = Settings.from_options(host=url).connection_parameters("test")
    assert (params.socket_timeout, params.stack_timeout) == (7, 9)

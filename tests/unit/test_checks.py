"""Django system checks (`channels_rabbitmq_threaded.checks`): the rules alone, and through `manage.py check`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from channels_rabbitmq_threaded.checks import check_layers

from ..conftest import ROOT

BACKEND = "channels_rabbitmq_threaded.core.RabbitmqChannelLayer"


def ids(layers: dict, deploy: bool = False) -> list[str]:
    return [message.id for message in check_layers(layers, deploy)]


def test_valid_options_pass_and_other_backends_are_not_ours() -> None:
    layers = {
        "default": {"BACKEND": BACKEND, "CONFIG": {"host": "amqps://site:pw@rabbit.example/site", "heartbeat": 10}},
        "redis": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"nonsense": True}},
    }
    assert ids(layers) == [] and ids(layers, deploy=True) == []


@pytest.mark.parametrize(
    ("config", "text"),
    [
        ({"expiry": -1}, "expiry"),
        ({"hots": "amqp://x"}, "hots"),
        ({"host": "http://rabbit"}, "host"),
        ({"queue_lease": "soon"}, "queue_lease"),
    ],
)
def test_an_option_the_layer_refuses_is_an_error_naming_it(config: dict, text: str) -> None:
    [message] = check_layers({"default": {"BACKEND": BACKEND, "CONFIG": config}}, deploy=False)
    assert message.id == "channels_rabbitmq_threaded.E001" and text in message.msg and message.hint


def test_deploy_warnings() -> None:
    config = {
        "host": "amqp://guest:guest@rabbit.example/%2F?heartbeat=0",
        "wait_for_confirms": False,
        "max_message_size": 64 * 1024 * 1024,
    }
    found = ids({"default": {"BACKEND": BACKEND, "CONFIG": config}}, deploy=True)
    assert found == [f"channels_rabbitmq_threaded.W00{n}" for n in (1, 2, 3, 4, 5)]
    local = {"host": "amqp://guest:guest@localhost/%2F"}
    assert ids({"default": {"BACKEND": BACKEND, "CONFIG": local}}, deploy=True) == []


def manage_check(tmp_path: Path, config: dict, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "check_settings.py").write_text(
        textwrap.dedent(f"""
            SECRET_KEY = "x" * 60
            INSTALLED_APPS = ["channels", "channels_rabbitmq_threaded"]
            CHANNEL_LAYERS = {{"default": {{"BACKEND": {BACKEND!r}, "CONFIG": {config!r}}}}}
        """)
    )
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "check_settings", "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    command = [sys.executable, "-m", "django", "check", *args]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60, check=False)


def test_manage_py_check_reports_a_bad_option(tmp_path: Path) -> None:
    result = manage_check(tmp_path, {"expiry": "a minute"})
    assert result.returncode == 1
    assert "channels_rabbitmq_threaded.E001" in result.stderr and "expiry" in result.stderr


def test_manage_py_check_deploy_reports_the_warnings(tmp_path: Path) -> None:
    result = manage_check(tmp_path, {"host": "amqp://guest:guest@rabbit.example/%2F", "heartbeat": 0}, "--deploy")
    output = result.stdout + result.stderr
    for number in (1, 2, 3):
        assert f"channels_rabbitmq_threaded.W00{number}" in output
    assert "channels_rabbitmq_threaded.E" not in output

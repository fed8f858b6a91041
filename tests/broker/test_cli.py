"""`python -m channels_rabbitmq_threaded`: every --help works, bad counts are refused, and `check` gives the hint
that fits each class of connection failure (against the machine's broker, never a mock; a TLS port's failures are
in test_tls.py, against a private node)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from channels_rabbitmq_threaded import __version__
from channels_rabbitmq_threaded.__main__ import advice
from channels_rabbitmq_threaded._config import redact_url

from ..conftest import HOST, ROOT, run_cli
from ..support.private_node import free_port


@pytest.mark.parametrize("command", [[], ["check"], ["bench"]])
def test_help_of_the_program_and_every_subcommand(command: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m channels_rabbitmq_threaded")
    assert "Traceback" not in result.stderr
    if command:
        assert "%2F" in result.stdout  # the default URL, shown as it is


@pytest.mark.parametrize(
    "args",
    [
        ["check", "--count", "0"],
        ["check", "--count", "-3"],
        ["check", "--count", "many"],
        ["bench", "--sequential", "0"],
        ["bench", "--cell-timeout", "0"],
    ],
)
def test_bad_counts_are_refused_with_a_clear_message(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    option = args[1]
    assert f"argument {option}:" in result.stderr
    assert "greater than 0" in result.stderr or "is not an int" in result.stderr


def test_check_passes_against_the_broker() -> None:
    result = run_cli("check", "--host", HOST, "--count", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("OK")
    assert "Traceback" not in result.stderr + result.stdout


def machine_url(user: str = "guest", password: str = "guest", port: int = 5672, vhost: str = "%2F") -> str:
    return f"amqp://{user}:{password}@127.0.0.1:{port}/{vhost}"


@pytest.mark.parametrize(
    ("url", "failure", "hint"),
    [
        (machine_url(port=free_port()), "unreachable", "apt-get install rabbitmq-server"),
        (machine_url(password="not-the-password"), "credentials refused", "rabbitmqctl change_password guest"),
        ("amqp://guest:guest@no-such-host.invalid:5672/%2F", "host not found", "'no-such-host.invalid' does not"),
        (machine_url(port=6379), "not an AMQP server", "does not speak AMQP"),
        (machine_url(vhost="no-such-vhost"), "missing vhost", "rabbitmqctl add_vhost no-such-vhost"),
        (machine_url().replace("amqp://", "amqps://"), "TLS to a plain port", "Use amqp:// for that port"),
    ],
)
def test_check_names_the_failure_and_its_remedy(url: str, failure: str, hint: str) -> None:
    result = run_cli("check", "--host", url, "--count", "1")
    assert result.returncode == 1, result.stdout
    assert "  FAILED: " in result.stdout
    assert f"({failure})" in result.stdout
    assert hint in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    if failure != "unreachable":
        assert "apt-get install" not in result.stdout  # the old advice, wrong for a broker that answers
    reason = result.stdout.split("  FAILED: ", 1)[1].split("\n", 1)[0].rsplit(": ", 1)[-1]
    assert (result.stdout + result.stderr).count(reason) == 1, result.stdout + result.stderr  # said once


@pytest.mark.parametrize(
    ("url", "address"),
    [
        (machine_url(port=(port := free_port())), f"127.0.0.1:{port}"),
        ("amqp://no-such-host.invalid", "no-such-host.invalid:5672"),
    ],
)
def test_check_stops_at_the_tcp_step_when_nothing_listens(url: str, address: str) -> None:
    """Nothing listening and a name that does not resolve are said at the first step: no layer connects."""
    result = run_cli("check", "--host", url, "--count", "1")
    assert result.returncode == 1
    assert f"  FAILED: no TCP connection to {address}: " in result.stdout, result.stdout
    assert "connect, declare queue" not in result.stdout


def test_check_loads_no_benchmark_code() -> None:
    probe = (
        "import sys\n"
        "from channels_rabbitmq_threaded.__main__ import main\n"
        "try:\n"
        "    main(['check', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(name for name in sys.modules if name.startswith('channels_rabbitmq_threaded.bench')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"channels_rabbitmq_threaded {__version__}"


def test_check_takes_the_url_from_the_environment_or_from_django_settings(tmp_path) -> None:
    from_environment = subprocess.run(
        [sys.executable, "-m", "channels_rabbitmq_threaded", "check", "--count", "1"],
        capture_output=True, text=True, timeout=90, cwd=ROOT, env={**os.environ, "AMQP_URL": HOST},
    )  # fmt: skip
    assert from_environment.returncode == 0 and f"against {redact_url(HOST)}" in from_environment.stdout
    (tmp_path / "checked_settings.py").write_text(
        "CHANNEL_LAYERS = {'chat': {'BACKEND': 'channels_rabbitmq_threaded.core.RabbitmqChannelLayer',"
        f" 'CONFIG': {{'host': {HOST!r}, 'groups_exchange': 'check-from-django'}}}}}}\n"
    )
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "checked_settings", "PYTHONPATH": str(tmp_path)}
    environment.pop("AMQP_URL", None)
    from_django = subprocess.run(
        [sys.executable, "-m", "channels_rabbitmq_threaded", "check", "--django", "chat", "--count", "1"],
        capture_output=True, text=True, timeout=90, cwd=ROOT, env=environment,
    )  # fmt: skip
    assert from_django.returncode == 0, from_django.stdout + from_django.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "channels_rabbitmq_threaded", "check", "--django"],
        capture_output=True, text=True, timeout=90, cwd=ROOT, env=environment,
    )  # fmt: skip
    assert missing.returncode == 2 and "CHANNEL_LAYERS has no 'default'" in missing.stderr


def test_tls_files_are_refused_for_a_plain_url() -> None:
    result = run_cli("check", "--host", machine_url(), "--cafile", "/nonexistent.pem")
    assert result.returncode == 2
    assert "amqps://" in result.stderr


def test_advice_fills_in_the_url() -> None:
    hint = advice("amqp://alice:x@rabbit.example.com:5672/shop", "ACCESS_REFUSED - Login was refused")
    assert "user 'alice'" in hint and "set_permissions -p shop alice" in hint
    assert advice("amqp://a:b@h/%2F", "something nobody foresaw") == "See the reason above and the broker's log."

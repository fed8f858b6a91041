"""docs/quickstart.md, run as written: its blocks make a project in a temporary directory, which runs under Daphne
and under Uvicorn, is driven by the page's websocket client and its `manage.py shell` send, and stops on SIGTERM.

The only change made to the page's text: port 8000 becomes a free port, so that runs never collide.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import ROOT, connections_of
from ..support.private_node import free_port

PAGE = ROOT / "docs" / "quickstart.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
FILE_COMMENT = re.compile(r"# (?P<path>[\w/.]+\.py)(?P<how>: add at the end|: replace its contents)?$")

pytestmark = pytest.mark.timeout(240)


def blocks() -> list[tuple[str, str]]:
    return [(language, text) for language, text in FENCE.findall(PAGE.read_text())]


def shell_block(starting_with: str) -> str:
    (text,) = [text for language, text in blocks() if language == "sh" and text.startswith(starting_with)]
    return text


def environment() -> dict[str, str]:
    """The test's interpreter's scripts (django-admin, daphne, uvicorn) first on PATH, as in an activated venv."""
    scripts = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": scripts + os.pathsep + os.environ["PATH"], "PYTHONUNBUFFERED": "1"}


def run(command: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", "-e", "-c", command], cwd=cwd, env=environment(), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
    return result


def make_project(directory: Path, port: int) -> None:
    run(shell_block("django-admin startproject"), directory)
    for language, text in blocks():
        first_line = text.partition("\n")[0]
        match = FILE_COMMENT.match(first_line) if language == "python" else None
        if match is None:
            continue
        path = directory / match["path"]
        text = text.replace("8000", str(port))
        if match["how"] == ": add at the end":
            path.write_text(path.read_text() + "\n" + text)
        else:
            path.write_text(text)


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_the_quickstart_runs_as_written(tmp_path: Path, server: str) -> None:
    port = free_port()
    make_project(tmp_path, port)
    command = shell_block(server).strip().replace("8000", str(port))
    log = (tmp_path / "server.log").open("w+")
    process = subprocess.Popen(
        ["bash", "-c", f"exec {command}"], cwd=tmp_path, env=environment(), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while not accepts(port):
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.2)
        client = subprocess.Popen(
            [sys.executable, "client.py"], cwd=tmp_path, env=environment(), stdout=subprocess.PIPE, text=True
        )
        assert client.stdout is not None
        assert client.stdout.readline() == '{"text": "hello"}\n'
        run(shell_block("python manage.py shell"), tmp_path)
        assert client.stdout.readline() == '{"text": "from the shell"}\n'
        assert client.wait(30) == 0
        process.send_signal(signal.SIGTERM)
        # Daphne exits with 0; Uvicorn, after its graceful shutdown, raises the signal again (exit by SIGTERM).
        assert process.wait(15) == (0 if server == "daphne" else -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
    output = (tmp_path / "server.log").read_text()
    assert "Traceback" not in output and "ERROR" not in output, output
    queues = set(re.findall(r"connection name 'channels_rabbitmq_threaded (channels_\w+) consumer'", output))
    assert len(queues) == 1, output  # the LOGGING block shows the layer's INFO lines, and no pika lines
    assert "pika" not in output
    assert output.count("Closed the channel layer's connections to RabbitMQ") == 1, output  # not printed twice
    assert "Closed the channel layer's connections to RabbitMQ" in output
    assert connections_of(queues.pop()) == []  # closed at exit by the layer's atexit hook


def test_the_quickstart_settings_let_manage_py_check_report_a_bad_option(tmp_path: Path) -> None:
    make_project(tmp_path, free_port())
    settings = tmp_path / "mysite" / "settings.py"
    settings.write_text(settings.read_text().replace('"CONFIG": {"host"', '"CONFIG": {"capacity": 0, "host"'))
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=tmp_path, env=environment(), capture_output=True, text=True
    )
    assert result.returncode != 0 and "channels_rabbitmq_threaded.E001" in result.stderr, result.stderr

"""Start the example site: Daphne (WebSockets), gunicorn (pages and posts), a Celery prefork worker (jobs).

    python docs/example/run.py [--amqp URL] [--http-port 8000] [--ws-port 8001]

then open http://127.0.0.1:8000/ in two browser windows. Ctrl-C (SIGINT), SIGTERM (`kill PID`) and SIGHUP (the
terminal closed) stop everything: each server and worker gets SIGTERM, then SIGKILL after 15 s. The end-to-end
tests start the site with `start_site` from this file, so what they test is what this command runs.

Theory of operation: three kinds of process, as on a real hybrid site, each started in a session of its own with
its output in a log file, all pointed at one RabbitMQ (the channel layer and Celery's broker) through the
environment (see chatsite/settings.py). `start_site` returns once the two servers accept connections and the
Celery worker says it is ready; `Site.stop` ends them all.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"


@dataclass
class Site:
    http_url: str
    ws_url: str
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def start_site(
    amqp_url: str = DEFAULT_AMQP,
    http_port: int = 8000,
    ws_port: int = 8001,
    logs: Path | None = None,
    environment: dict[str, str] | None = None,
) -> Site:
    logs = logs or Path(tempfile.mkdtemp(prefix="example-site-"))
    ws_url = f"ws://127.0.0.1:{ws_port}"
    env = {
        **os.environ,
        **(environment or {}),
        "AMQP_URL": amqp_url,
        "EXAMPLE_ASGI_URL": ws_url,
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "PYTHONUNBUFFERED": "1",
    }
    python = sys.executable
    commands = {
        "daphne": [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(ws_port), "chatsite.asgi:application"],
        "gunicorn": [
            python, "-m", "gunicorn", "--bind", f"127.0.0.1:{http_port}", "--workers", "2", "--threads", "4",
            "chatsite.wsgi:application",
        ],
        "celery": [
            python, "-m", "celery", "-A", "chatsite", "worker", "--pool", "prefork", "--concurrency", "2",
            "--loglevel", "INFO", "--without-mingle", "--without-gossip", "--without-heartbeat",
            "--hostname", f"chat-{ws_port}@%h",  # unique per site: two sites may share a broker
        ],
    }  # fmt: skip
    site = Site(f"http://127.0.0.1:{http_port}", ws_url, logs)
    try:
        for name, command in commands.items():
            with open(logs / f"{name}.log", "wb") as out:
                site.processes[name] = subprocess.Popen(
                    command, cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
        _wait_until(lambda: _accepts(http_port) and _accepts(ws_port), site, "the servers to listen")
        _wait_until(lambda: " ready." in site.log("celery"), site, "the Celery worker to be ready")
    except BaseException:
        site.stop()
        raise
    return site


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
    except OSError:
        return False
    return True


def _wait_until(ready, site: Site, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        for name, process in site.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{site.log(name)[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g}s for {what}; logs in {site.logs}")
        time.sleep(0.2)


class Stopped(BaseException):
    """SIGINT, SIGTERM or SIGHUP arrived: unwind to the `finally` that stops the site."""


def _stop_on_signal(signum: int, _frame: object) -> None:
    raise Stopped(signal.Signals(signum).name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amqp", default=os.environ.get("AMQP_URL", DEFAULT_AMQP), help="RabbitMQ URL")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--ws-port", type=int, default=8001)
    args = parser.parse_args()
    # Before start_site, so that a signal during start-up stops it too. SIGINT as well: a process started in the
    # background of a non-interactive shell inherits SIGINT ignored, and Ctrl-C must still stop the site.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)
    try:
        site = start_site(args.amqp, args.http_port, args.ws_port)  # stops what it started if interrupted
    except (KeyboardInterrupt, Stopped):
        return
    try:  # from here on every signal stops the site: also one that arrives while the line below is printed
        print(f"Open {site.http_url}/ (in two windows to see messages go round). Logs: {site.logs}. Ctrl-C stops.")
        sys.stdout.flush()
        while all(process.poll() is None for process in site.processes.values()):
            time.sleep(1)
        print("a process ended; see its log in", site.logs)
    except (KeyboardInterrupt, Stopped):
        pass
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second signal must not cut the stop short
            signal.signal(signum, signal.SIG_IGN)
        site.stop()


if __name__ == "__main__":
    main()

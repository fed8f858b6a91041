"""Run channels_redis's own published tests against this layer, unchanged, through a stand-in package of ours.

    python -m tests.support.conformance.run [pytest arguments]

Downloads the sdist of channels_redis `PINNED` from the package index (cached), takes its `tests/test_core.py`,
`tests/test_pubsub.py` and its pytest configuration (`setup.cfg`) into a temporary folder, and runs them with this
folder first on the path: there `channels_redis` is our stand-in (`channels_redis/`), whose layers are this
project's, on the broker at AMQP_URL. `conformance_plugin.py` scopes each test's names on the broker and marks the
tests that read channels_redis's internals (skipped) or check what this layer does differently (expected to fail,
each with its reason). Afterwards it deletes the queues and exchanges the run made (all under its own prefix).
Nothing of channels_redis is kept in this repository.
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PINNED = "4.3.0"
HOST = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "channels_rabbitmq_threaded" / "conformance"
TAKEN = ("tests/test_core.py", "tests/test_pubsub.py", "setup.cfg")


def sdist() -> Path:
    archive = CACHE / f"channels_redis-{PINNED}.tar.gz"
    if not archive.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             f"channels_redis=={PINNED}", "--dest", str(CACHE)],
            check=True,
        )  # fmt: skip
    return archive


def main(arguments: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="conformance-") as folder, tarfile.open(sdist()) as archive:
        for name in TAKEN:
            member = archive.getmember(f"channels_redis-{PINNED}/{name}")
            target = Path(folder) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
        run = secrets.token_hex(4)
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), str(CHECKOUT)]),
            "CONFORMANCE_RUN": run,
        }
        command = [sys.executable, "-m", "pytest", "-p", "conformance_plugin", "-p", "no:cacheprovider", "-rxs",
                   "tests/test_core.py", "tests/test_pubsub.py", *arguments]  # fmt: skip
        try:
            return subprocess.run(command, cwd=folder, env=environment, check=False).returncode
        finally:
            clean_up(f"conformance-{run}")


def clean_up(prefix: str) -> None:
    """Delete the queues and exchanges whose names start with `prefix` (listed by rabbitmqctl, deleted over AMQP)."""
    import pika

    ctl = shlex.split(os.environ.get("RABBITMQCTL", "rabbitmqctl"))
    connection = pika.BlockingConnection(pika.URLParameters(HOST))
    try:
        channel = connection.channel()
        for listing, delete in (("list_queues", channel.queue_delete), ("list_exchanges", channel.exchange_delete)):
            result = subprocess.run([*ctl, "-q", listing, "name"], capture_output=True, text=True, check=False)
            for name in result.stdout.split():
                if name.startswith(prefix):
                    delete(name)
    finally:
        connection.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

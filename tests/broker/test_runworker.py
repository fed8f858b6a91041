"""`python manage.py runworker` with this layer: two worker processes share the jobs of a normal channel."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from ..conftest import HOST, ROOT, TEST_EXCHANGE


@pytest.fixture
def runworkers() -> Iterator[list[subprocess.Popen]]:
    """Two `python manage.py runworker jobs.runworker` processes on this session's exchange and queues."""
    environment = {**os.environ, "AMQP_URL": HOST, "TEST_GROUPS_EXCHANGE": TEST_EXCHANGE}
    command = [
        sys.executable,
        str(ROOT / "tests" / "support" / "django_project" / "manage.py"),
        "runworker",
        "jobs.runworker",
    ]
    workers = [subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL) for _ in range(2)]
    yield workers
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()


@pytest.mark.timeout(120)
async def test_runworker_processes_each_job_once(make_layer, runworkers) -> None:
    layer = make_layer(normal_channel_prefix=f"{TEST_EXCHANGE}.")
    inbox = await layer.new_channel()
    for n in range(20):
        await layer.send("jobs.runworker", {"type": "job.run", "id": n, "reply_to": inbox})
    replies = [await asyncio.wait_for(layer.receive(inbox), 60) for _ in range(20)]
    assert sorted(reply["id"] for reply in replies) == list(range(20))  # each job once
    assert {reply["pid"] for reply in replies} <= {worker.pid for worker in runworkers}

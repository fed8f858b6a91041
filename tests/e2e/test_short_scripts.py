"""Short scripts that use the layer and exit: every way a script can end leaves no error line, no traceback and
no hang, whether it closes the layer, returns at once or is killed mid-send."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from ..conftest import HOST, ROOT, TEST_EXCHANGE

RUNS = 20  # per script


# Each script is what users write: build the layer, do one thing, exit. Logging at INFO shows everything the layer
# and pika say; none of it may be an ERROR, and no traceback may appear.
PREAMBLE = f"""
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
from asgiref.sync import async_to_sync
from channels_rabbitmq_threaded import RabbitmqChannelLayer
layer = RabbitmqChannelLayer(host={HOST!r}, groups_exchange={TEST_EXCHANGE!r})
"""


RECEIVE = """
async def receive_one():
    channel = await layer.new_channel()
    await layer.group_add("script", channel)
    await layer.send(channel, {"type": "x"})
    await layer.receive(channel)
"""


SCRIPTS = {
    "group_send_sync": 'layer.group_send_sync("script", {"type": "x"})',
    "async_to_sync(group_send)": 'async_to_sync(layer.group_send)("script", {"type": "x"})',
    "group_send_sync, close()": 'layer.group_send_sync("script", {"type": "x"})\nasync_to_sync(layer.close)()',
    "async_to_sync, close()": 'async_to_sync(layer.group_send)("script", {"type": "x"})\nasync_to_sync(layer.close)()',
    "receiver": RECEIVE + "async_to_sync(receive_one)()",
    "receiver, close()": RECEIVE + "async_to_sync(receive_one)()\nasync_to_sync(layer.close)()",
    "new_channel, exit at once": "async_to_sync(layer.new_channel)()",
}


def run_script(body: str) -> subprocess.CompletedProcess[str]:
    code = PREAMBLE + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)


def assert_quiet(output: str) -> None:
    bad = [line for line in output.splitlines() if line.startswith(("ERROR", "CRITICAL")) or "Traceback" in line]
    assert not bad, output


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_short_scripts_exit_cleanly(name: str) -> None:
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run_script, [SCRIPTS[name]] * RUNS))
    for result in results:
        assert result.returncode == 0, result.stderr
        assert_quiet(result.stdout + result.stderr)


def test_a_script_killed_with_sigterm_mid_send_exits_quietly() -> None:
    code = PREAMBLE + textwrap.dedent("""
        n = 0
        while True:
            layer.group_send_sync("script", {"type": "x", "n": n})
            n += 1
            if n == 10:
                print("sending", flush=True)
    """)
    for _ in range(RUNS):
        process = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
        )
        assert process.stdout is not None
        assert process.stdout.readline() == "sending\n"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == -signal.SIGTERM
        assert_quiet(stdout + stderr)

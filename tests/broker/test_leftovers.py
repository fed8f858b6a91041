"""A test session leaves nothing on the broker: every queue and exchange it named is gone once it ends."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from ..conftest import BROKER_CTL, ROOT, broker_ctl
from ..support.leftovers import names_on_broker

SESSION = [
    "tests/broker/test_normal_channels.py::test_a_send_before_any_receiver_is_kept",  # a normal channel's queue
    # a groups exchange and its twins
    "tests/broker/test_layer.py::test_group_send_right_after_group_add_reaches_the_member",
]


def names_of_tests() -> set[str]:
    return {name for kind in ("queues", "exchanges") for name in names_on_broker(BROKER_CTL, kind) if "test-" in name}


def test_a_session_removes_every_name_it_made() -> None:
    broker_ctl("status")  # skips where there is no rabbitmqctl (the runner outside that root cleans up)
    before = names_of_tests()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", *SESSION]
    environment = {**os.environ, "TEST_RUN_PREFIX": f"test-leftovers-{secrets.token_hex(3)}"}
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert names_of_tests() - before == set()

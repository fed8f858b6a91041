"""The soak (tests/support/soak.py) in CI: about a minute of mixed traffic from 3 processes through random
connection cuts."""

from __future__ import annotations

import os

import pytest

from ..support.private_node import PrivateNode
from ..support.soak import run_soak

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))


@pytest.mark.timeout(SOAK_SECONDS + 240)
def test_soak_loses_nothing_unexplained(amqp_node: PrivateNode) -> None:
    totals = run_soak(amqp_node, seconds=SOAK_SECONDS, processes=3)
    assert totals.duplicates == 0
    assert totals.unexplained_lost == 0, totals
    assert totals.delivered > 0 and totals.delivered_after_last_cut > 0, "traffic flows after the last cut"

"""Short chaos runs (`tests/support/chaos.py`), mixed traffic with every call counted: seeded network faults on every
connection; and node faults on a three-node cluster in network namespaces, with quorum process queues.

`python -m tests.support.chaos --seconds 300 [--node-faults]` runs a long one; the figures are in docs/operations.md and
docs/deployment.md.
"""

from __future__ import annotations

import pytest

from ..support.chaos import run


@pytest.mark.timeout(240)
def test_a_chaos_run_loses_nothing_confirmed_and_hides_short_faults() -> None:
    totals = run(seconds=20, seed=7)
    report = totals.report(20, 7)
    assert totals.confirmed > 0 and sum(totals.faults.values()) > 0, report
    assert totals.confirmed_but_lost == 0, report
    assert totals.duplicates == 0, report
    assert totals.out_of_order == 0, report
    assert totals.hung == 0, report
    assert not totals.raised, report  # every fault is shorter than connect_timeout: no caller sees one


@pytest.mark.timeout(600)
def test_node_faults_under_traffic_lose_and_duplicate_nothing_confirmed_with_quorum_queues(netns_three) -> None:
    """A node killed -9, a node's app stopped, a node cut off from the others: one at a time, each kind once."""
    totals = run(seconds=50, seed=3, quiet=30, cluster=netns_three, queue_type="quorum")
    report = totals.report(50, 3)
    assert totals.confirmed > 0 and sum(totals.faults.values()) >= 2, report
    assert totals.confirmed_but_lost == 0, report  # every send, and every group copy not refused
    assert totals.group_copies_missed <= totals.group_copies_refused, report  # refused: logged and counted
    assert totals.duplicates == 0, report
    assert totals.hung == 0, report
    # Not asserted: order. On 4.3 a run reordered 28 of 9,681 (deployment.md, "Losing a node"), on 3.10 none.

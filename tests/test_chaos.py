"""A short chaos run (`tests/chaos.py`): seeded network faults on every connection, mixed traffic, every call counted.

`python -m tests.chaos --seconds 300` runs a long one; the figures are in docs/operations.md.
"""

from __future__ import annotations

import pytest

from .chaos import run

pytestmark = pytest.mark.slow


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

"""Nothing grows as channels come and go: the churn (tests/support/churn.py) in CI, judged by what the process keeps."""

from __future__ import annotations

import pytest

from ..support.churn import CACHES, run_churn

PER_CHANNEL = {  # every structure kept by channel, group, message or delivery: empty once the churn is over
    "channel_buffers", "recent_reads", "expiry_entries", "memberships", "membership_ages", "unacknowledged_ids",
    "binds_in_flight", "delayed_unbinds", "stale_bindings", "normal_consumers", "unacknowledged_deliveries",
    "declares_in_flight", "queues_left_behind",
}  # fmt: skip
CACHED = {"message_ids", "checked_names", "declared_queues", "normal_queues"}  # bounded caches, made small


@pytest.mark.timeout(300)
def test_a_process_that_churns_thousands_of_channels_keeps_nothing_for_them() -> None:
    result = run_churn(seconds=30, warmup=10, trace=True)
    assert result.end is not None and result.warm is not None
    churned = result.channels - result.warm_channels
    assert churned >= 2_000, f"only {churned} channels churned while traced: the run says little"
    assert result.received > 0
    assert set(result.end.bookkeeping) == PER_CHANNEL | CACHED
    assert {name: result.end.bookkeeping[name] for name in PER_CHANNEL} == dict.fromkeys(PER_CHANNEL, 0)
    assert all(result.end.bookkeeping[name] <= CACHES for name in CACHED), result.end.bookkeeping
    # what the package's code allocated after the warm-up and still holds: about 1 KB a channel when buffers leaked
    assert result.retained_per_channel < 100, "\n".join(result.top_retained)

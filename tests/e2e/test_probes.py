"""The probes of `benchmarks/` still run: each one, with tiny counts, against the machine's broker.

They reach into the layer's internals (some time a private method by wrapping it), so a rename or a move breaks
them first; this runs each once, so such a break shows here rather than the next time someone measures. What they
measure is not judged: only that they run to the end without a traceback. The probes that start private nodes or
clusters (`cluster.py`, `node_loss.py`, `crash_cost.py`, `queue_types.py`, `blip.py` and the 4.x ones) are left to
their own runs: they take minutes.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ..conftest import HOST, ROOT

PROBES = {
    "handoff.py": ["--rounds", "50"],
    "send_latency.py": ["--count", "20"],
    "bulk_timeline.py": ["--groups", "10", "--rounds", "1"],
    "sync_cpu.py": ["--calls", "20"],
    "bind_channels.py": ["--binds", "50", "1", "2"],
    "publish.py": ["--count", "20", "--runs", "1"],
    "bulk.py": ["--groups", "10", "--runs", "1"],
    "crossings.py": ["--count", "20", "--rounds", "1"],
    "wake_back.py": ["--rounds", "20", "--runs", "1"],
}
TAKES_NO_HOST = {"handoff.py", "wake_back.py"}


@pytest.mark.parametrize("probe", list(PROBES))
def test_the_probe_runs_to_the_end(probe: str) -> None:
    host = [] if probe in TAKES_NO_HOST else ["--host", HOST]
    command = [sys.executable, str(ROOT / "benchmarks" / probe), *host, *PROBES[probe]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Traceback" not in output, output

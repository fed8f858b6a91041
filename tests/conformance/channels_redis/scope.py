"""The test being run, set by the runner's plugin (`tests/conformance/plugin.py`): it scopes every broker name."""

from __future__ import annotations

current = "none"

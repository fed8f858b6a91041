"""The test being run, set by the runner's plugin (`tests/support/conformance/conformance_plugin.py`): it scopes every
broker name, under the run's own prefix (`PREFIX`, which the runner deletes everything under afterwards)."""

from __future__ import annotations

import os

PREFIX = f"conformance-{os.environ.get('CONFORMANCE_RUN', 'manual')}"
current = "none"

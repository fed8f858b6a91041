"""Run a benchmark against a private two-node cluster (3.10 from this machine, or 4.0 from the cached root).

    python benchmarks/cluster.py [--rabbitmq4] COMMAND...

Starts nodes A and B (B joined to A) with their own ports and data, runs COMMAND with AMQP_URL aimed at A,
AMQP_URL_B at B and RABBITMQCTL at A, then stops both. For example
`python benchmarks/cluster.py --rabbitmq4 python benchmarks/crash_cost.py` (the victim on A, the publisher on B).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.private_node import start_cluster
from tests.rabbitmq4 import build_root


def main(arguments: list[str]) -> int:
    root = build_root() if arguments[:1] == ["--rabbitmq4"] else None
    command = arguments[1:] if root else arguments
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    if root is not None:
        (root / "tmp").mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="crt-cluster-", dir=root / "tmp" if root else None))
    (a, b), (port_a, port_b) = start_cluster(base, root=root)
    try:
        environment = {
            **os.environ,
            "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{port_a}/%2F",
            "AMQP_URL_B": f"amqp://guest:guest@127.0.0.1:{port_b}/%2F",
            "RABBITMQCTL": shlex.join(a.ctl_command()),
        }
        print(f"cluster: {a.nodename} on {port_a}, {b.nodename} on {port_b}", file=sys.stderr)
        return subprocess.run(command, env=environment, check=False).returncode
    finally:
        b.stop()
        a.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

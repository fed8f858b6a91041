"""Run a benchmark against a private two-node cluster (3.10 from this machine, or 4.3 from the cached root).

    python benchmarks/cluster.py [--rabbitmq4] COMMAND...

Starts nodes A and B (B joined to A) with their own ports and data, runs COMMAND with AMQP_URL aimed at A,
AMQP_URL_B at B and RABBITMQCTL at A, then stops both. For example
`python benchmarks/cluster.py --rabbitmq4 python benchmarks/crash_cost.py` (the victim on A, the publisher on B).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.private_node import private_cluster
from tests.rabbitmq4 import build_root


def main(arguments: list[str]) -> int:
    root = build_root() if arguments[:1] == ["--rabbitmq4"] else None
    command = arguments[1:] if root else arguments
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    with private_cluster(2, root=root) as ((a, b), (port_a, port_b)):
        environment = {
            **os.environ,
            "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{port_a}/%2F",
            "AMQP_URL_B": f"amqp://guest:guest@127.0.0.1:{port_b}/%2F",
            "RABBITMQCTL": shlex.join(a.ctl_command()),
        }
        print(f"cluster: {a.nodename} on {port_a}, {b.nodename} on {port_b}", file=sys.stderr)
        return subprocess.run(command, env=environment, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Run a benchmark against a private cluster (3.10 from this machine, or 4.3 from the cached root).

    python benchmarks/cluster.py [--rabbitmq4] [--nodes 2] COMMAND...

Starts nodes A, B (and C...; each joined to A) with their own ports and data, runs COMMAND with AMQP_URL aimed at
A, AMQP_URL_B at B, AMQP_URLS at all of them (space-separated) and RABBITMQCTL at A, then stops them. For example
`python benchmarks/cluster.py --rabbitmq4 python benchmarks/crash_cost.py` (the victim on A, the publisher on B).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.private_node import private_cluster
from tests.support.rabbitmq4 import build_root


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("--rabbitmq4", action="store_true")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(arguments)
    if not args.command or args.nodes < 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = build_root() if args.rabbitmq4 else None
    with private_cluster(args.nodes, root=root) as (nodes, ports):
        urls = [f"amqp://guest:guest@127.0.0.1:{port}/%2F" for port in ports]
        environment = {
            **os.environ,
            "AMQP_URL": urls[0],
            "AMQP_URL_B": urls[1],
            "AMQP_URLS": " ".join(urls),
            "RABBITMQCTL": shlex.join(nodes[0].ctl_command()),
        }
        named = ", ".join(f"{node.nodename} on {port}" for node, port in zip(nodes, ports, strict=True))
        print(f"cluster: {named}", file=sys.stderr)
        return subprocess.run(args.command, env=environment, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

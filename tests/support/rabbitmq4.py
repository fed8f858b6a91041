"""RabbitMQ 4 for the tests: a private root built from Debian's packages, and a node started from it.

    python -m tests.support.rabbitmq4 pytest -m "broker and not node and not slow"
    RABBITMQ4_SUITE=trixie python -m tests.support.rabbitmq4 ...         (RabbitMQ 4.0.5 from Debian 13 instead)

builds, once, a root file system with `rabbitmq-server` from a Debian suite (`mmdebstrap`, from Debian's archive):
by default sid's, RabbitMQ 4.3.6 (Khepri only, Erlang 29), the release new deployments run; `trixie` gives 4.0.5
(Mnesia, Erlang 27). The version is pinned (`PINNED`): a root that holds another is refused, so that what CI tests
is what the docs name. sid's Release file in the archive is past its date, so the build tells apt not to check
that, and the root gets an /etc/hosts that names localhost (a 4.3 node dies without one). The root is cached under
``~/.cache/channels_rabbitmq_threaded/``;
starts a private node from it on free ports (`private_node.PrivateNode` with a root: chroot, its own /proc, the
host's network) that refuses what RabbitMQ 4.3 refuses by default (transient non-exclusive queues, global QoS);
runs the command with ``AMQP_URL`` and ``RABBITMQCTL`` aimed at that node (and ``RABBITMQ4_ROOT`` naming the root,
for the tests that start clusters of their own); stops the node; and exits with the
command's status. When the root cannot be built or the node does not start, it says why and exits with status 3:
it never skips. Needs root (chroot, a mount namespace), as CI has.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .private_node import PrivateNode, free_port

PINNED = {"sid": "4.3.6", "trixie": "4.0.5"}  # the RabbitMQ each suite gives (Debian's archive, frozen here)
SUITE = os.environ.get("RABBITMQ4_SUITE", "sid")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "channels_rabbitmq_threaded"
ROOT = CACHE / f"rabbitmq-{SUITE}-root"
# What RabbitMQ 4.3 refuses by default, refused here too, so that the suite proves the layer uses none of it.
REFUSE_AS_4_3 = """deprecated_features.permit.transient_nonexcl_queues = false
deprecated_features.permit.global_qos = false
"""


class Unavailable(Exception):
    """RabbitMQ 4 cannot be had on this machine; the message says why and what to do."""


def rabbitmq_version(root: Path) -> str:
    result = subprocess.run(
        ["chroot", str(root), "dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


def debian_root(root: Path, suite: str, packages: str, finish: Callable[[Path], str]) -> Path:
    """`root`, built once with mmdebstrap from Debian `suite` with `packages` (comma-separated) if it is missing or
    incomplete. `finish(building)` checks the new root (raising `Unavailable`) and returns the version it pins."""
    built = root / ".built"  # written last: a root without it is incomplete and is built again
    if built.exists():
        return root
    if shutil.which("mmdebstrap") is None:
        raise Unavailable("mmdebstrap is not installed: apt-get install mmdebstrap (.ci/run does)")
    building = CACHE / f"building-{root.name}-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"building a Debian {suite} root with {packages} in {root} (once)", file=sys.stderr)
    command = [
        "mmdebstrap", "--variant=apt", f"--include={packages}",
        "--aptopt=Acquire::Check-Valid-Until \"false\"",
        "--customize-hook=printf '127.0.0.1 localhost\\n::1 localhost\\n' > \"$1/etc/hosts\"",
        suite, str(building),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        raise Unavailable(f"mmdebstrap failed ({result.returncode}):\n{result.stderr[-3000:]}")
    try:
        version = finish(building)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    (building / built.name).write_text(version + "\n")
    shutil.rmtree(root, ignore_errors=True)
    building.rename(root)
    return root


def build_root() -> Path:
    """The cached root with RabbitMQ, built if it is missing or incomplete."""
    if SUITE not in PINNED:
        raise Unavailable(f"RABBITMQ4_SUITE must be one of {sorted(PINNED)}, not {SUITE!r}")

    def pinned(building: Path) -> str:
        version = rabbitmq_version(building)
        if version.split("-")[0] != PINNED[SUITE]:
            raise Unavailable(f"Debian {SUITE} gives rabbitmq-server {version!r}, not the pinned {PINNED[SUITE]}")
        return version

    return debian_root(ROOT, SUITE, "rabbitmq-server", pinned)


def start_node(root: Path) -> PrivateNode:
    port = free_port()
    name = f"crt_r4_{os.getpid()}_{secrets.token_hex(3)}"
    node = PrivateNode(root / "tmp" / name, name, f"listeners.tcp.default = {port}\n{REFUSE_AS_4_3}", root=root)
    node.port = port
    node.start()
    return node


def main(command: list[str]) -> int:
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        root = build_root()
        node = start_node(root)
    except (Unavailable, RuntimeError, OSError) as exc:
        print(f"rabbitmq4: NO RABBITMQ 4 NODE: {exc}", file=sys.stderr)
        return 3
    version = (ROOT / ".built").read_text().strip()
    print(f"rabbitmq4: RabbitMQ {version} as {node.nodename} on port {node.port}", file=sys.stderr)
    environment = {
        **os.environ,
        "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{node.port}/%2F",
        "RABBITMQCTL": shlex.join(node.ctl_command()),
        "RABBITMQ_4_REFUSES": "transient_nonexcl_queues",  # tests/broker/test_rabbitmq4.py checks the node
        "RABBITMQ4_ROOT": str(root),  # tests/node/test_partition.py starts its cluster from it
    }
    try:
        return subprocess.run(command, env=environment, check=False).returncode
    finally:
        node.stop()
        shutil.rmtree(node.base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

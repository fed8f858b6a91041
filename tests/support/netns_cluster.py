"""A RabbitMQ cluster whose nodes are hosts of their own, so that a node can vanish and the network can split.

Each node runs in a network namespace of its own (`ip netns`), with one address on a veth whose other end is a port
of a bridge in the test's namespace; the bridge has an address too, so the test process reaches every node through
it, as a client host would. Nothing else is attached: traffic stays between the test and the namespaces it made.
Nodes are named by address (`crt@10.213.K.1N`, Erlang long names), so no name needs resolving, and each namespace
has its own epmd. Every node is configured with `cluster_partition_handling = pause_minority` (RabbitMQ 3.x; 4.3
accepts the key and ignores it: Khepri's Raft majority decides instead) and a short `net_ticktime`
(`NET_TICKTIME`), so that the brokers notice a partition within a test.

The faults, each undone by `heal`:
- `partition(node)`: the node and the other nodes no longer reach each other, while the test still reaches every
  node. Each side's neighbour entry for the other side names a link address that nobody has, so frames between
  them are silently lost: no reset, no "unreachable", exactly what a cut between switches does.
- `vanish(node)`: the node's port on the bridge goes down: nobody reaches it, the test included (a host that lost
  power, a cable pulled). Its connections see silence, never a reset.
- `PrivateNode.kill9`: the node's VM killed, its host staying (peers see resets at once).

Needs root (`ip netns`, veth, a bridge), as CI has. `netns_cluster` removes every namespace, link and process it
made, whatever happens.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .private_node import PrivateNode

NET_TICKTIME = 8  # seconds: an unreachable peer is declared down after 0.75-1.25 of it
UNKNOWN_LINK_ADDRESS = "02:00:00:00:00:01"  # a locally administered MAC that no interface here has
_SERIAL = itertools.count()  # a cluster's namespaces and links may outlive its destroy() by a moment
AMQP_PORT = 5672  # every node has its own namespace, so each can take the usual ports


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of 10.213.0.0/16 that no route of this machine covers (chosen by pid, so runs side by side differ)."""
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    taken = [ipaddress.ip_network(line.split()[0], strict=False) for line in routes.splitlines()
             if line and line.split()[0][0].isdigit()]  # fmt: skip
    for offset in range(250):
        candidate = ipaddress.ip_network(f"10.213.{(os.getpid() + offset) % 250 + 1}.0/24")
        if not any(candidate.overlaps(route) for route in taken):
            return candidate
    raise RuntimeError("no free /24 in 10.213.0.0/16")


class NamespacedNode(PrivateNode):
    """A private node inside network namespace `namespace`, at `address`, listening on `AMQP_PORT` there."""

    def __init__(self, base: Path, namespace: str, address: str, home: Path, root: Path | None = None) -> None:
        config = (
            f"listeners.tcp.default = {AMQP_PORT}\n"
            "loopback_users = none\n"  # guest connects from the bridge's address, not from the loopback
            "cluster_partition_handling = pause_minority\n"
        )
        self.namespace = namespace
        self.address = address
        super().__init__(base, "crt", config, home=home, root=root)
        self.nodename = f"crt@{address}"
        self.port = AMQP_PORT
        (base / "rabbitmq-env.conf").write_text("")  # not the machine's, which binds epmd and Erlang to 127.0.0.1
        self.env.update(
            RABBITMQ_CONF_ENV_FILE=self._seen_inside(base / "rabbitmq-env.conf"),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_USE_LONGNAME="true",
            RABBITMQ_NODE_PORT=str(AMQP_PORT),
            RABBITMQ_DIST_PORT="25672",
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=f"-kernel net_ticktime {NET_TICKTIME}",
            RABBITMQ_CTL_ERL_ARGS=f"-kernel net_ticktime {NET_TICKTIME}",
        )

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.address}:{AMQP_PORT}/%2F"

    def command(self, program: str, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *super().command(program, *args)]

    def ctl_command(self) -> list[str]:
        return ["env", "RABBITMQ_USE_LONGNAME=true", *super().ctl_command()]


class NamespacedCluster:
    """`size` nodes, each in its own namespace on one bridge, joined into one cluster; see the module's faults."""

    def __init__(self, size: int = 3, root: Path | None = None) -> None:
        self.subnet = free_subnet()
        tag = f"{os.getpid() % 100_000}{next(_SERIAL)}"  # names of 15 characters at most, unique in this process
        self.bridge = f"crtb{tag}"
        self.hosts = list(self.subnet.hosts())
        if root is not None:
            (root / "tmp").mkdir(exist_ok=True)
        self.base = Path(tempfile.mkdtemp(prefix="crt-netns-", dir=root / "tmp" if root else None))
        self.nodes = [
            NamespacedNode(self.base / f"n{i}", f"crt{tag}n{i}", str(self.hosts[10 + i]), self.base / "home", root)
            for i in range(size)
        ]
        self._ports = {node.namespace: f"crt{tag}v{i}" for i, node in enumerate(self.nodes)}

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def build(self) -> None:
        """The bridge, the namespaces and their links, then the nodes, started and joined to the first."""
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.hosts[0]}/{self.subnet.prefixlen}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for node in self.nodes:
            port = self._ports[node.namespace]
            ip("netns", "add", node.namespace)
            ip("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", node.namespace)
            ip("link", "set", port, "master", self.bridge, "up")
            ip("-n", node.namespace, "addr", "add", f"{node.address}/{self.subnet.prefixlen}", "dev", "eth0")
            ip("-n", node.namespace, "link", "set", "eth0", "up")
            ip("-n", node.namespace, "link", "set", "lo", "up")
        threads = [threading.Thread(target=node.start) for node in self.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        first, *others = self.nodes
        for node in others:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.nodename)
            node.ctl("start_app")

    def partition(self, node: NamespacedNode) -> None:
        """Cut `node` off from the other nodes (both ways, silently); the test still reaches it."""
        for other in self.nodes:
            if other is not node:
                self._point(node, other.address, UNKNOWN_LINK_ADDRESS)
                self._point(other, node.address, UNKNOWN_LINK_ADDRESS)

    def vanish(self, node: NamespacedNode) -> None:
        """Take `node`'s port off the bridge: nobody reaches it, and it reaches nobody."""
        ip("link", "set", self._ports[node.namespace], "down")

    def heal(self) -> None:
        """Undo every `partition` and `vanish`."""
        for node in self.nodes:
            ip("link", "set", self._ports[node.namespace], "up")
            for other in self.nodes:
                if other is not node:
                    subprocess.run(["ip", "-n", node.namespace, "neigh", "del", other.address, "dev", "eth0"],
                                   capture_output=True, check=False)  # fmt: skip

    def wait_whole(self, tries: int = 60) -> None:
        """Wait until every node runs its app and sees all the others running (a node paused by `pause_minority`
        resumes some seconds after a heal; one killed or stopped must have been started again). Hang guard:
        `tries` rounds of about a second each, and `ctl`'s own timeout."""
        everyone = {node.nodename for node in self.nodes}
        for _ in range(tries):
            try:
                statuses = [json.loads(node.ctl("cluster_status", "--formatter", "json")) for node in self.nodes]
            except (RuntimeError, subprocess.SubprocessError, ValueError):  # a node still starting, or paused
                statuses = []
            if statuses and all(set(status.get("running_nodes", ())) >= everyone for status in statuses):
                return
            time.sleep(1)
        raise RuntimeError(f"the cluster was not whole again within {tries} tries")

    @staticmethod
    def _point(node: NamespacedNode, address: str, link_address: str) -> None:
        ip("-n", node.namespace, "neigh", "replace", address, "lladdr", link_address, "nud", "permanent", "dev", "eth0")

    def destroy(self) -> None:
        """Stop the nodes, kill whatever still runs in the namespaces (epmd), remove namespaces, links and files."""
        self.heal_quietly()
        for node in reversed(self.nodes):
            with contextlib.suppress(Exception):
                node.stop()
        for node in self.nodes:
            pids = subprocess.run(["ip", "netns", "pids", node.namespace], capture_output=True, text=True).stdout
            for pid in pids.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", node.namespace], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        shutil.rmtree(self.base, ignore_errors=True)

    def heal_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.heal()


@contextlib.contextmanager
def netns_cluster(size: int = 3, root: Path | None = None) -> Iterator[NamespacedCluster]:
    """A `NamespacedCluster` built, yielded, and destroyed afterwards (also when building it failed half-way)."""
    cluster = NamespacedCluster(size, root)
    try:
        cluster.build()
        yield cluster
    finally:
        cluster.destroy()

"""A private RabbitMQ node for tests that need a broker of their own (TLS, faults).

It runs the real scripts from /usr/lib/rabbitmq/bin as the current user, with its own node name, ports, data, logs,
config file, plugins file and HOME (for its Erlang cookie), so the machine's broker on 5672 is never touched.

With `root`, the node runs another RabbitMQ version from a private root file system (`tests/support/rabbitmq4.py` builds
one with RabbitMQ 4.0): its programs run under `chroot`, the server in a mount namespace of its own with its own
/proc (RabbitMQ reads its memory use there), and `base` must lie inside the root. It shares the network, and so
the machine's epmd, with the host.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateNode:
    def __init__(self, base: Path, name: str, config: str, home: Path | None = None, root: Path | None = None) -> None:
        """`home` holds the Erlang cookie; nodes of one cluster must share it (default: a new one under `base`)."""
        self.base = base
        self.root = root
        self.nodename = f"{name}@localhost"
        base.mkdir(parents=True, exist_ok=True)
        home = home or base / "home"
        home.mkdir(exist_ok=True)
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16))
            cookie.chmod(0o400)
        (base / "rabbitmq.conf").write_text(config)
        (base / "enabled_plugins").write_text("[].\n")
        self.env = {
            **os.environ,
            "HOME": self._seen_inside(home),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_PORT": str(free_port()),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_CONFIG_FILE": self._seen_inside(base / "rabbitmq"),
            "RABBITMQ_MNESIA_BASE": self._seen_inside(base / "mnesia"),
            "RABBITMQ_LOG_BASE": self._seen_inside(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": self._seen_inside(base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": self._seen_inside(base / "node.pid"),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0  # the listener the tests connect to, set by the fixture that writes the config

    def _seen_inside(self, path: Path) -> str:
        """`path` as the node's programs see it (inside its root, if it has one)."""
        return str(path if self.root is None else Path("/") / path.relative_to(self.root))

    def command(self, program: str, *args: str) -> list[str]:
        """The command line that runs one of RabbitMQ's programs for this node (in its root, if it has one)."""
        if self.root is None:
            return [str(RABBITMQ_BIN / program), *args]
        return ["chroot", str(self.root), str(RABBITMQ_BIN / program), *args]

    def ctl_command(self) -> list[str]:
        """`rabbitmqctl` aimed at this node, with the environment it needs on the command line."""
        return ["env", f"HOME={self.env['HOME']}", *self.command("rabbitmqctl", "-n", self.nodename)]

    def start(self, timeout: float = 90) -> None:
        log = open(self.base / "server.out", "ab")  # noqa: SIM115 - kept open for the node's life
        command = self.command("rabbitmq-server")
        if self.root is not None:  # its own /proc, in a mount namespace that ends with the server
            proc = self.root / "proc"
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                       f'mount -t proc proc "{proc}" && exec "$@"', "sh", *command]  # fmt: skip
        self.process = subprocess.Popen(command, env=self.env, cwd=self.base, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:  # await_startup fails at once until the node has registered with epmd
            try:
                self.ctl("await_startup", timeout=timeout)
                return
            except RuntimeError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.process.kill()
                    tail = (self.base / "server.out").read_text(errors="replace").splitlines()[-20:]
                    raise RuntimeError(
                        f"private node {self.nodename} did not start; {self.base / 'server.out'} ends:\n"
                        + "\n".join(tail)
                    ) from None
                time.sleep(0.5)

    def ctl(self, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(
            self.command("rabbitmqctl", "-n", self.nodename, *args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def stop(self, keep_data: bool = False) -> None:
        if self.process is None:
            return
        try:
            self.ctl("stop", timeout=60)
        except Exception:
            self.process.kill()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.process = None
        if not keep_data:
            shutil.rmtree(self.base / "mnesia", ignore_errors=True)

    def beam_pid(self) -> int:
        """The Erlang VM's pid (the script started by `start` runs it as a child)."""
        return int((self.base / "node.pid").read_text().strip())

    def kill9(self) -> None:
        """Kill the node as a power cut would: SIGKILL to the VM, no goodbye to anyone."""
        os.kill(self.beam_pid(), signal.SIGKILL)
        assert self.process is not None
        self.process.wait(timeout=30)
        self.process = None

    def freeze(self) -> None:
        os.kill(self.beam_pid(), signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.beam_pid(), signal.SIGCONT)

    def wait_for_port(self, port: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"nothing listens on port {port}")


def start_cluster(base: Path, root: Path | None = None, size: int = 2) -> tuple[list[PrivateNode], list[int]]:
    """`size` private nodes joined to the first, and their ports; with `root`, of the RabbitMQ in that root (`base`
    must lie inside it)."""
    ports = [free_port() for _ in range(size)]
    home = base / "home"
    names = "abcdefgh"[:size]
    nodes = [
        PrivateNode(base / name, f"crt_{name}_{os.getpid()}", f"listeners.tcp.default = {port}\n", home=home, root=root)
        for name, port in zip(names, ports, strict=True)
    ]
    threads = [threading.Thread(target=node.start) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first, *others = nodes
    for node in others:
        node.ctl("stop_app")
        node.ctl("join_cluster", first.nodename)
        node.ctl("start_app")
    return nodes, ports


@contextlib.contextmanager
def private_cluster(size: int, root: Path | None = None) -> Iterator[tuple[list[PrivateNode], list[int]]]:
    """`start_cluster` in a temporary folder (inside `root`, the RabbitMQ to run, if given); the nodes are stopped
    and the folder removed afterwards."""
    if root is not None:
        (root / "tmp").mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="crt-cluster-", dir=root / "tmp" if root else None))
    nodes, ports = start_cluster(base, root=root, size=size)
    try:
        yield nodes, ports
    finally:
        for node in reversed(nodes):
            node.stop()
        shutil.rmtree(base, ignore_errors=True)

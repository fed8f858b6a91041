from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shlex
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pika
import pytest
from channels.exceptions import ChannelFull
from channels.layers import channel_layers

from channels_rabbitmq_threaded import RabbitmqChannelLayer, RabbitmqLayerError
from channels_rabbitmq_threaded._io.link import Link
from channels_rabbitmq_threaded._io.reads import InputReader

from .support.leftovers import remove_prefixed
from .support.netns_cluster import NamespacedCluster, netns_cluster
from .support.private_node import PrivateNode, free_port

HOST = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
# rabbitmqctl for the broker at HOST: the machine's, or the one `python -m tests.support.rabbitmq4` started.
BROKER_CTL = shlex.split(os.environ.get("RABBITMQCTL", "rabbitmqctl"))


class Links(NamedTuple):
    consumer: Link
    publisher: Link


def links(layer: RabbitmqChannelLayer) -> Links:
    """The layer's two links, for tests that look at their state or cut their connection (the layer must have
    started its thread): tests reach the links through this, not through the I/O thread's sides."""
    io_thread = layer._io_thread
    assert io_thread is not None, "the layer has not started its I/O thread yet"
    return Links(*io_thread.hub.links())


def input_reader(link: Link) -> InputReader:
    """The reader of a link's input (`reads.py`: it stands in for pika's `_on_data_available` on the link's
    connection), for tests that count what it read."""
    connection = link.connection
    assert connection is not None, "the link has no connection"
    reader = getattr(connection._on_data_available, "__self__", None)
    assert isinstance(reader, InputReader), "pika alone reads this connection's input"
    return reader


def in_plain_thread(function: Any) -> Any:
    """Run `function` in a new thread with no event loop (a Celery task, a WSGI view, a management command); return
    its result, or raise what it raised."""
    outcome: list[tuple[str, Any]] = []

    def target() -> None:
        try:
            outcome.append(("ok", function()))
        except BaseException as exc:
            outcome.append(("error", exc))

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value


def run_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "channels_rabbitmq_threaded", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def broker_ctl(*args: str) -> str:
    """What `rabbitmqctl ARGS` prints for the broker at HOST (a failure raises `CalledProcessError`). Where there
    is no rabbitmqctl (the python314 tox env runs the suite in a root of its own), the test is skipped: the other envs
    run it."""
    if shutil.which(BROKER_CTL[0]) is None:
        pytest.skip(f"no {BROKER_CTL[0]} here (a root without RabbitMQ's programs)")
    return subprocess.run([*BROKER_CTL, *args], capture_output=True, text=True, timeout=60, check=True).stdout


ROOT = Path(__file__).resolve().parent.parent
# Each test session uses its own groups exchange on the shared broker, so that two sessions running at once (tox in
# parallel, two developers) never receive each other's group messages. Its name is the prefix of every name the
# session gives the broker, all removed by it at the end (tests/support/leftovers.py).
TEST_EXCHANGE = os.environ.get("TEST_RUN_PREFIX") or f"test-groups-{os.getpid()}-{secrets.token_hex(3)}"


# Debian's Chromium, driven by Playwright (a browser download of Playwright's own does not work here).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def launch_chromium(playwright: Any) -> Any:
    """A headless Debian Chromium through Playwright; skips the test where it is not installed (CI installs it)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium chromium-driver)")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)


# Each starts private RabbitMQ nodes.
NODE_FIXTURES = {"tls_node", "amqp_node", "module_amqp_node", "cluster", "three_nodes", "netns_three"}


TESTS = ROOT / "tests"
# Each folder is a tier, and its tests carry its markers: `-m "not node and not slow"` is the fast suite (tox's
# py310, py313 and python314), `-m unit` needs no broker at all.
TIERS = {"unit": ("unit",), "broker": ("broker",), "node": ("broker", "node"), "e2e": ("broker", "slow")}
BROKER_FIXTURES = {"make_layer", "layer"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The markers of each test's folder (`TIERS`); a test whose fixtures do not fit its folder is refused, so a
    test that starts a private node cannot hide in the fast tier, nor one that needs the broker in `unit/`."""
    for item in items:
        try:
            tier = Path(item.path).resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue  # not one of ours (a peer's suite run through tests/support/conformance)
        fixtures = set(getattr(item, "fixturenames", ()))
        for marker in TIERS.get(tier, ()):
            item.add_marker(marker)
        if NODE_FIXTURES & fixtures and tier not in ("node", "e2e"):
            raise pytest.UsageError(f"{item.nodeid} starts a private node: it belongs in tests/node/ or tests/e2e/")
        if BROKER_FIXTURES & fixtures and tier == "unit":
            raise pytest.UsageError(f"{item.nodeid} needs the broker: it belongs in tests/broker/")
        if NODE_FIXTURES & fixtures:
            item.add_marker(pytest.mark.node)  # an end-to-end test that starts one
        if "netns_three" in fixtures:
            item.add_marker(pytest.mark.netns)


@pytest.fixture(scope="module")
def netns_three() -> Iterator[NamespacedCluster]:
    """Three nodes in network namespaces of their own (`netns_cluster.py`), one cluster per test module: the
    machine's RabbitMQ, or under `python -m tests.support.rabbitmq4` the RabbitMQ of its root."""
    root = os.environ.get("RABBITMQ4_ROOT")
    with netns_cluster(3, root=Path(root) if root else None) as cluster:
        yield cluster


def dropped(caplog: pytest.LogCaptureFixture, reason: str) -> int:
    """How many messages the captured log lines report dropped for `reason` (first lines and summed ones)."""
    events = ("message_dropped", "messages_dropped")
    return sum(
        record.count
        for record in caplog.records
        if getattr(record, "event", None) in events and getattr(record, "reason", None) == reason
    )


class _BadMoves(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) == "link_bad_move":
            self.seen.append(record.getMessage())


@pytest.fixture(autouse=True)
def _no_link_leaves_its_life_cycle() -> Iterator[None]:
    """Every test also checks that no link moved between states its life cycle does not allow (`link.TRANSITIONS`)."""
    handler, logger = _BadMoves(), logging.getLogger("channels_rabbitmq_threaded.link")
    logger.addHandler(handler)
    yield
    logger.removeHandler(handler)
    assert not handler.seen, handler.seen


@pytest.fixture(scope="session", autouse=True)
def _remove_what_the_session_made() -> Iterator[None]:
    """Every queue and exchange under the session's prefix (without rabbitmqctl, the runner outside does it)."""
    yield
    if shutil.which(BROKER_CTL[0]) is not None:
        remove_prefixed(TEST_EXCHANGE, HOST, BROKER_CTL)


@pytest.fixture
def make_layer() -> Iterator:
    """Build layers against the machine's broker; every one is closed after the test (from a fresh loop)."""
    layers: list[RabbitmqChannelLayer] = []

    def make(**options: object) -> RabbitmqChannelLayer:
        options.setdefault("host", HOST)
        options.setdefault("groups_exchange", TEST_EXCHANGE)
        layer = RabbitmqChannelLayer(**options)
        layers.append(layer)
        return layer

    yield make
    for layer in layers:
        asyncio.run(layer.close())


@pytest.fixture
def layer(make_layer) -> RabbitmqChannelLayer:
    return make_layer()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    subprocess.run(["bash", str(ROOT / "ssl" / "prepare-certs.sh"), str(directory)], check=True, capture_output=True)
    return directory


@pytest.fixture(scope="session")
def tls_node(tmp_path_factory: pytest.TempPathFactory, certificates: Path) -> Iterator[PrivateNode]:
    """A private RabbitMQ node with only a TLS listener (on `node.port`) that requires a client certificate."""
    port = free_port()
    node = PrivateNode(
        tmp_path_factory.mktemp("tls-node"),
        f"crt_tls_{os.getpid()}_{secrets.token_hex(3)}",
        f"""listeners.tcp = none
listeners.ssl.default = {port}
ssl_options.cacertfile = {certificates / "ca.cert"}
ssl_options.certfile = {certificates / "server.cert"}
ssl_options.keyfile = {certificates / "server.key"}
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
loopback_users = none
""",
    )
    node.port = port
    node.start()
    try:
        node.wait_for_port(port)
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def amqp_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNode]:
    """A private plain-AMQP node (on `node.port`) for tests that cut, restart, kill, freeze or alarm a broker."""
    yield from running_amqp_node(tmp_path_factory)


@pytest.fixture(scope="module")
def module_amqp_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNode]:
    """A private plain-AMQP node shared by the tests of one module (the example site, the permissions recipe)."""
    yield from running_amqp_node(tmp_path_factory)


def running_amqp_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNode]:
    node = start_amqp_node(tmp_path_factory.mktemp("amqp-node"))
    try:
        yield node
    finally:
        node.stop()


def start_amqp_node(base: Path) -> PrivateNode:
    port = free_port()
    node = PrivateNode(base, f"crt_amqp_{os.getpid()}_{secrets.token_hex(3)}", f"listeners.tcp.default = {port}\n")
    node.port = port
    node.start()
    return node


@pytest.fixture
def client_ssl_context(certificates: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certificates / "ca.cert"))
    context.load_cert_chain(str(certificates / "client.certchain"), str(certificates / "client.key"))
    return context


def configure_django() -> None:
    """Django settings for the tests that run Django code in this process (once per process; every such module
    calls this, so the first one imported decides, and they all get the same)."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=["channels"],
            USE_TZ=True,
            CHANNEL_LAYERS={
                "default": {
                    "BACKEND": "channels_rabbitmq_threaded.core.RabbitmqChannelLayer",
                    "CONFIG": {"host": HOST, "groups_exchange": TEST_EXCHANGE},
                }
            },
        )
        django.setup()


@pytest.fixture
def registered() -> Iterator[dict[str, RabbitmqChannelLayer]]:
    """Layers put where Channels keeps the ones it built (`channel_layers.backends`), removed afterwards."""
    added: dict[str, RabbitmqChannelLayer] = {}
    yield added
    for alias in added:
        channel_layers.backends.pop(alias, None)


def connections_of(queue_name: str) -> list[str]:
    """The client-given names of the broker's connections that belong to the layer with this queue."""
    listing = broker_ctl("-q", "list_connections", "client_properties")
    return [
        role for line in listing.splitlines() for role in ("consumer", "publisher") if f"{queue_name} {role}" in line
    ]


def queue_exists(name: str) -> bool:
    """Asked from a connection of its own: 404 means no such queue; 405 (RESOURCE_LOCKED) an exclusive one."""
    connection = pika.BlockingConnection(pika.URLParameters(HOST))
    try:
        connection.channel().queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code in (404, 405), exc
        return exc.reply_code == 405
    finally:
        connection.close()


async def receives_again(layer: RabbitmqChannelLayer, sender: RabbitmqChannelLayer, channel: str, group: str) -> None:
    """A send to `channel` (a name handed out before the loss) and a group message both reach it; each send is
    retried while the layer sets its queue up again (a send meanwhile finds no queue bound to the address, or is
    refused by the queue that is going: ChannelFull)."""
    for expected in ({"type": "direct"}, {"type": "group"}):
        for _ in range(100):  # a hang guard: tries for at most about 20 s
            with contextlib.suppress(ChannelFull, RabbitmqLayerError):
                if expected["type"] == "direct":
                    await sender.send(channel, expected)
                else:
                    await sender.group_send(group, expected)
            try:
                assert await asyncio.wait_for(layer.receive(channel), 0.2) == expected
                break
            except asyncio.TimeoutError:
                continue
        else:
            raise AssertionError(f"nothing reached {channel} after its queue was lost ({expected})")

"""`python -m channels_rabbitmq_threaded check | bench`: a self-check, and the benchmark (the `bench` package).

Theory of operation of `check`: uses only the public layer API, as an application would, and prints each step with its
timing. It first opens a TCP connection to each host, so that nothing listening or a name that does not resolve is
said at once rather than after `connect_timeout` of retries. When it cannot connect it prints the reason once and a
hint for that class of failure (`FAILURES`: unreachable, a host name that does not resolve, a server that is not
AMQP, credentials refused, missing vhost, TLS spoken to a plain port or plain AMQP to a TLS port, an untrusted
certificate), and exits with status 1. It checks
the URL given, `$AMQP_URL`, or the whole CONFIG of a Django project's `CHANNEL_LAYERS` entry (`--django`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import ssl
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from asgiref.sync import async_to_sync

from . import __version__
from ._cliargs import PROG, help_text, positive
from ._config import DEFAULT_HOST, redact_url
from .core import RabbitmqChannelLayer
from .errors import BrokerUnavailable

UNREACHABLE = """\
Nothing answered there. Is RabbitMQ running, and is this its host and port? To start one on this machine:
  Debian/Ubuntu:  apt-get install rabbitmq-server && rabbitmq-server -detached
  Docker:         docker run -d -p 5672:5672 rabbitmq:3
then run this check again (with --host URL for another broker)."""


@dataclass(frozen=True)
class Failure:
    """One class of connection failure: the words that identify it in the layer's reason, and what to do."""

    name: str
    markers: tuple[str, ...]  # any of these in the reason (case-insensitive) puts the failure in this class
    hint: str  # formatted with the URL's user, vhost, host, port and scheme


# Checked in order: the first class whose marker is in the reason wins (TLS classes before the generic ones, because
# a TLS failure may also read as a lost connection).
FAILURES = (
    Failure(
        "certificate not trusted",
        ("CERTIFICATE_VERIFY_FAILED",),
        "The broker's TLS certificate did not verify: this process does not trust the CA that signed it, or the\n"
        "certificate is not for host '{host}'. Give the CA file: check --cafile CA.pem; in CHANNEL_LAYERS,\n"
        '"ssl_context": ssl.create_default_context(cafile="CA.pem"). The URL\'s host must match the certificate.',
    ),
    Failure(
        "client certificate required",
        ("CERTIFICATE_REQUIRED", "HANDSHAKE_FAILURE", "UNKNOWN_CA", "BAD_CERTIFICATE"),
        "The broker refused the TLS handshake: it wants a client certificate signed by a CA it trusts. Give one:\n"
        "check --certfile CERT.pem --keyfile KEY.pem; in CHANNEL_LAYERS, an ssl_context with\n"
        'context.load_cert_chain("CERT.pem", "KEY.pem").',
    ),
    Failure(
        "TLS to a plain port",
        ("WRONG_VERSION_NUMBER", "UNEXPECTED_EOF", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"),
        "This URL speaks TLS (amqps://) to port {port}, which answers in plain AMQP. Use amqp:// for that port\n"
        "(usually 5672), or the broker's TLS port (usually 5671) with amqps://.",
    ),
    Failure(
        "credentials refused",
        ("ACCESS_REFUSED - Login was refused", "ProbableAuthenticationError"),
        "RabbitMQ refused the login of user '{user}': a wrong password, or a user that does not exist.\n"
        "If the user exists, set its password: rabbitmqctl change_password {user} PASSWORD\n"
        "If not, create it: rabbitmqctl add_user {user} PASSWORD && "
        "rabbitmqctl set_permissions -p {vhost} {user} '.*' '.*' '.*'\n"
        "The guest user may only connect from localhost (loopback_users in rabbitmq.conf).",
    ),
    Failure(
        "missing vhost",
        ("NOT_ALLOWED - vhost",),
        "RabbitMQ has no vhost '{vhost}' (the URL's path, URL-encoded: %2F is '/'). Create it and let the user in:\n"
        "rabbitmqctl add_vhost {vhost} && rabbitmqctl set_permissions -p {vhost} {user} '.*' '.*' '.*'",
    ),
    Failure(
        "vhost access refused",
        ("ACCESS_REFUSED", "ProbableAccessDeniedError"),
        "RabbitMQ refused user '{user}' access to vhost '{vhost}'. Grant it:\n"
        "rabbitmqctl set_permissions -p {vhost} {user} '.*' '.*' '.*'  (docs/deployment.md has narrower ones)",
    ),
    Failure(
        "not an AMQP server",
        ("prev_state=PROTOCOL", "Timeout while setting up AMQP"),
        "Something listens on port {port} of '{host}' but does not speak AMQP: another server (Redis is 6379, the\n"
        "RabbitMQ management UI 15672). RabbitMQ's AMQP port is usually 5672 (5671 with TLS).",
    ),
    Failure(
        "host not found",
        ("gaierror", "Name or service not known", "nodename nor servname", "Temporary failure in name resolution"),
        "The host name '{host}' does not resolve. Check the URL's host: a typo, or a name known only inside a\n"
        "container network or another machine's /etc/hosts.",
    ),
    Failure(
        "plain AMQP to a TLS port",
        ("StreamLostError", "ConnectionResetError", "IncompatibleProtocolError", "Timeout during AMQP handshake"),
        "The connection opened but the broker hung up during the AMQP handshake. If port {port} is a TLS port\n"
        "(usually 5671), use amqps:// (plain AMQP is usually on 5672). Otherwise see the broker's log.",
    ),
    Failure(
        "unreachable",
        ("ConnectionRefusedError", "timed out", "No route", "unreachable", "AMQPConnectionError"),
        UNREACHABLE,
    ),
)


def advice(url: str, reason: str) -> str:
    """What to do about a failed connection to `url`, from the layer's `reason` (its exception's text)."""
    parts = urlsplit(url)
    host, port = _address(url)
    fields = {
        "user": unquote(parts.username or "guest"),
        "vhost": unquote(parts.path[1:]) if len(parts.path) > 1 else "/",
        "host": host,
        "port": port,
    }
    folded = reason.lower()
    for failure in FAILURES:
        if any(marker.lower() in folded for marker in failure.markers):
            return f"  ({failure.name})\n" + failure.hint.format(**fields)
    return "See the reason above and the broker's log."


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        from .bench import cli as bench_cli  # the benchmark package loads only for `bench`

        return bench_cli.main(argv[1:])
    parser = argparse.ArgumentParser(prog=PROG)
    parser.add_argument("--version", action="version", version=f"channels_rabbitmq_threaded {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="connect, round-trip a message and a group message, report timings")
    where = check.add_mutually_exclusive_group()
    where.add_argument(
        "--host",
        default=os.environ.get("AMQP_URL", DEFAULT_HOST),
        help=help_text(f"AMQP URL (default: $AMQP_URL if set, else {DEFAULT_HOST})"),
    )
    where.add_argument(
        "--django",
        metavar="ALIAS",
        nargs="?",
        const="default",
        help="check the layer CHANNEL_LAYERS[ALIAS] of your Django settings configures, with its whole CONFIG "
        "(default alias: default; DJANGO_SETTINGS_MODULE must name the settings)",
    )
    check.add_argument("--count", type=positive(int), default=200, help="round trips to time (default 200; at least 1)")
    check.add_argument("--cafile", help="for amqps://: the CA file that signed the broker's certificate")
    check.add_argument("--certfile", help="for amqps:// with client certificates: this client's certificate")
    check.add_argument("--keyfile", help="for amqps:// with client certificates: its private key")
    commands.add_parser("bench", help="measure layers side by side (see docs/performance.md)")  # handled above
    args = parser.parse_args(argv)
    if args.django is not None:
        try:
            config = django_config(args.django)
        except (ImportError, LookupError, ValueError) as exc:
            parser.error(f"--django: {exc}")
        return run_check(config, args.count)
    if (args.cafile or args.certfile) and not args.host.startswith("amqps://"):
        parser.error("--cafile and --certfile are for an amqps:// --host")
    try:
        ssl_context = _ssl_context(args.cafile, args.certfile, args.keyfile)
    except (OSError, ssl.SSLError) as exc:
        parser.error(f"cannot load the TLS files: {exc}")
    return run_check({"host": args.host, "ssl_context": ssl_context}, args.count)


def django_config(alias: str) -> dict[str, Any]:
    """The CONFIG of CHANNEL_LAYERS[alias] in the Django settings that DJANGO_SETTINGS_MODULE names."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise LookupError("DJANGO_SETTINGS_MODULE is not set: set it to your settings module (myproject.settings)")
    import django
    from django.conf import settings

    django.setup()
    layers = getattr(settings, "CHANNEL_LAYERS", {})
    if alias not in layers:
        raise LookupError(f"CHANNEL_LAYERS has no {alias!r} (it has {sorted(layers)})")
    backend = layers[alias].get("BACKEND", "")
    if not backend.startswith("channels_rabbitmq_threaded."):
        raise ValueError(f"CHANNEL_LAYERS[{alias!r}] is {backend!r}, not this layer")
    return dict(layers[alias].get("CONFIG", {}))


def _ssl_context(cafile: str | None, certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    if not (cafile or certfile):
        return None
    context = ssl.create_default_context(cafile=cafile)
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    return context


def run_check(config: dict[str, Any], count: int) -> int:
    """Check a layer built with `config` (the layer's options; `connect_timeout` 5 s unless given)."""
    logging.basicConfig(level=logging.WARNING, format="  log: %(levelname)s %(message)s")
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # our own WARNING says the same in one line
    logging.getLogger("channels_rabbitmq_threaded.link").setLevel(logging.ERROR)  # FAILED below gives the reason
    hosts = config.get("host", DEFAULT_HOST)
    host = hosts if isinstance(hosts, str) else (list(hosts) or [DEFAULT_HOST])[0]
    print(f"channels_rabbitmq_threaded check against {redact_url(host)}")
    try:
        layer = RabbitmqChannelLayer(**{"connect_timeout": 5, **config})
    except (TypeError, ValueError) as exc:
        print(f"  bad configuration: {exc}")
        return 2
    refused = _tcp_refusal(layer.settings.hosts[0])
    if refused is not None and all(_tcp_refusal(url) for url in layer.settings.hosts[1:]):
        print(f"  FAILED: no TCP connection to {refused}\n{advice(host, refused)}")
        return 1
    try:
        asyncio.run(asyncio.wait_for(_check_async(layer, count), 60))
        _check_sync(layer, count)
    except BrokerUnavailable as exc:
        print(f"  FAILED: {exc}\n{advice(host, str(exc))}")
        return 1
    except asyncio.TimeoutError:
        print(f"  FAILED: no answer from the broker within 60 s\n{UNREACHABLE}")
        return 1
    finally:
        asyncio.run(layer.close())
    print("OK")
    return 0


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "localhost", parts.port or (5671 if parts.scheme == "amqps" else 5672)


def _tcp_refusal(url: str) -> str | None:
    """Why a TCP connection to the broker at `url` fails (nothing listens, no such host), or None if it opens:
    said at once, where the layer would keep retrying for `connect_timeout`."""
    address = _address(url)
    try:
        socket.create_connection(address, timeout=5).close()
    except OSError as exc:
        return f"{address[0]}:{address[1]}: {type(exc).__name__}: {exc}"
    return None


async def _timed(label: str, step: Callable[[], Awaitable[Any]]) -> Any:
    started = time.perf_counter()
    result = await step()
    print(f"  {label:<48} {1000 * (time.perf_counter() - started):8.2f} ms")
    return result


async def _check_async(layer: RabbitmqChannelLayer, count: int) -> None:
    channel = await _timed("connect, declare queue (new_channel)", layer.new_channel)
    await _timed("ping: send + receive (the health check)", lambda: layer.ping(timeout=10))
    await _timed("group_add (binding confirmed)", lambda: layer.group_add("check", channel))
    await _timed("group_send + receive", lambda: _group_round_trip(layer, channel))
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        await _round_trip(layer, channel)
        timings.append(1000 * (time.perf_counter() - started))
    timings.sort()
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    print(f"  {count} send + receive round trips: p50 {statistics.median(timings):.2f} ms, p99 {p99:.2f} ms")
    await layer.group_discard("check", channel)
    backlog = layer.settings.local_capacity  # what fits in memory without back-pressure
    await asyncio.gather(*(layer.send(channel, {"type": "check.backlog"}) for _ in range(backlog)))
    await asyncio.sleep(0.2)  # let the deliveries reach the process's buffer
    started = time.perf_counter()
    for _ in range(backlog):
        await layer.receive(channel)
    elapsed = time.perf_counter() - started
    print(f"  receive() of {backlog} buffered messages: {backlog / elapsed:8.0f} messages/s")


async def _round_trip(layer: RabbitmqChannelLayer, channel: str) -> None:
    await layer.send(channel, {"type": "check.ping"})
    if await layer.receive(channel) != {"type": "check.ping"}:
        raise AssertionError("received a different message")


async def _group_round_trip(layer: RabbitmqChannelLayer, channel: str) -> None:
    await layer.group_send("check", {"type": "check.group"})
    if await layer.receive(channel) != {"type": "check.group"}:
        raise AssertionError("received a different message")


def _check_sync(layer: RabbitmqChannelLayer, count: int) -> None:
    """The Celery / WSGI path: async_to_sync(group_send) from a plain thread, a new event loop per call."""
    errors: list[BaseException] = []

    def plain_thread() -> None:
        try:
            started = time.perf_counter()
            for n in range(count):
                async_to_sync(layer.group_send)("check-sync", {"type": "check.sync", "n": n})
            elapsed = time.perf_counter() - started
            print(f"  {count} async_to_sync(group_send) from a plain thread: {count / elapsed:8.0f} calls/s")
            started = time.perf_counter()
            for n in range(count):
                layer.group_send_sync("check-sync", {"type": "check.sync", "n": n})
            elapsed = time.perf_counter() - started
            print(f"  {count} group_send_sync() from a plain thread:         {count / elapsed:8.0f} calls/s")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=plain_thread)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


if __name__ == "__main__":
    sys.exit(main())

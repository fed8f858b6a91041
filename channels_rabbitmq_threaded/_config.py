"""Options: parsing and checking `CHANNEL_LAYERS[...]["CONFIG"]` into one immutable `Settings`.

Theory of operation: every mistake a user can make in the configuration is found here, at construction time, and
reported as a `TypeError` (wrong kind of value, unknown option) or a `ValueError` (right kind, bad value) that names
the option. Nothing here does I/O: the URL is parsed by pika's own parser, but no socket is opened. pika mutates
its `Parameters` objects while it connects (and can erase the password), so `Settings` keeps the URL string and
builds fresh parameters for every connection attempt.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import inspect
import math
import re
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pika

DEFAULT_HOST = "amqp://guest:guest@127.0.0.1:5672/%2F"

# RabbitMQ's exchange names: up to 255 bytes of letters, digits, hyphen, underscore, period or colon; 8 are kept
# for the suffixes of the flush exchange (".control") and the direct exchange (".direct").
_EXCHANGE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,247}\Z")


# RabbitMQ 4.0's default `max_message_size` (3.8-3.13: 128 MiB). A bigger message passes a 3.x broker but makes a
# stock 4.x broker close the channel, so the layer refuses it up front unless both sides are raised together.
RABBITMQ_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
# The heartbeat asked for when neither the option nor the URL names one (RabbitMQ would propose 60 s). A node that
# vanishes (host down, partition) is noticed within 1.75 heartbeats: 17.5 s, not 105 (docs/deployment.md).
DEFAULT_HEARTBEAT = 10
QUEUE_TYPES = ("classic", "quorum")


@dataclass(frozen=True)
class Settings:
    """The layer's checked configuration. Build it with `Settings.from_options(**options)`."""

    hosts: tuple[str, ...]  # one URL, or the nodes of a cluster, tried in turn
    expiry: float
    local_capacity: int
    local_expiry: float
    remote_capacity: int
    prefetch_count: int
    ssl_context: ssl.SSLContext | None
    groups_exchange: str
    group_expiry: int
    connect_timeout: float
    heartbeat: int | None
    max_message_size: int
    capacity: int
    channel_capacity: tuple[tuple[re.Pattern[str], int], ...]  # compiled once, in the order given
    fernet: Any  # a cryptography MultiFernet built from symmetric_encryption_keys, or None
    normal_channel_prefix: str
    wait_for_confirms: bool  # False: send/group_send return once handed to the I/O thread (no ChannelFull)
    normal_queue_type: str  # "classic" or "quorum": the x-queue-type of normal channels' queues
    queue_type: str  # "classic" or "quorum": the x-queue-type of the process's queue (a leased one)
    group_unbind_delay: float  # seconds a binding outlives its group's last local member (0: unbind at once)
    queue_lease: float  # seconds the process's queue outlives its connection (0: an exclusive queue, gone with it)

    @classmethod
    def from_options(
        cls,
        host: str | list[str] | tuple[str, ...] = DEFAULT_HOST,
        expiry: float = 60,
        local_capacity: int = 100,
        local_expiry: float | None = None,
        remote_capacity: int = 2000,
        prefetch_count: int = 10,
        ssl_context: ssl.SSLContext | None = None,
        groups_exchange: str = "groups",
        group_expiry: int = 86400,
        connect_timeout: float = 10,
        heartbeat: int | None = None,
        max_message_size: int = RABBITMQ_MAX_MESSAGE_SIZE,
        capacity: int = 100,
        channel_capacity: dict[str | re.Pattern[str], int] | None = None,
        symmetric_encryption_keys: list[str | bytes] | None = None,
        normal_channel_prefix: str = "channels.",
        wait_for_confirms: bool = True,
        normal_queue_type: str = "classic",
        group_unbind_delay: float = 5.0,
        queue_lease: float = 60.0,
        queue_type: str = "classic",
        **unknown: Any,
    ) -> Settings:
        if unknown:
            names = ", ".join(repr(name) for name in sorted(unknown))
            moved = "".join(
                f" ({name!r}: {FROM_OTHER_LAYERS[name]})" for name in sorted(unknown) if name in FROM_OTHER_LAYERS
            )
            raise TypeError(
                f"RabbitmqChannelLayer got unknown option(s) {names}{moved}; the options are: {', '.join(OPTION_NAMES)}"
            )
        expiry = positive_seconds("expiry", expiry)
        local_expiry = expiry if local_expiry is None else positive_seconds("local_expiry", local_expiry)
        settings = cls(
            hosts=_check_hosts(host, ssl_context),
            expiry=expiry,
            local_capacity=_positive_int("local_capacity", local_capacity),
            local_expiry=local_expiry,
            remote_capacity=_positive_int("remote_capacity", remote_capacity),
            prefetch_count=_positive_int("prefetch_count", prefetch_count),
            ssl_context=ssl_context,
            groups_exchange=_check_exchange(groups_exchange),
            group_expiry=_positive_int("group_expiry", group_expiry),
            connect_timeout=positive_seconds("connect_timeout", connect_timeout),
            heartbeat=None if heartbeat is None else _int_at_least("heartbeat", heartbeat, 0),
            max_message_size=_positive_int("max_message_size", max_message_size),
            capacity=_positive_int("capacity", capacity),
            channel_capacity=_compile_capacities(channel_capacity),
            fernet=_multi_fernet(symmetric_encryption_keys),
            normal_channel_prefix=_check_prefix(normal_channel_prefix),
            wait_for_confirms=_check_bool("wait_for_confirms", wait_for_confirms),
            normal_queue_type=_check_queue_type("normal_queue_type", normal_queue_type),
            queue_type=_check_queue_type("queue_type", queue_type),
            group_unbind_delay=_seconds_at_least_zero("group_unbind_delay", group_unbind_delay),
            queue_lease=_seconds_at_least_zero("queue_lease", queue_lease),
        )
        if settings.queue_type == "quorum" and not settings.queue_lease:
            raise ValueError("queue_type='quorum' needs a queue_lease above 0: a quorum queue cannot be exclusive")
        return settings

    def connection_parameters(self, connection_name: str, attempt: int = 0) -> pika.URLParameters:
        """Fresh pika parameters for connection attempt number `attempt` (pika mutates them: never reuse).

        Attempts go round the hosts in order, so after a node fails the next attempt tries the next node.
        """
        url = self.hosts[attempt % len(self.hosts)]
        params = pika.URLParameters(url)
        # A host that accepts and never answers (a dead backend behind a load balancer) must not hold an attempt
        # for pika's 10 s socket / 15 s handshake defaults: give up on it soon enough to try the next host and
        # still answer every waiting call within connect_timeout. A URL that names its own timeouts keeps them.
        if "socket_timeout=" not in url:
            params.socket_timeout = self.attempt_timeout
        if "stack_timeout=" not in url:
            params.stack_timeout = self.attempt_timeout
        if self.ssl_context is not None:
            params.ssl_options = pika.SSLOptions(self.ssl_context, server_hostname=params.host)
        if self.heartbeat is not None:
            params.heartbeat = self.heartbeat
        elif "heartbeat=" not in url:
            params.heartbeat = DEFAULT_HEARTBEAT
        params.client_properties = {
            "connection_name": connection_name,
            "product": "channels_rabbitmq_threaded",
        }
        return params

    @property
    def attempt_timeout(self) -> float:
        """How long one connection attempt (TCP, TLS and the AMQP handshake) may take: half of connect_timeout,
        between 0.5 and 5 seconds, so a second host is tried before the callers' connect_timeout runs out."""
        return max(0.5, min(5.0, self.connect_timeout / 2))

    @property
    def control_exchange(self) -> str:
        """The fanout exchange every process of a deployment binds its queue to, for flush()."""
        return f"{self.groups_exchange}.control"

    @property
    def direct_exchange(self) -> str:
        """The direct exchange that carries sends to process-specific channels, by the process's address (the name
        in its channels): each process binds its current queue there, so a queue may change and the names stay."""
        return f"{self.groups_exchange}.direct"

    def process_queue(self) -> dict[str, Any]:
        """The keyword arguments of the process queue's `queue_declare` (its name aside).

        Always bounded (`x-max-length` = `remote_capacity`, `reject-publish`, so a full queue nacks and send() raises
        ChannelFull) and with messages expiring after `expiry`. With a lease it outlives a cut connection: durable
        (RabbitMQ 4.3 refuses transient queues that are not exclusive), of the type `queue_type` says whatever the
        vhost's default (classic: on one node; quorum: replicated), deleted by RabbitMQ once nobody has consumed it
        for `queue_lease` seconds (consumed without consumer exclusivity: `consumer.py` says why). With
        `queue_lease=0` it is exclusive: it goes with its connection.
        """
        arguments: dict[str, Any] = {
            "x-max-length": self.remote_capacity,
            "x-overflow": "reject-publish",
            "x-message-ttl": int(self.expiry * 1000),
        }
        if not self.queue_lease:
            return {"exclusive": True, "durable": False, "arguments": arguments}
        arguments |= {"x-queue-type": self.queue_type, "x-expires": max(1, int(self.queue_lease * 1000))}
        return {"exclusive": False, "durable": True, "arguments": arguments}

    def normal_queue(self, channel: str) -> tuple[str, dict[str, Any]]:
        """The queue of a normal channel (no "!"), and the arguments every process must declare it with.

        Durable (RabbitMQ 4.3 rejects transient queues that are not exclusive), of the type it says
        (`normal_queue_type`: a vhost whose default queue type is quorum would otherwise turn it into a quorum queue),
        bounded by the channel's capacity (`reject-publish`, which classic and quorum queues both support: a full
        queue nacks, so send() raises ChannelFull), messages expire after `expiry`, and a queue nobody consumes or
        declares for `group_expiry` seconds is deleted.
        """
        return f"{self.normal_channel_prefix}{channel}", {
            "x-queue-type": self.normal_queue_type,
            "x-max-length": self.capacity_of(channel),
            "x-overflow": "reject-publish",
            "x-message-ttl": int(self.expiry * 1000),
            "x-expires": self.group_expiry * 1000,
        }

    def capacity_of(self, channel: str) -> int:
        """The most messages `channel` may hold in memory: the first matching `channel_capacity`, else `capacity`."""
        for pattern, value in self.channel_capacity:
            if pattern.match(channel):
                return value
        return self.capacity

    def redacted_host(self, attempt: int = 0) -> str:
        """The URL of attempt number `attempt` with its password replaced by `***`: the only form ever logged."""
        return redact_url(self.hosts[attempt % len(self.hosts)])


# Options of other layers a migrating user may bring along, and what to use here instead (docs/migration.md).
FROM_OTHER_LAYERS = {
    "hosts": "channels_redis's; use host with an amqp:// URL, or a list of a cluster's amqp:// URLs",
    "prefix": "channels_redis's; use groups_exchange and normal_channel_prefix",
    "serializer_format": "channels_redis's; this layer uses msgpack",
}

# The options, written once: the keyword parameters of `Settings.from_options`, in its order.
OPTION_NAMES = tuple(
    name
    for name, parameter in inspect.signature(Settings.from_options).parameters.items()
    if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
)


def is_process_specific(channel: str) -> bool:
    """Whether `channel` is a process-specific channel (`<prefix>.<queue>!<id>`, from `new_channel()`); the other
    names are normal channels (`Settings.normal_queue`)."""
    return "!" in channel


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def _check_hosts(host: object, ssl_context: object) -> tuple[str, ...]:
    if isinstance(host, str):
        return (_check_host(host, ssl_context),)
    if not isinstance(host, (list, tuple)):
        raise TypeError(f"host must be an AMQP URL string or a list of them, not {type(host).__name__}")
    if not host:
        raise ValueError("host is an empty list; give at least one AMQP URL")
    return tuple(_check_host(url, ssl_context) for url in host)


def _check_host(host: object, ssl_context: object) -> str:
    if not isinstance(host, str):
        raise TypeError(f"host must be an AMQP URL string or a list of them, not {type(host).__name__}")
    scheme = urlsplit(host).scheme
    if scheme not in ("amqp", "amqps"):
        raise ValueError(f"host must be an amqp:// or amqps:// URL, not {redact_url(host)!r}")
    try:
        pika.URLParameters(host)
    except Exception as exc:  # pika raises ValueError, TypeError or KeyError for malformed URLs
        raise ValueError(f"host {redact_url(host)!r} is not a valid AMQP URL: {exc}") from None
    if ssl_context is not None:
        if not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError(f"ssl_context must be an ssl.SSLContext, not {type(ssl_context).__name__}")
        if scheme != "amqps":
            raise ValueError("ssl_context is given but host is an amqp:// URL; use amqps:// for TLS")
    return host


def _check_exchange(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"groups_exchange must be a str, not {type(name).__name__}")
    if not _EXCHANGE_NAME.match(name) or name.startswith("amq."):
        raise ValueError(
            f"groups_exchange {name!r} is not a usable exchange name "
            "(1-247 letters, digits, '-', '_', '.', ':'; not starting with 'amq.')"
        )
    return name


def _multi_fernet(keys: object) -> Any:
    """As channels_redis: each key (any string) becomes a Fernet key through SHA-256; the first one encrypts,
    every one decrypts, so keys can be rotated (add the new key second everywhere, then move it first)."""
    if keys is None:
        return None
    if not isinstance(keys, (list, tuple)) or not keys:
        raise TypeError("symmetric_encryption_keys must be a non-empty list of str or bytes")
    for key in keys:
        if not isinstance(key, (str, bytes)) or not key:
            raise TypeError(f"symmetric_encryption_keys must hold non-empty str or bytes, not {key!r}")
    try:
        from cryptography.fernet import Fernet, MultiFernet
    except ImportError:
        raise ImportError(
            "symmetric_encryption_keys needs the cryptography package: "
            "pip install 'channels_rabbitmq_threaded[cryptography]'"
        ) from None
    return MultiFernet([Fernet(_fernet_key(key)) for key in keys])


def _fernet_key(key: str | bytes) -> bytes:
    raw = key.encode("utf8") if isinstance(key, str) else key
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


def _check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str):
        raise TypeError(f"normal_channel_prefix must be a str, not {type(prefix).__name__}")
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{0,100}", prefix) or prefix.startswith("amq."):
        raise ValueError(f"normal_channel_prefix {prefix!r} must be 0-100 letters, digits, '-', '_', '.', ':'")
    return prefix


def _compile_capacities(
    channel_capacity: dict[str | re.Pattern[str], int] | None,
) -> tuple[tuple[re.Pattern[str], int], ...]:
    """As channels_redis: keys are glob strings (`"http.response!*"`) or compiled regexes; first match wins."""
    if channel_capacity is None:
        return ()
    if not isinstance(channel_capacity, dict):
        raise TypeError(f"channel_capacity must be a dict, not {type(channel_capacity).__name__}")
    compiled = []
    for pattern, value in channel_capacity.items():
        if isinstance(pattern, str):
            pattern = re.compile(fnmatch.translate(pattern))
        elif not isinstance(pattern, re.Pattern):
            raise TypeError(f"channel_capacity keys must be glob strings or compiled regexes, not {pattern!r}")
        compiled.append((pattern, _positive_int(f"channel_capacity[{pattern.pattern!r}]", value)))
    return tuple(compiled)


def _check_queue_type(option: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{option} must be a str, not {type(value).__name__}")
    if value not in QUEUE_TYPES:
        raise ValueError(f"{option} must be one of {', '.join(QUEUE_TYPES)}, not {value!r}")
    return value


def _check_bool(option: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{option} must be True or False, not {type(value).__name__}")
    return value


def _positive_int(option: str, value: object) -> int:
    return _int_at_least(option, value, 1)


def _int_at_least(option: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{option} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{option} must be at least {minimum}, not {value}")
    return value


def _seconds_at_least_zero(option: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{option} must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{option} must be a number of seconds >= 0, not {value}")
    return float(value)


def optional_positive_seconds(option: str, value: object) -> float | None:
    """None, or `positive_seconds` (the `timeout` of the `_sync` calls)."""
    return None if value is None else positive_seconds(option, value)


def positive_seconds(option: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{option} must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{option} must be a positive number of seconds, not {value}")
    return float(value)

"""The bytes on the wire: a Channels message plus its recipient, as msgpack.

Theory of operation: a body is the msgpack map of the user's message with exactly one extra key naming the
recipient, `__asgi_channel__` (a direct send) or `__asgi_group__` (a group send). This is the format of the older
`channels_rabbitmq`, so its documented recipe (publishing `{"__asgi_group__": group, ...}` to the groups exchange
from kombu) keeps working. Encoding errors are the caller's (`TypeError`/`ValueError`, nothing is sent); decoding
errors are the wire's (`MalformedBody`, which the I/O thread logs and drops). With `symmetric_encryption_keys` the
msgpack bytes are sealed with Fernet (`Settings.fernet`); a body no key opens is a `MalformedBody` too. No I/O, no
state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import msgpack

CHANNEL_KEY = "__asgi_channel__"
GROUP_KEY = "__asgi_group__"
_RESERVED = (CHANNEL_KEY, GROUP_KEY)
# flush() tells the other processes of a deployment through a group message to this name, on the control exchange:
# group names can't contain "!", so no user group can collide with it.
FLUSH_GROUP = "!flush"
# reach.ReachProbe sends a process a message to this name on the direct exchange; the consumer drops it.
REACH_GROUP = "!reach"


class MalformedBody(Exception):
    """A body on our queue that this layer did not write (or that was damaged)."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who a body is for: a channel name or a group name."""

    is_group: bool
    name: str


def encode(message: object, recipient: Recipient, fernet: Any = None) -> bytes:
    """The body for `message` sent to `recipient`, encrypted with `fernet` if given.

    Raises TypeError/ValueError for messages we can't carry.
    """
    if not isinstance(message, dict):
        raise TypeError(f"message must be a dict, not {type(message).__name__}")
    for key in _RESERVED:
        if key in message:
            raise ValueError(f"message must not contain the reserved key {key!r}")
    framed = dict(message)
    framed[GROUP_KEY if recipient.is_group else CHANNEL_KEY] = recipient.name
    try:
        body = msgpack.packb(framed, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(
            "message must contain only msgpack types "
            f"(dict with str keys, list, str, bytes, int, float, bool, None): {exc}"
        ) from None
    return body if fernet is None else cast(bytes, fernet.encrypt(body))


def decode(body: bytes, fernet: Any = None) -> tuple[Recipient, dict[str, Any]]:
    """The recipient and the user's message from a body (decrypted with `fernet` if given).

    Raises MalformedBody for anything else, including a body that no key decrypts.
    """
    if fernet is not None:
        from cryptography.fernet import InvalidToken

        try:
            body = fernet.decrypt(body)  # no TTL: RabbitMQ's queue TTL bounds a message's age, whatever the clocks
        except InvalidToken:
            raise MalformedBody("no key in symmetric_encryption_keys decrypts it") from None
    try:
        framed = msgpack.unpackb(body, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise MalformedBody(f"not msgpack ({type(exc).__name__}: {exc})") from None
    if not isinstance(framed, dict):
        raise MalformedBody(f"msgpack {type(framed).__name__}, not a map")
    channel = framed.pop(CHANNEL_KEY, None)
    group = framed.pop(GROUP_KEY, None)
    if (channel is None) == (group is None):
        raise MalformedBody(f"needs exactly one of {CHANNEL_KEY!r} and {GROUP_KEY!r}")
    name = channel if group is None else group
    if not isinstance(name, str):
        raise MalformedBody(f"recipient is a {type(name).__name__}, not a str")
    return Recipient(is_group=group is not None, name=name), framed

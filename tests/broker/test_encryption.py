"""symmetric_encryption_keys: Fernet, the first key encrypts, every key decrypts (rotation)."""

from __future__ import annotations

import logging
import sys

import pytest

from channels_rabbitmq_threaded import RabbitmqChannelLayer
from channels_rabbitmq_threaded._config import Settings
from channels_rabbitmq_threaded._routing.envelope import Recipient, decode, encode

from ..conftest import dropped


async def test_encrypted_round_trip_direct_and_group(make_layer) -> None:
    sender, receiver = (
        make_layer(symmetric_encryption_keys=["s3cret"]),
        make_layer(symmetric_encryption_keys=["s3cret"]),
    )
    channel = await receiver.new_channel()
    await receiver.group_add("sealed", channel)
    await sender.send(channel, {"type": "direct", "b": b"\x00"})
    await sender.group_send("sealed", {"type": "group"})
    assert await receiver.receive(channel) == {"type": "direct", "b": b"\x00"}
    assert await receiver.receive(channel) == {"type": "group"}


async def test_rotation_and_foreign_keys(make_layer, caplog) -> None:
    caplog.set_level(logging.WARNING)
    rotated = make_layer(symmetric_encryption_keys=["new", "old"])  # encrypts with "new", decrypts both
    old_only = make_layer(symmetric_encryption_keys=["old"])
    plain = make_layer()
    rotated_channel, old_channel, plain_channel = [await layer.new_channel() for layer in (rotated, old_only, plain)]
    caplog.clear()

    await old_only.send(rotated_channel, {"type": "from-old"})  # rotation step 1: receivers take both keys
    assert await rotated.receive(rotated_channel) == {"type": "from-old"}

    await rotated.send(old_channel, {"type": "sealed-with-new"})  # not readable with "old" alone: dropped, logged
    await plain.send(old_channel, {"type": "plain"})  # nor is plain msgpack
    await old_only.send(old_channel, {"type": "readable"})
    assert await old_only.receive(old_channel) == {"type": "readable"}
    assert "decrypts it" in caplog.text
    await old_only.close()  # the I/O thread logs the sum of the drops not logged one by one
    assert dropped(caplog, "not ours") == 2

    await rotated.send(plain_channel, {"type": "sealed"})  # a layer without keys sees bytes that are not ours
    await plain.send(plain_channel, {"type": "readable"})
    assert await plain.receive(plain_channel) == {"type": "readable"}
    assert "not ours: not msgpack" in caplog.text


def test_encryption_hides_the_message_on_the_wire() -> None:
    fernet = Settings.from_options(symmetric_encryption_keys=[b"key"]).fernet
    body = encode({"type": "secret-text"}, Recipient(is_group=False, name="a!b"), fernet)
    assert b"secret-text" not in body
    assert decode(body, fernet) == (Recipient(is_group=False, name="a!b"), {"type": "secret-text"})


@pytest.mark.parametrize("keys", [[], "one-key", [""], [5]])
def test_bad_keys(keys) -> None:
    with pytest.raises(TypeError, match="symmetric_encryption_keys"):
        RabbitmqChannelLayer(symmetric_encryption_keys=keys)


def test_a_clear_message_without_cryptography(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.fernet", None)  # as if the package were not installed
    with pytest.raises(ImportError, match=r"pip install 'channels_rabbitmq_threaded\[cryptography\]'"):
        RabbitmqChannelLayer(symmetric_encryption_keys=["k"])

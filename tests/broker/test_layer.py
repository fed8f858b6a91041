"""The Channels API against the machine's RabbitMQ: round trips, names, groups, capacity, expiry, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from channels.exceptions import ChannelFull, StopConsumer

from channels_rabbitmq_threaded import BrokerRefused, BrokerUnavailable, LayerClosed, RabbitmqChannelLayer

from ..conftest import HOST, TEST_EXCHANGE, broker_ctl, dropped, links


async def test_round_trip(layer) -> None:
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "test.message", "text": "Ahoy-hoy!"})
    assert await layer.receive(channel) == {"type": "test.message", "text": "Ahoy-hoy!"}


async def test_new_channel_names(layer) -> None:
    first = await layer.new_channel()
    second = await layer.new_channel("my.prefix")
    assert first.startswith(f"specific.{layer.queue_name}!")
    assert second.startswith(f"my.prefix.{layer.queue_name}!")
    assert first != second
    with pytest.raises(TypeError):
        await layer.new_channel("bad prefix!")


async def test_fifo(layer) -> None:
    channel = await layer.new_channel()
    for n in range(3):
        await layer.send(channel, {"type": "n", "n": n})
    assert [(await layer.receive(channel))["n"] for _ in range(3)] == [0, 1, 2]


async def test_msgpack_types_survive(layer) -> None:
    channel = await layer.new_channel()
    message = {"type": "t", "b": b"\x00\xff", "s": "é", "i": -(2**63), "f": 1.5, "l": [1, [2]], "d": {"k": None}}
    await layer.send(channel, message)
    assert await layer.receive(channel) == message


async def test_two_layers_exchange_messages(make_layer) -> None:
    one, two = make_layer(), make_layer()
    a, b = await one.new_channel(), await two.new_channel()
    await one.send(b, {"type": "to-b"})
    await two.send(a, {"type": "to-a"})
    assert await two.receive(b) == {"type": "to-b"}
    assert await one.receive(a) == {"type": "to-a"}


@pytest.mark.parametrize("name", ["¯\\_(ツ)_/¯", "chat" * 100, "", 5])
async def test_bad_names_raise_type_error(layer, name) -> None:
    with pytest.raises(TypeError):
        await layer.send(name, {"type": "x"})
    with pytest.raises(TypeError):
        await layer.group_send(name, {"type": "x"})


async def test_bad_input_is_refused_and_the_layer_keeps_working(layer) -> None:
    channel = await layer.new_channel()
    with pytest.raises(TypeError, match="must be a dict"):
        await layer.send(channel, ["not", "a", "dict"])
    with pytest.raises(TypeError, match="msgpack types"):
        await layer.send(channel, {"type": "x", "obj": object()})
    with pytest.raises(TypeError, match="msgpack types"):
        await layer.send(channel, {"type": "x", "big": 2**70})
    with pytest.raises(ValueError, match="reserved key"):
        await layer.send(channel, {"__asgi_channel__": "elsewhere"})
    with pytest.raises(ValueError, match="does not belong to this process"):
        await layer.receive("specific.somebodyelse!abc")
    with pytest.raises(ValueError, match="does not belong to this process"):
        await layer.group_add("g", "specific.somebodyelse!abc")
    await layer.send(channel, {"type": "still.works"})
    assert await layer.receive(channel) == {"type": "still.works"}


async def test_send_to_a_gone_process_is_logged(layer, caplog) -> None:
    caplog.set_level(logging.WARNING)
    await layer.send("specific.channels_000000000000!gone", {"type": "x"})
    channel = await layer.new_channel()  # a round trip on the same channel: the return was handled before it
    await layer.send(channel, {"type": "y"})
    await layer.receive(channel)
    assert "no queue 'channels_000000000000'" in caplog.text


async def test_groups(layer) -> None:
    c1, c2, c3 = [await layer.new_channel() for _ in range(3)]
    for channel in (c1, c2, c3):
        await layer.group_add("test-group", channel)
    await layer.group_discard("test-group", c2)
    await layer.group_send("test-group", {"type": "message.1"})
    assert await layer.receive(c1) == {"type": "message.1"}
    assert await layer.receive(c3) == {"type": "message.1"}
    await layer.send(c2, {"type": "direct"})  # c2 got no group copy: the direct message is first
    assert await layer.receive(c2) == {"type": "direct"}


async def test_groups_across_layers(make_layer) -> None:
    one, two = make_layer(), make_layer()
    a, b = await one.new_channel(), await two.new_channel()
    await one.group_add("across", a)
    await two.group_add("across", b)
    await one.group_send("across", {"type": "hi"})
    assert await one.receive(a) == {"type": "hi"}
    assert await two.receive(b) == {"type": "hi"}


async def test_group_add_is_idempotent_and_discard_of_non_member_is_harmless(layer) -> None:
    channel = await layer.new_channel()
    await layer.group_discard("never-joined", channel)
    await layer.group_add("g-idem", channel)
    await layer.group_add("g-idem", channel)
    await layer.group_send("g-idem", {"type": "once"})
    await layer.send(channel, {"type": "after"})
    assert await layer.receive(channel) == {"type": "once"}
    assert await layer.receive(channel) == {"type": "after"}
    await layer.group_send("empty-group", {"type": "nobody"})


async def test_add_discard_add_discard_leaves_no_binding(layer) -> None:
    channel = await layer.new_channel()
    await asyncio.gather(
        layer.group_add("flip", channel),
        layer.group_discard("flip", channel),
        layer.group_add("flip", channel),
        layer.group_discard("flip", channel),
    )
    await layer.group_send("flip", {"type": "ghost"})
    await layer.send(channel, {"type": "direct"})
    assert await layer.receive(channel) == {"type": "direct"}


async def test_group_send_right_after_group_add_reaches_the_member(make_layer) -> None:
    sender, member = make_layer(), make_layer()
    for n in range(20):
        channel = await member.new_channel()
        await member.group_add(f"fresh-{n}", channel)
        await sender.group_send(f"fresh-{n}", {"type": "x", "n": n})
        assert await member.receive(channel) == {"type": "x", "n": n}


async def test_groups_exchange_isolates(make_layer) -> None:
    one, two = make_layer(groups_exchange=f"{TEST_EXCHANGE}-1"), make_layer(groups_exchange=f"{TEST_EXCHANGE}-2")
    a, b = await one.new_channel(), await two.new_channel()
    await one.group_add("same", a)
    await two.group_add("same", b)
    await one.group_send("same", {"type": "one-only"})
    await two.send(b, {"type": "direct"})
    assert await one.receive(a) == {"type": "one-only"}
    assert await two.receive(b) == {"type": "direct"}


async def test_remote_capacity_raises_channel_full_and_recovers(make_layer) -> None:
    layer = make_layer(local_capacity=1, remote_capacity=1, prefetch_count=1)
    channel = await layer.new_channel()
    accepted = 0
    with pytest.raises(ChannelFull):
        for n in range(10):
            await layer.send(channel, {"type": "n", "n": n})
            accepted += 1
    # one routed in memory + one held (prefetch) + one ready on the broker, give or take delivery timing
    assert 1 <= accepted <= 3
    assert [(await layer.receive(channel))["n"] for _ in range(accepted)] == list(range(accepted))
    await layer.send(channel, {"type": "after"})
    assert await layer.receive(channel) == {"type": "after"}


async def test_group_send_to_a_full_member_never_raises(make_layer, caplog) -> None:
    caplog.set_level(logging.WARNING)
    layer = make_layer(local_capacity=1, remote_capacity=1, prefetch_count=1)
    channel = await layer.new_channel()
    await layer.group_add("full", channel)
    for _ in range(6):
        await layer.group_send("full", {"type": "x"})
    assert "queue is full" in caplog.text
    while True:  # drain what was kept
        try:
            await asyncio.wait_for(layer.receive(channel), 0.5)
        except asyncio.TimeoutError:
            break
    await layer.group_send("full", {"type": "delivered"})
    assert await layer.receive(channel) == {"type": "delivered"}


async def test_zombie_channel_does_not_stall_a_live_one(make_layer, caplog) -> None:
    caplog.set_level(logging.WARNING)
    layer = make_layer(local_capacity=2)
    zombie, live = await layer.new_channel(), await layer.new_channel()
    waiting = asyncio.ensure_future(layer.receive(live))
    await asyncio.sleep(0.05)
    for n in range(5):
        await layer.send(zombie, {"type": "z", "n": n})
    await layer.send(live, {"type": "alive"})
    assert await waiting == {"type": "alive"}
    assert [(await layer.receive(zombie))["n"] for _ in range(2)] == [3, 4]
    assert "Dropped a message" in caplog.text


async def test_remote_expiry(make_layer) -> None:
    layer = make_layer(expiry=0.2, local_expiry=30, local_capacity=1, remote_capacity=10, prefetch_count=1)
    channel = await layer.new_channel()
    for n in range(3):  # 0 in memory, 1 held unacknowledged, 2 waits on the broker and expires there
        await layer.send(channel, {"type": "n", "n": n})
    await asyncio.sleep(0.6)
    assert [(await layer.receive(channel))["n"] for _ in range(2)] == [0, 1]
    await layer.send(channel, {"type": "n", "n": 3})
    assert (await layer.receive(channel))["n"] == 3


async def test_local_expiry_drops_and_leaves_groups(make_layer, caplog) -> None:
    caplog.set_level(logging.WARNING)
    layer = make_layer(local_expiry=0.1)
    channel = await layer.new_channel()
    await layer.group_add("expiring", channel)
    await layer.send(channel, {"type": "old"})
    await asyncio.sleep(0.4)
    await layer.group_send("expiring", {"type": "group"})
    await layer.send(channel, {"type": "new"})
    assert await layer.receive(channel) == {"type": "new"}
    assert "local_expiry" in caplog.text


async def test_concurrent_sends_and_receives(make_layer) -> None:
    one, two = make_layer(), make_layer()
    channels = [await two.new_channel() for _ in range(10)]
    messages = [(channels[n % 10], {"type": "m", "n": n}) for n in range(100)]
    receives = [asyncio.ensure_future(two.receive(channels[n % 10])) for n in range(100)]
    await asyncio.gather(*(one.send(channel, message) for channel, message in messages))
    received = await asyncio.gather(*receives)
    assert sorted(m["n"] for m in received) == list(range(100))


async def test_concurrent_receivers_on_one_channel_get_distinct_messages(layer) -> None:
    channel = await layer.new_channel()
    receivers = [asyncio.ensure_future(layer.receive(channel)) for _ in range(20)]
    for n in range(20):
        await layer.send(channel, {"type": "n", "n": n})
    assert sorted(m["n"] for m in await asyncio.gather(*receivers)) == list(range(20))


async def test_cancelled_receive_loses_nothing(layer) -> None:
    channel = await layer.new_channel()
    pending = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.05)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    await layer.send(channel, {"type": "kept"})
    assert await layer.receive(channel) == {"type": "kept"}


async def test_cancellation_racing_delivery_never_loses_or_duplicates(layer) -> None:
    channel = await layer.new_channel()
    got: list[int] = []
    for n in range(200):
        pending = asyncio.ensure_future(layer.receive(channel))
        await layer.send(channel, {"type": "n", "n": n})
        if n % 3:
            await asyncio.sleep(0)
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            got.append((await pending)["n"])
    while len(got) < 200:
        got.append((await asyncio.wait_for(layer.receive(channel), 5))["n"])
    assert sorted(got) == list(range(200))
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.3)


async def test_close_wakes_pending_receivers_and_refuses_later_calls(make_layer) -> None:
    layer = make_layer()
    channel = await layer.new_channel()
    pending = [asyncio.ensure_future(layer.receive(channel)) for _ in range(3)]
    await asyncio.sleep(0.05)
    await layer.close()
    for task in pending:
        with pytest.raises(StopConsumer):
            await task
    await layer.close()  # idempotent
    for call in (
        layer.send(channel, {"type": "x"}),
        layer.receive(channel),
        layer.new_channel(),
        layer.group_add("g", channel),
        layer.group_discard("g", channel),
        layer.group_send("g", {}),
    ):
        with pytest.raises(LayerClosed):
            await call
    layer._io_thread._thread.join(5)
    assert not layer._io_thread.is_alive()


async def test_close_racing_every_call(make_layer) -> None:
    for _ in range(5):
        layer = make_layer()
        channel = f"specific.{layer.queue_name}!x"
        calls = [
            layer.new_channel(),
            layer.send(channel, {"type": "x"}),
            layer.receive(channel),
            layer.group_add("g", channel),
            layer.group_discard("g", channel),
            layer.group_send("g", {"type": "x"}),
        ]
        results = await asyncio.wait_for(asyncio.gather(*calls, layer.close(), return_exceptions=True), 20)
        for result in results:
            assert result is None or isinstance(result, (str, StopConsumer)), result


async def test_close_before_first_use(make_layer) -> None:
    layer = make_layer()
    await layer.close()
    with pytest.raises(LayerClosed):
        await layer.new_channel()


async def test_works_on_a_loop_in_another_thread(layer) -> None:
    channel = await layer.new_channel()

    def other_thread() -> dict:
        async def go() -> dict:
            await layer.send(channel, {"type": "from-thread"})
            other = await layer.new_channel()
            await layer.send(other, {"type": "back"})
            return await layer.receive(other)

        return asyncio.run(go())

    assert await asyncio.to_thread(other_thread) == {"type": "back"}
    assert await layer.receive(channel) == {"type": "from-thread"}


def test_unreachable_broker_fails_calls_after_connect_timeout() -> None:
    layer = RabbitmqChannelLayer(host="amqp://guest:guest@127.0.0.1:1/%2F", connect_timeout=0.5)

    async def go() -> None:
        with pytest.raises(BrokerUnavailable, match=r"no connection to RabbitMQ within 0.5s: cannot connect"):
            await layer.new_channel()
        with pytest.raises(BrokerUnavailable, match="Connection refused"):
            await layer.send(f"specific.{layer.queue_name}!x", {"type": "x"})
        await layer.close()

    asyncio.run(go())


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("amqp://guest:wrong-password@127.0.0.1:5672/%2F", "ACCESS_REFUSED"),
        ("amqp://guest:guest@127.0.0.1:5672/no-such-vhost", "vhost no-such-vhost not found"),
    ],
)
def test_refusals_fail_at_once_with_the_brokers_reason(host: str, reason: str) -> None:
    layer = RabbitmqChannelLayer(host=host, connect_timeout=300)  # a refusal must not wait for the timeout

    async def go() -> None:
        with pytest.raises(BrokerRefused, match=reason) as info:
            await asyncio.wait_for(layer.new_channel(), 30)
        assert "wrong-password" not in str(info.value)
        await layer.close()

    asyncio.run(go())


async def test_group_memberships_expire_after_group_expiry(make_layer, caplog) -> None:
    caplog.set_level(logging.INFO)
    layer = make_layer(group_expiry=1)
    channel = await layer.new_channel()
    await layer.group_add("short-lived", channel)
    await layer.group_send("short-lived", {"type": "while-member"})
    assert await layer.receive(channel) == {"type": "while-member"}
    await asyncio.sleep(1.5)  # the membership is not renewed by another group_add
    await layer.group_send("short-lived", {"type": "after-expiry"})
    await layer.send(channel, {"type": "direct"})
    assert await layer.receive(channel) == {"type": "direct"}
    assert "group membership(s) expired" in caplog.text


async def test_channel_capacity_bounds_one_channels_backlog(make_layer, caplog) -> None:
    caplog.set_level(logging.WARNING)
    layer = make_layer(channel_capacity={"tiny.*": 2})
    tiny, other = await layer.new_channel("tiny"), await layer.new_channel()
    assert layer.get_capacity(tiny) == 2 and layer.get_capacity(other) == 100
    for n in range(4):
        await layer.send(tiny, {"type": "n", "n": n})
    await layer.send(other, {"type": "sentinel"})  # same queue, so the four before it have been routed
    assert await layer.receive(other) == {"type": "sentinel"}
    assert [(await layer.receive(tiny))["n"] for _ in range(2)] == [0, 1]  # the newcomers went, not these
    assert "found its channel at capacity" in caplog.text
    assert layer.stats().drops == {"direct over capacity": 2}


async def test_a_channel_being_read_gets_a_burst_beyond_its_capacity(make_layer) -> None:
    layer = make_layer(capacity=2)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "first"})
    assert await layer.receive(channel) == {"type": "first"}  # its reader took a message: it is being read
    for n in range(10):
        await layer.send(channel, {"type": "n", "n": n})  # its reader is busy meanwhile
    assert [(await asyncio.wait_for(layer.receive(channel), 10))["n"] for _ in range(10)] == list(range(10))
    assert layer.stats().drops == {}


async def test_a_full_channel_keeps_its_confirmed_sends_and_drops_the_group_message(make_layer) -> None:
    layer = make_layer(capacity=2)
    channel, sentinel = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", channel)
    await layer.send(channel, {"type": "direct.0"})
    await layer.send(channel, {"type": "direct.1"})
    await layer.group_send("g", {"type": "group"})
    await layer.send(sentinel, {"type": "sentinel"})  # same queue, so the three before it have been routed
    assert await layer.receive(sentinel) == {"type": "sentinel"}
    assert [(await layer.receive(channel))["type"] for _ in range(2)] == ["direct.0", "direct.1"]
    assert layer.stats().drops == {"channel capacity": 1}


async def test_flush_drops_messages_and_memberships(make_layer) -> None:
    layer = make_layer()
    channel = await layer.new_channel()
    assert "flush" in layer.extensions
    await layer.group_add("flushed", channel)
    for n in range(3):
        await layer.send(channel, {"type": "before", "n": n})
    waiting = asyncio.ensure_future(layer.receive(await layer.new_channel()))  # a waiting receive() survives
    await layer.flush()
    await layer.group_send("flushed", {"type": "group-after"})  # no membership any more
    await layer.send(channel, {"type": "after"})
    assert await layer.receive(channel) == {"type": "after"}
    assert not waiting.done()
    waiting.cancel()


async def test_bad_names_are_named_in_the_error(layer) -> None:
    for _ in range(2):  # a refused name is refused again: only names that passed are remembered as checked
        with pytest.raises(TypeError, match=r"Got 'bad name!', 9 characters"):
            await layer.send("bad name!", {"type": "x"})
    with pytest.raises(TypeError, match=r"Got list \['specific.x'\]"):
        await layer.send(["specific.x"], {"type": "x"})  # not a str, and not hashable either
    with pytest.raises(TypeError, match=r"Got 'room-" + "x" * 55 + r"'\.\.\. \(cut\), 120 characters"):
        await layer.group_send("room-" + "x" * 115, {"type": "x"})
    with pytest.raises(TypeError, match=r"Got int 5"):
        await layer.group_add(5, "x")


async def wait_until(condition, seconds: float = 10.0) -> None:
    """Poll `condition` until it holds (bounded: fails after `seconds`)."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_a_buffered_message_is_taken_without_a_request_to_the_io_thread(layer, monkeypatch) -> None:
    channel = await layer.new_channel()
    for n in range(3):
        await layer.send(channel, {"type": "n", "n": n})
    await wait_until(lambda: layer.stats().buffered == 3)
    submitted: list[object] = []
    submit = layer._io_thread.submit
    monkeypatch.setattr(layer._io_thread, "submit", lambda *requests: (submitted.extend(requests), submit(*requests)))
    assert [(await layer.receive(channel))["n"] for _ in range(3)] == [0, 1, 2]
    waiting = asyncio.ensure_future(layer.receive(channel))  # nothing there: waits, registered on this thread too
    await wait_until(lambda: layer.stats().waiting_receivers == 1)
    assert submitted == []
    await layer.send(channel, {"type": "n", "n": 3})
    assert (await waiting)["n"] == 3
    assert layer.stats().delivered_to_receivers == 4


async def test_an_expired_head_is_dropped_not_taken(make_layer, caplog) -> None:
    layer = make_layer(local_expiry=0.2)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "old"})
    await wait_until(lambda: layer.stats().buffered == 1)
    await asyncio.sleep(0.3)  # past local expiry (the expiry timer may or may not have run yet)
    await layer.send(channel, {"type": "new"})
    assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "new"}
    assert dropped(caplog, "expired") == 1


async def test_acks_across_held_deliveries_never_ack_a_tag_twice(make_layer, caplog) -> None:
    """Held deliveries (local_capacity reached, nobody waiting) stay unacknowledged while the others are acked in
    batches: RabbitMQ would close the channel on a tag acknowledged twice, and the consumer link would reconnect."""
    sender = make_layer()
    receiver = make_layer(local_capacity=3, prefetch_count=8, remote_capacity=1000)
    channel = await receiver.new_channel()
    for n in range(40):
        await sender.send(channel, {"type": "n", "n": n})
    await wait_until(lambda: receiver.stats().held > 0)
    got = [(await asyncio.wait_for(receiver.receive(channel), 5))["n"] for _ in range(40)]
    assert got == list(range(40))  # in order, none dropped: the backlog was taken, never shed
    stats = receiver.stats()
    assert stats.consumer.losses == 0 and stats.consumer.connects == 1
    assert dropped(caplog, "capacity") == 0


@pytest.mark.parametrize("channel_max", [1, 2])
async def test_binds_use_only_the_channels_the_broker_allows(make_layer, channel_max: int) -> None:
    separator = "&" if "?" in HOST else "?"
    layer = make_layer(host=f"{HOST}{separator}channel_max={channel_max}")
    channel = await layer.new_channel()
    for n in range(8):  # groups that hash to every channel the layer would like to use
        await asyncio.wait_for(layer.group_add(f"limited-{n}", channel), 10)
    for n in range(8):
        await layer.group_send(f"limited-{n}", {"type": "n", "n": n})
    assert sorted([(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(8)]) == list(range(8))
    assert len(links(layer).consumer.more_channels) == channel_max - 1


async def test_channels_that_came_and_went_leave_nothing_in_the_layer(make_layer) -> None:
    """A websocket's life, 60 times: a new channel joins a group of its own, waits, is handed a group message from
    another process while it waits, and leaves. The layer keeps no buffer, membership or expiry entry for any."""
    receiver, sender = make_layer(), make_layer()
    for n in range(60):
        channel = await receiver.new_channel()
        await receiver.group_add(f"came-and-went-{n}", channel)
        receiving = asyncio.ensure_future(receiver.receive(channel))
        await asyncio.sleep(0)  # the receive is waiting now (registered on this thread, before its first await)
        await sender.group_send(f"came-and-went-{n}", {"type": "hello", "n": n})
        assert await asyncio.wait_for(receiving, 10) == {"type": "hello", "n": n}
        await receiver.group_discard(f"came-and-went-{n}", channel)
    kept = receiver.stats().bookkeeping
    assert {name: kept[name] for name in ("channel_buffers", "memberships", "expiry_entries", "membership_ages")} == {
        "channel_buffers": 0, "memberships": 0, "expiry_entries": 0, "membership_ages": 0,
    }  # fmt: skip
    assert receiver.stats().local_channels == 0


async def test_the_connections_heartbeat_is_ten_seconds_unless_set(make_layer) -> None:
    """RabbitMQ proposes 60 s; the layer asks for 10 s, so that a node that vanishes is noticed in time."""
    layer = make_layer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "both links up"})
    listing = await asyncio.to_thread(broker_ctl, "-q", "list_connections", "client_properties", "timeout")
    ours = [line for line in listing.splitlines() if layer.queue_name in line]
    assert len(ours) == 2 and all(line.rstrip().endswith("\t10") for line in ours), ours

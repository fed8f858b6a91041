"""A connection cut while a request waits for the broker's answer: the caller is answered, and the layer works after.

Each test starts a call that waits on an RPC (flush's purge, group_add's bind, the declare of a normal channel's
queue, a publish's confirm) and cuts that link's TCP stream on the I/O thread right after the RPC went out, in the
same callback, so its answer can never come back first. pika drops the callbacks of RPCs pending on a channel that
closes; the link's in-flight registry must answer the caller instead (or, for a publish, send it again on the next
connection), and reset what the side kept for that connection (before issue 11, a cut flush() hung for ever and the
process then dropped every delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
from collections.abc import Awaitable, Callable

import pytest
from pika.exceptions import StreamLostError

from channels_rabbitmq_threaded import BrokerUnavailable, RabbitmqChannelLayer, RabbitmqLayerError

from ..conftest import TEST_EXCHANGE, links


def cut_right_after(layer: RabbitmqChannelLayer, role: str, method: str) -> None:
    """Make the next call of one side's `method` cut its link's stream on the I/O thread right after it sent its RPC,
    before any answer can be read: as a network fault at the worst moment, deterministically."""
    side = operator.attrgetter(f"hub.{role}")(layer._io_thread)
    original = getattr(side, method)

    def then_cut(*args: object) -> None:
        del side.__dict__[method]  # once only: what the layer does after the cut runs as usual
        original(*args)
        link = links(layer).consumer if role.startswith("consumer") else side.link
        link.connection._terminate_stream(StreamLostError("test: the stream was cut"))

    setattr(side, method, then_cut)


async def answered_despite_a_cut(layer: RabbitmqChannelLayer, role: str, method: str, call: Awaitable[object]) -> None:
    cut_right_after(layer, role, method)
    with pytest.raises(BrokerUnavailable):
        await asyncio.wait_for(call, 15)


async def succeeds_despite_a_cut(layer: RabbitmqChannelLayer, role: str, method: str, call: Awaitable[object]) -> None:
    """A publish is sent again on the next connection: the caller sees no cut at all."""
    cut_right_after(layer, role, method)
    await asyncio.wait_for(call, 15)


async def delivers_again(layer: RabbitmqChannelLayer, channel: str) -> None:
    """Probe until the consumer is back (probes sent while its queue is gone are returned and dropped)."""
    waiting = asyncio.ensure_future(layer.receive(channel))
    for _ in range(150):  # at most 30 s
        with contextlib.suppress(RabbitmqLayerError):
            await layer.send(channel, {"type": "probe"})
        done, _ = await asyncio.wait({waiting}, timeout=0.2)
        if done:
            assert waiting.result() == {"type": "probe"}
            return
    waiting.cancel()
    raise AssertionError("the layer delivered nothing after the cut")


Call = Callable[[RabbitmqChannelLayer, str], Awaitable[object]]
CALLS: dict[str, tuple[str, str, Call]] = {  # the side, its method that sends the RPC, the call
    "flush": ("consumer", "purge", lambda layer, channel: layer.flush()),
    "group_add": ("consumer.bindings", "add_member", lambda layer, channel: layer.group_add("cut-group", channel)),
    "normal-queue declare": ("publisher", "publish", lambda layer, channel: layer.send("jobs.cut", {"type": "job"})),
    "publish": ("publisher", "publish", lambda layer, channel: layer.send(channel, {"type": "once"})),
}
SENT_AGAIN = {"normal-queue declare", "publish", "group_add"}  # run again on the next connection


@pytest.mark.parametrize("name", list(CALLS))
async def test_a_cut_while_a_request_waits_for_its_rpc(make_layer, name: str) -> None:
    layer = make_layer(normal_channel_prefix=f"{TEST_EXCHANGE}.")
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "warm up the publisher"})
    assert await layer.receive(channel) == {"type": "warm up the publisher"}
    role, method, call = CALLS[name]
    if name in SENT_AGAIN:
        await succeeds_despite_a_cut(layer, role, method, call(layer, channel))
    else:
        await answered_despite_a_cut(layer, role, method, call(layer, channel))
    if name == "publish":  # delivered once: a copy the broker may have had is dropped by the receiver's window
        assert await asyncio.wait_for(layer.receive(channel), 10) == {"type": "once"}
    if name == "normal-queue declare":
        assert await asyncio.wait_for(layer.receive("jobs.cut"), 10) == {"type": "job"}
    await delivers_again(layer, channel)
    if name == "group_add":  # the membership was kept and bound again on reconnect
        await layer.group_send("cut-group", {"type": "to the group"})
        assert await asyncio.wait_for(layer.receive(channel), 10) == {"type": "to the group"}

"""Groups and direct messages between separate OS processes, as on a real site."""

from __future__ import annotations

import asyncio
import multiprocessing

from ..conftest import HOST, TEST_EXCHANGE


def member_process(exchange: str, group: str, names, ready, done) -> None:
    """Another process: joins `group`, reports its channel, then receives two messages and echoes them back."""
    from channels_rabbitmq_threaded import RabbitmqChannelLayer

    async def main() -> None:
        layer = RabbitmqChannelLayer(host=HOST, groups_exchange=exchange)
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        names.put(channel)
        ready.set()
        first = await layer.receive(channel)
        second = await layer.receive(channel)
        await layer.send(first["reply_to"], {"type": "echo", "got": [first["n"], second["n"]], "from": channel})
        await layer.close()

    asyncio.run(main())
    done.set()


async def test_group_send_reaches_members_in_two_other_processes(layer) -> None:
    context = multiprocessing.get_context("spawn")
    names, ready_events, done_events, processes = context.Queue(), [], [], []
    for _ in range(2):
        ready, done = context.Event(), context.Event()
        process = context.Process(target=member_process, args=(TEST_EXCHANGE, "two-procs", names, ready, done))
        process.start()
        ready_events.append(ready)
        done_events.append(done)
        processes.append(process)
    try:
        for ready in ready_events:
            assert await asyncio.to_thread(ready.wait, 30)
        members = {names.get(timeout=5) for _ in range(2)}
        inbox = await layer.new_channel()
        await layer.group_send("two-procs", {"type": "g", "n": 1, "reply_to": inbox})
        await layer.group_send("two-procs", {"type": "g", "n": 2, "reply_to": inbox})
        echoes = [await asyncio.wait_for(layer.receive(inbox), 30) for _ in range(2)]
        assert {echo["from"] for echo in echoes} == members
        assert all(echo["got"] == [1, 2] for echo in echoes)  # both messages, in order
        for done in done_events:
            assert await asyncio.to_thread(done.wait, 30)
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()


def flushed_member(exchange: str, names, ready, flushed, done) -> None:
    """Joins a group, then echoes every message's type to its reply_to until 'stop'; sets `flushed` on flush."""
    import logging

    from channels_rabbitmq_threaded import RabbitmqChannelLayer

    class OnFlush(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "flush() by" in record.getMessage():
                flushed.set()

    logging.getLogger("channels_rabbitmq_threaded").addHandler(OnFlush())
    logging.getLogger("channels_rabbitmq_threaded").setLevel(logging.INFO)

    async def main() -> None:
        layer = RabbitmqChannelLayer(host=HOST, groups_exchange=exchange)
        channel = await layer.new_channel()
        await layer.group_add("flush-me", channel)
        names.put(channel)
        ready.set()
        while (message := await layer.receive(channel))["type"] != "stop":
            await layer.send(message["reply_to"], {"type": "echo", "of": message["type"]})
        await layer.close()

    asyncio.run(main())
    done.set()


async def test_flush_drops_the_memberships_of_other_processes(layer) -> None:
    context = multiprocessing.get_context("spawn")
    names, ready, flushed, done = context.Queue(), context.Event(), context.Event(), context.Event()
    process = context.Process(target=flushed_member, args=(TEST_EXCHANGE, names, ready, flushed, done))
    process.start()
    try:
        assert await asyncio.to_thread(ready.wait, 30)
        member = names.get(timeout=5)
        inbox = await layer.new_channel()
        await layer.group_send("flush-me", {"type": "before", "reply_to": inbox})
        assert await asyncio.wait_for(layer.receive(inbox), 30) == {"type": "echo", "of": "before"}
        await layer.flush()
        assert await asyncio.to_thread(flushed.wait, 30), "the member heard of the flush"
        inbox = await layer.new_channel()  # flush() reset this layer too
        await layer.group_send("flush-me", {"type": "group-after-flush", "reply_to": inbox})
        await layer.send(member, {"type": "direct-after-flush", "reply_to": inbox})
        assert await asyncio.wait_for(layer.receive(inbox), 30) == {"type": "echo", "of": "direct-after-flush"}
        await layer.send(member, {"type": "stop"})
        assert await asyncio.to_thread(done.wait, 30)
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()

"""Groups and direct messages between separate OS processes, as on a real site."""

from __future__ import annotations

import asyncio
import multiprocessing

from .conftest import HOST, TEST_EXCHANGE


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

"""What a test run leaves on a broker, removed by the run's prefix.

Every name the tests give the broker begins with the run's prefix (conftest's `TEST_EXCHANGE`, taken from
`TEST_RUN_PREFIX` when a runner sets it): groups exchanges and their `.control` and `.direct` twins, normal
channels' queues, Celery's task queues. `remove_prefixed` lists the broker's queues and exchanges with rabbitmqctl
and deletes those under the prefix, so nothing depends on a hand-kept list of names. Where the tests have no
rabbitmqctl (the python314 root), the runner outside the root calls it after the run.
"""

from __future__ import annotations

import subprocess

import pika


def names_on_broker(ctl: list[str], kind: str) -> list[str]:
    """The names of the broker's `kind` ("queues" or "exchanges") in the default vhost."""
    command = [*ctl, "-q", f"list_{kind}", "name", "--no-table-headers"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout.split()


def remove_prefixed(prefix: str, url: str, ctl: list[str]) -> list[str]:
    """Delete every queue and exchange whose name starts with `prefix`; the names deleted."""
    queues = [name for name in names_on_broker(ctl, "queues") if name.startswith(prefix)]
    exchanges = [name for name in names_on_broker(ctl, "exchanges") if name.startswith(prefix)]
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for queue in queues:
            channel.queue_delete(queue)
        for exchange in exchanges:
            channel.exchange_delete(exchange)
    finally:
        connection.close()
    return queues + exchanges

"""The django-health-check check (the `health` extra) against a live and an unreachable broker. django-health-check
4 needs Django 5.2 or newer, so with an older Django (the py310 tox env runs 4.2) it is not installed and these
are skipped."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import channel_layers

from ..conftest import configure_django
from ..support.private_node import free_port

pytest.importorskip("health_check", reason="django-health-check 4 needs Django 5.2: not installed here")

from health_check.exceptions import ServiceUnavailable

from channels_rabbitmq_threaded.health import ChannelLayer

configure_django()  # django-health-check's exceptions read settings


async def test_the_health_check_pings_through_the_broker(make_layer, registered) -> None:
    registered["crt-live"] = channel_layers.backends["crt-live"] = make_layer()
    await ChannelLayer(alias="crt-live").run()  # no exception: healthy


async def test_the_health_check_reports_an_unreachable_broker_within_its_timeout(make_layer, registered) -> None:
    dead = make_layer(host=f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F", connect_timeout=1)
    registered["crt-dead"] = channel_layers.backends["crt-dead"] = dead
    with pytest.raises(ServiceUnavailable, match="the channel layer"):
        await asyncio.wait_for(ChannelLayer(alias="crt-dead").run(), 30)  # the outer bound only catches a hang
    registered["crt-other"] = channel_layers.backends["crt-other"] = object()  # type: ignore[assignment]
    with pytest.raises(ServiceUnavailable, match="not a channels_rabbitmq_threaded layer"):
        await ChannelLayer(alias="crt-other").run()

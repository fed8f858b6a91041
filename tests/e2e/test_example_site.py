"""End to end: the example site (docs/example) with real servers, real clients, a real browser, a private broker.

The site runs as users run it (`docs/example/run.py`): Daphne for WebSockets, gunicorn (2 workers x 4 threads) for
the page and the plain views that call `async_to_sync(group_send)`, and a Celery prefork worker with two children
whose task reports progress with `group_send_sync`. Everything, Celery's broker included, talks to a private
RabbitMQ node, so that the connection-cutting test cuts only the site's connections.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from ..conftest import ROOT, launch_chromium
from ..support.private_node import PrivateNode, free_port


def _load_launcher():
    """The example's own launcher, docs/example/run.py, loaded under a name of its own."""
    spec = importlib.util.spec_from_file_location("example_site_run", ROOT / "docs" / "example" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


launcher = _load_launcher()
Site, start_site = launcher.Site, launcher.start_site

ARTIFACTS = ROOT / "tests" / "artifacts"

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def node(module_amqp_node: PrivateNode) -> PrivateNode:
    return module_amqp_node


@pytest.fixture(scope="module")
def site(node: PrivateNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    amqp_url = f"amqp://guest:guest@127.0.0.1:{node.port}/%2F"
    site = start_site(amqp_url, free_port(), free_port(), tmp_path_factory.mktemp("example-logs"))
    try:
        yield site
    finally:
        site.stop()


class Browserless:
    """What a page does over HTTP: fetch the room (for the CSRF cookie), then POST with the token."""

    def __init__(self, site: Site) -> None:
        self._site = site
        self._jar = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self._jar))
        self._opener.open(f"{site.http_url}/rooms/lobby/").read()
        self._token = next(cookie.value for cookie in self._jar if cookie.name == "csrftoken")

    def post(self, path: str, **fields: object) -> tuple[int, dict]:
        data = urllib.parse.urlencode({k: str(v) for k, v in fields.items()}).encode()
        request = urllib.request.Request(self._site.http_url + path, data=data, headers={"X-CSRFToken": self._token})
        try:
            with self._opener.open(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, {}

    async def apost(self, path: str, **fields: object) -> tuple[int, dict]:
        return await asyncio.to_thread(self.post, path, **fields)


async def join(site: Site, room: str) -> websockets.ClientConnection:
    origin = site.http_url  # the page's origin, as a browser sends it
    return await websockets.connect(f"{site.ws_url}/ws/rooms/{room}/", origin=origin, max_queue=None)


async def next_event(client: websockets.ClientConnection, timeout: float = 30) -> dict:
    return json.loads(await asyncio.wait_for(client.recv(), timeout))


async def quiet_for(client: websockets.ClientConnection, seconds: float) -> bool:
    """True when nothing arrives for `seconds`."""
    try:
        await asyncio.wait_for(client.recv(), seconds)
    except TimeoutError:
        return True
    return False


async def test_a_post_to_the_wsgi_view_reaches_exactly_the_clients_of_its_room(site: Site) -> None:
    http = Browserless(site)
    red = [await join(site, "red") for _ in range(2)]
    blue = await join(site, "blue")
    assert await http.apost("/rooms/red/messages", text="to red") == (200, {"sent": True})
    for client in red:
        assert await next_event(client) == {"kind": "message", "text": "to red", "source": "wsgi"}
    assert await quiet_for(blue, 1.0)  # the other room heard nothing
    for client in [*red, blue]:
        await client.close()


async def test_a_celery_jobs_progress_reaches_the_room_in_order(site: Site) -> None:
    http = Browserless(site)
    client = await join(site, "jobs")
    status, job = await http.apost("/rooms/jobs/jobs", steps=8, pause=0.05)
    assert status == 202
    events = [await next_event(client) for _ in range(8)]
    assert events == [{"kind": "progress", "job": job["job"], "step": n, "steps": 8} for n in range(1, 9)]
    await client.close()


async def test_200_clients_in_one_room_receive_every_one_of_50_broadcasts(site: Site) -> None:
    http = Browserless(site)
    clients = await asyncio.gather(*(join(site, "crowd") for _ in range(200)))
    for n in range(50):
        assert (await http.apost("/rooms/crowd/messages", text=f"broadcast {n}"))[0] == 200

    async def count(client: websockets.ClientConnection) -> list[str]:
        return [(await next_event(client, 60))["text"] for _ in range(50)]

    received = await asyncio.gather(*(count(client) for client in clients))
    expected = [f"broadcast {n}" for n in range(50)]
    assert sum(texts == expected for texts in received) == 200  # every client, every broadcast, in order
    await asyncio.gather(*(client.close() for client in clients))


async def test_a_client_that_vanishes_does_not_hold_up_the_others_and_leaves_its_group(site: Site) -> None:
    http = Browserless(site)
    zombie = await join(site, "zombie")
    others = [await join(site, "zombie") for _ in range(2)]
    zombie.transport.abort()  # the TCP connection dies: no closing handshake (a laptop lid, a lost network)
    for n in range(20):
        assert (await http.apost("/rooms/zombie/messages", text=f"after {n}"))[0] == 200
    for client in others:
        assert [(await next_event(client))["text"] for _ in range(20)] == [f"after {n}" for n in range(20)]
    # Daphne noticed the dead socket and the consumer discarded the zombie's channel from the group.
    for _ in range(100):
        if "left room zombie" in site.log("daphne"):
            break
        await asyncio.sleep(0.1)
    left = [line for line in site.log("daphne").splitlines() if "left room zombie" in line]
    assert len(left) == 1 and left[0].endswith("(code 1006)")  # 1006: closed without a closing handshake
    for client in others:
        await client.close()


async def test_cutting_every_broker_connection_loses_only_what_the_docs_allow(site: Site, node: PrivateNode) -> None:
    http = Browserless(site)
    clients = [await join(site, "cut") for _ in range(3)]
    sent = []
    for n in range(40):
        if n == 15:
            await asyncio.to_thread(node.ctl, "close_all_connections", "end-to-end test")
        status, _ = await http.apost("/rooms/cut/messages", text=f"m{n}")
        if status == 200:  # a 500 is a ConfirmLost or BrokerUnavailable surfacing in the view: it may be lost
            sent.append(f"m{n}")
    # Traffic resumes: keep posting until a message reaches every client, then everything after it arrives.
    for n in range(40, 200):
        if (await http.apost("/rooms/cut/messages", text=f"m{n}"))[0] == 200:
            sent.append(f"m{n}")
            break
        await asyncio.sleep(0.2)
    tail = [f"t{n}" for n in range(10)]
    for text in tail:
        assert (await http.apost("/rooms/cut/messages", text=text))[0] == 200

    for client in clients:
        received = []
        while not received or received[-1] != tail[-1]:
            received.append((await next_event(client, 60))["text"])
        assert len(received) == len(set(received))  # at-most-once: no duplicates
        assert received == [text for text in [*sent, *tail] if text in received]  # in order, nothing unsent
        assert received[-len(tail) :] == tail  # after the reconnect, nothing is lost
    # Celery's worker, whose connections were cut too, reconnected; so did the channel layer in its children.
    status, job = await http.apost("/rooms/cut/jobs", steps=2, pause=0)
    assert status == 202
    for step in (1, 2):
        assert await next_event(clients[0], 60) == {"kind": "progress", "job": job["job"], "step": step, "steps": 2}
    for client in clients:
        await client.close()


async def test_metrics_and_health_after_traffic(site: Site) -> None:
    """Each gunicorn worker serves its own layer's metrics: scrape until one shows a confirmed group_send."""
    http = Browserless(site)
    for n in range(10):
        assert (await http.apost("/rooms/metered/messages", text=f"m{n}"))[0] == 200
    confirmed = 0.0
    for _ in range(20):
        body = await asyncio.to_thread(_get, f"{site.http_url}/metrics")
        confirmed = max(confirmed, _sample(body, 'channels_rabbitmq_calls_total{alias="default",call="group_send",'
                                                 'outcome="confirmed"}'))  # fmt: skip
        if confirmed:
            break
    assert confirmed >= 1
    assert _sample(body, 'channels_rabbitmq_link_up{alias="default",link="publisher"') == 1
    status, health = await asyncio.to_thread(_get_json, f"{site.http_url}/health/")
    assert status == 200, health


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def _get_json(url: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {"body": error.read().decode()[:2000]}


def _sample(exposition: str, prefix: str) -> float:
    """The value of the first sample line that starts with `prefix` (0 if none)."""
    line = next((line for line in exposition.splitlines() if line.startswith(prefix)), "")
    return float(line.rsplit(" ", 1)[1]) if line else 0.0


def test_a_real_browser_sees_the_jobs_progress_and_the_chat(site: Site) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            page.goto(f"{site.http_url}/rooms/browser/")
            page.wait_for_selector("#status:text('connected')")
            page.click("#start-job")
            page.wait_for_selector("#log li.progress:text('step 5 of 5')", timeout=60_000)
            page.fill("#text", "hello from chromium")
            page.press("#text", "Enter")
            page.wait_for_selector("#log li.message:text('hello from chromium (via websocket)')")
            progress = page.locator("#log li.progress").all_inner_texts()
            assert [line.split(": ")[1] for line in progress] == [f"step {n} of 5" for n in range(1, 6)]
            page.screenshot(path=str(ARTIFACTS / "example-room.png"), full_page=True)
        finally:
            browser.close()


def _site_processes(ws_port: int) -> list[int]:
    """Pids of the processes of the site run.py started with `ws_port` (their environment names it; a process that
    rewrites its title, as gunicorn's workers may, can hide it: the ports are the test's firm evidence)."""
    marker = f"EXAMPLE_ASGI_URL=ws://127.0.0.1:{ws_port}\0".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes():
                    pids.append(int(entry.name))
            except OSError:  # ended meanwhile, or not ours to read
                pass
    return pids


def _listening(*ports: int) -> list[str]:
    """The listening sockets on `ports`, as `ss` lists them (a connect can succeed on a free ephemeral port by
    connecting to itself, so a test of "nobody listens" asks the kernel instead)."""
    listeners = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True, check=True).stdout
    return [line for line in listeners.splitlines() if any(f":{port} " in line for port in ports)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_run_py_stops_every_server_on_a_signal(node: PrivateNode, tmp_path: Path, signum: int) -> None:
    http_port, ws_port = free_port(), free_port()
    command = [
        sys.executable, str(ROOT / "docs" / "example" / "run.py"),
        "--amqp", f"amqp://guest:guest@127.0.0.1:{node.port}/%2F",
        "--http-port", str(http_port), "--ws-port", str(ws_port),
    ]  # fmt: skip
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert runner.stdout is not None
        first_line = runner.stdout.readline()
        assert first_line.startswith("Open http://"), first_line + runner.stdout.read()
        assert launcher._accepts(http_port) and launcher._accepts(ws_port)
        assert len(_site_processes(ws_port)) >= 3  # Daphne, gunicorn, Celery (and their workers)
        runner.send_signal(signum)
        deadline = time.monotonic() + 10

        def stopped() -> bool:
            return runner.poll() is not None and not _listening(http_port, ws_port) and not _site_processes(ws_port)

        while time.monotonic() < deadline and not stopped():
            time.sleep(0.2)
        assert runner.poll() is not None, "run.py is still running 10 s after the signal"
        served = _listening(http_port, ws_port)
        assert not served, f"still served 10 s after the signal: {served}"
        assert _site_processes(ws_port) == []
    finally:
        if runner.poll() is None:
            runner.kill()
        for pid in _site_processes(ws_port):
            os.kill(pid, signal.SIGKILL)

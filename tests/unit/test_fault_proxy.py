"""The fault proxy itself: order kept, back-pressure respected, and each fault does what it says."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from ..support.fault_proxy import FaultProxy


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A plain threaded echo server on 127.0.0.1."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:  # the proxy reset it
                pass

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


@pytest.fixture
def proxy(echo_port: int) -> Iterator[FaultProxy]:
    proxy = FaultProxy(echo_port)
    yield proxy
    proxy.close()


def connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=10)


def receive_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_bytes_arrive_in_order_through_latency_and_throttle(proxy: FaultProxy) -> None:
    proxy.latency(0.01)
    proxy.throttle(2_000_000)
    payload = bytes(range(256)) * 4000  # 1 MB, many chunks
    with connect(proxy) as sock:
        writer = threading.Thread(target=sock.sendall, args=(payload,))
        writer.start()
        echoed = receive_exactly(sock, len(payload))
        writer.join(30)
    assert echoed == payload


def test_a_stall_holds_data_without_losing_it_and_respects_back_pressure(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"before")
        assert receive_exactly(sock, 6) == b"before"
        proxy.stall()
        sock.sendall(b"during")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(10)  # the peer is frozen: the connection stays open and silent
        sock.setblocking(False)  # back-pressure: a stalled proxy stops reading, so our send buffer fills
        sent = 0
        try:
            while sent < 100_000_000:
                sent += sock.send(b"x" * 65536)
        except BlockingIOError:
            pass
        assert sent < 100_000_000
        sock.settimeout(30)
        proxy.resume()
        assert receive_exactly(sock, 6) == b"during"
        assert receive_exactly(sock, sent) == b"x" * sent


def test_reset_ends_open_connections(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"ping")
        assert receive_exactly(sock, 4) == b"ping"
        proxy.reset()
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            for _ in range(100):  # the reset may show on the next read or the next write
                sock.sendall(b"more")
                if not sock.recv(10):
                    raise ConnectionResetError("closed")


def test_refuse_resets_new_connections_and_clear_lets_them_in(proxy: FaultProxy) -> None:
    proxy.refuse(True)
    # the reset shows at connect, or at the first read or write
    with pytest.raises((ConnectionResetError, BrokenPipeError)), connect(proxy) as sock:
        for _ in range(100):
            sock.sendall(b"hello")
            if not sock.recv(10):
                raise ConnectionResetError("closed")
    proxy.clear()
    with connect(proxy) as sock:
        sock.sendall(b"hello")
        assert receive_exactly(sock, 5) == b"hello"


def test_blackhole_accepts_and_never_answers(proxy: FaultProxy) -> None:
    proxy.blackhole(True)
    with connect(proxy) as sock:
        sock.sendall(b"anyone?")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(10)
    assert proxy.accepted == 1

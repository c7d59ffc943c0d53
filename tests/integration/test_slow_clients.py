"""Slow and large clients against a real server: stalled headers and dribbled bodies are cut off
at their deadlines, and request bodies in flight are capped (503 past the cap) and released."""

import json
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import call, model_config, start_server
from workbench import models
from workbench.serving.protocol import encode_request

HEADER_S, BODY_S = 1.0, 3.0
MIB = 1 << 20
SLACK_S = 8.0  # generous: the machine is shared


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("slow"), model_config("mlp", max_batch=8, max_queue_rows=64),
                    header_timeout_s=HEADER_S, body_timeout_s=BODY_S,
                    max_body_bytes=3 * MIB, max_body_bytes_in_flight=4 * MIB)
    yield server
    server.stop()


def _connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=SLACK_S)


def _until_closed(sock: socket.socket, deadline: float) -> bytes | None:
    """What the server sent before closing, or None if it was still open at the deadline (monotonic)."""
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    return None


def _response(sock: socket.socket, timeout_s: float = SLACK_S) -> tuple[int, dict, bytes]:
    sock.settimeout(timeout_s)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a full response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


def _assert_408_or_nothing(data: bytes):
    assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:200]
    if data:
        assert b"connection: close" in data.lower() and b"not received within" in data


def test_stalled_headers_are_cut_off(server):
    half = [_connect(server) for _ in range(40)]
    for sock in half:
        sock.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
    silent = [_connect(server) for _ in range(10)]
    kept_alive = _connect(server)  # its second request stalls: the deadline restarts per request
    kept_alive.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert _response(kept_alive)[0] == 200
    kept_alive.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 1")
    started = time.monotonic()
    assert call(server.url + "/v2/health/ready")[0] == 200  # others are answered meanwhile
    deadline = started + HEADER_S + SLACK_S
    outcomes = [_until_closed(sock, deadline) for sock in [*half, kept_alive, *silent]]
    elapsed = time.monotonic() - started
    assert all(data is not None for data in outcomes), "a stalled connection was left open"
    for data in outcomes[:len(half) + 1]:
        _assert_408_or_nothing(data)
    assert outcomes[-len(silent):] == [b""] * len(silent)  # never sent a byte: closed, not answered
    assert elapsed < HEADER_S + SLACK_S
    for sock in [*half, *silent, kept_alive]:
        sock.close()


def _dribble(server) -> bytes | None:
    with _connect(server) as sock:
        sock.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
        deadline = time.monotonic() + BODY_S + SLACK_S
        while time.monotonic() < deadline:
            if select.select([sock], [], [], 0.1)[0]:
                return _until_closed(sock, time.monotonic() + SLACK_S)
            try:
                sock.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                return b""
        return None


def test_dribbled_bodies_are_cut_off(server):
    started = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(lambda _: _dribble(server), range(20)))
    assert all(data is not None for data in outcomes), "a dribbling connection was left open"
    for data in outcomes:
        _assert_408_or_nothing(data)
    assert any(data for data in outcomes), "no dribbling client got its 408"
    assert time.monotonic() - started < BODY_S + 2 * SLACK_S
    assert call(server.url + "/v2/health/live")[0] == 200


def _large_body(size: int) -> bytes:
    body = encode_request(models.sample_inputs(models.load(models.resolve("mlp")), 1, seed=3))
    return body + b" " * (size - len(body))  # JSON allows the padding: a valid request of any size


def _post_head(length: int) -> bytes:
    return (b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % length)


def _hold(server, body: bytes, count: int, fit: int) -> tuple[list, list]:
    """`count` uploads that send their headers and a first part of the body, then wait: those the
    server admitted (silent, holding their bytes) and the answers of those it refused. Waits for
    the refusals expected when `fit` are admitted, then a little longer for any unexpected ones."""
    socks = [_connect(server) for _ in range(count)]
    for sock in socks:
        sock.sendall(_post_head(len(body)) + body[:65536])
    answered, deadline, settled = {}, time.monotonic() + SLACK_S, None
    while time.monotonic() < min(deadline, settled or deadline) and len(answered) < count:
        for sock in select.select([s for s in socks if s not in answered], [], [], 0.05)[0]:
            answered[sock] = _response(sock)
        if settled is None and len(answered) >= count - fit:
            settled = time.monotonic() + 0.3
    for sock in answered:
        sock.close()
    return [s for s in socks if s not in answered], list(answered.values())


def test_bodies_in_flight_are_capped_and_released(server):
    body = _large_body(MIB - 1024)  # four fit the 4 MiB cap
    admitted, refused = _hold(server, body, 10, fit=4)
    assert len(admitted) == 4 and len(refused) == 6
    for status, headers, answer in refused:
        assert status == 503 and headers["retry-after"] == "1", answer
        assert "server busy" in json.loads(answer)["error"]
    assert call(server.url + "/v2/health/ready")[0] == 200
    with _connect(server) as chunked:  # no declared length: refused once its chunks stop fitting
        chunked.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n10000\r\n" + b" " * 0x10000 + b"\r\n")
        status, headers, _ = _response(chunked)
        assert status == 503 and headers["connection"] == "close"
    with _connect(server) as oversized:  # over max_body_bytes: 413, as before, never 503
        oversized.sendall(_post_head(4 * MIB))
        assert _response(oversized)[0] == 413
    admitted.pop().close()  # a client that gives up mid-body releases its bytes too
    for sock in admitted:
        sock.sendall(body[65536:])
    for sock in admitted:
        status, _, answer = _response(sock)
        assert status == 200 and json.loads(answer)["outputs"][0]["shape"] == [1, 10]
        sock.close()
    # Released: the full cap is free again, and ordinary requests are answered.
    admitted, refused = _hold(server, body, 4, fit=4)
    assert len(admitted) == 4 and refused == []
    for sock in admitted:
        sock.sendall(body[65536:])
        assert _response(sock)[0] == 200
        sock.close()
    assert call(server.url + "/v2/models/mlp/infer", _large_body(2048),
                {"Content-Type": "application/json"})[0] == 200

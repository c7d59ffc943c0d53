"""A lean HTTP/1.1 client for load generation: keep-alive connections over asyncio (uvloop).

Each connection carries one request at a time; the request bytes are built once. Response bodies
are parsed (httptools) but not kept: the generator needs status codes and times, and correctness
is checked separately before the load starts. A server that closes the connection (Flask's
development server does, after every response) costs a reconnect, as it would any client.
"""

import asyncio
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httptools

PATH_SAFE = "/%:@!$&'()*+,;=-._~"  # RFC 3986's path characters, and % for what is already quoted


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str, path: str) -> "Endpoint":
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"'{url}' is not an http://host:port URL")
        # a request line cannot carry a space or a control character: anything not already
        # percent-encoded is quoted (a model named "my model" is /v2/models/my%20model/infer)
        return cls(parts.hostname, parts.port or 80, quote(parts.path.rstrip("/") + path, safe=PATH_SAFE))

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> bytes:
        lines = [f"POST {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 f"Content-Length: {len(body)}", "Content-Type: application/json"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection(asyncio.Protocol):
    def __init__(self):
        self.transport = None
        self.closed = False
        self._waiter: asyncio.Future | None = None
        self._parser = httptools.HttpResponseParser(self)

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))
            self.transport.close()

    def on_message_complete(self):
        keep = self._parser.should_keep_alive()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self._parser.get_status_code())
        if not keep:
            self.closed = True
            self.transport.close()

    def connection_lost(self, exc):
        self.closed = True
        self._fail(ConnectionError("the server closed the connection"))

    def _fail(self, exc: Exception):
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, request: bytes) -> asyncio.Future:
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter


async def connect(endpoint: Endpoint) -> Connection:
    _, protocol = await asyncio.get_running_loop().create_connection(Connection, endpoint.host, endpoint.port)
    return protocol

"""What a slow or large client may hold: read deadlines per connection, request-body bytes per process.

uvicorn closes idle keep-alive connections but has no deadline for reading a request, so a client
that dribbles its headers or body keeps a connection (and what it sent) forever. TimedHttpProtocol
adds one deadline for the headers and one for the body; BodyBudget caps the body bytes that the
requests in flight hold together, so concurrent large uploads cannot take the memory.
"""

from http import HTTPStatus

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

RETRY_AFTER_S = "1"


def _json_error(status: int, message: str, close: bool, retry: bool = False) -> tuple[list, bytes]:
    body = orjson.dumps({"error": message})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"x-content-type-options", b"nosniff")]
    if retry:
        headers.append((b"retry-after", RETRY_AFTER_S.encode()))
    if close:
        headers.append((b"connection", b"close"))
    return headers, body


class TimedHttpProtocol(HttpToolsProtocol):
    """The headers must arrive within header_timeout_s of the connection (or of the request's first
    byte on a kept-alive one), the body within body_timeout_s of the headers. Past a deadline the
    client gets 408 where nothing else was answered yet, and the connection closes.

    A deadline is a time and what to do at it, checked by one repeating timer per connection every
    quarter of the shorter timeout (at most a second): arming and cancelling a loop timer per request
    cost the server more CPU than any other part of its request path but the app."""

    header_timeout_s = 10.0
    body_timeout_s = 30.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._deadline: float | None = None  # loop time
        self._at_deadline = None
        self._ticker = None
        self._in_headers = False

    def connection_made(self, transport):
        super().connection_made(transport)
        self._arm(self.header_timeout_s, self._headers_late)
        self._ticker = self.loop.call_later(self._tick_s(), self._tick)

    def connection_lost(self, exc):
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self._deadline = self._at_deadline = None
        super().connection_lost(exc)

    def _tick_s(self) -> float:
        return min(1.0, self.header_timeout_s / 4, self.body_timeout_s / 4)

    def _arm(self, timeout_s: float, then) -> None:
        self._deadline, self._at_deadline = self.loop.time() + timeout_s, then

    def _tick(self):
        if self._deadline is not None and self.loop.time() >= self._deadline:
            then, self._deadline, self._at_deadline = self._at_deadline, None, None
            then()  # may arm the next deadline
        if not self.transport.is_closing():
            self._ticker = self.loop.call_later(self._tick_s(), self._tick)

    def on_message_begin(self):
        super().on_message_begin()
        self._in_headers = True
        if self._deadline is None:  # a new connection's deadline runs from connection_made
            self._arm(self.header_timeout_s, self._headers_late)

    def on_headers_complete(self):
        self._in_headers = False
        super().on_headers_complete()
        self._arm(self.body_timeout_s, self._body_late)

    def on_message_complete(self):
        self._deadline = self._at_deadline = None
        super().on_message_complete()

    def _headers_late(self):
        # Pipelined behind a request still being answered: a 408 now would land inside that answer.
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm(self.header_timeout_s, self._headers_late)
            return
        # A connection that never sent a byte is closed without an answer, like an idle keep-alive.
        self._expire(408 if self._in_headers else None,
                     f"request headers not received within {self.header_timeout_s:g} s")

    def _body_late(self):
        if self.pipeline:  # queued behind an earlier request: our delay, not the client's
            self._arm(self.body_timeout_s, self._body_late)
            return
        cycle = self.cycle
        answer = not cycle.response_started
        if not cycle.response_complete:
            # Gone before the app runs again, so its reply to the disconnect is not written after
            # the 408 (uvicorn marks this itself only once the close completes).
            cycle.disconnected = True
            cycle.message_event.set()
        self._expire(408 if answer else None, f"request body not received within {self.body_timeout_s:g} s")

    def _expire(self, status: int | None, message: str):
        if self.transport.is_closing():
            return
        if status is not None:
            headers, body = _json_error(status, message, close=True)
            head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()
            self.transport.write(head + b"".join(k + b": " + v + b"\r\n" for k, v in headers) + b"\r\n" + body)
        self.transport.close()


def timed_protocol(header_timeout_s: float, body_timeout_s: float) -> type[TimedHttpProtocol]:
    return type("TimedHttpProtocol", (TimedHttpProtocol,),
                {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s})


class BodyBudget:
    """ASGI middleware: each request's body counts against cap_bytes from when it is admitted until
    the app returns (errors and disconnects included). A declared Content-Length is reserved up
    front, so an upload that cannot fit is refused with 503 before its bytes are read; a chunked
    body is counted as it arrives and refused (connection closed) when it stops fitting. Bodies
    over max_body_bytes pass through for the app's 413. The count is per process."""

    def __init__(self, app, cap_bytes: int, max_body_bytes: int):
        self.app, self.cap_bytes, self.max_body_bytes = app, cap_bytes, max_body_bytes
        self.held = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            return await self.app(scope, receive, send)
        if declared and self.held + declared > self.cap_bytes:
            # Kept alive: uvicorn discards the rest of the body, then the client reads the answer.
            return await _answer(send, 503, self._busy_message(declared), close=False)
        if declared is not None:  # reserved whole: the app's own receive and send need no watching
            self.held += declared
            try:
                return await self.app(scope, receive, send)
            finally:
                self.held -= declared
        held, answered = 0, False

        async def counted_receive():
            nonlocal held, answered
            message = await receive()
            size = len(message.get("body", b""))
            if size and self.held + size > self.cap_bytes:
                answered = True
                await _answer(send, 503, self._busy_message(held + size), close=True)
                return {"type": "http.disconnect"}
            self.held += size
            held += size
            return message

        async def guarded_send(message):
            if not answered:
                await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        finally:
            self.held -= held

    def _busy_message(self, size: int) -> str:
        return (f"server busy: a {size}-byte body does not fit the {self.cap_bytes} bytes of request bodies "
                f"in flight ({self.held} held); retry after {RETRY_AFTER_S} s")


def _content_length(scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _answer(send, status: int, message: str, close: bool):
    headers, body = _json_error(status, message, close=close, retry=status == 503)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

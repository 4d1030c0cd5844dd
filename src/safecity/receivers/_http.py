"""A small HTTP/1.1 server connection, sans I/O (h11 underneath), for receivers that speak HTTP.

Bytes in, requests (or failures with the status to answer) out, reply bytes back; limits on head
and body size are enforced here so every HTTP receiver gets them.
"""

from __future__ import annotations

from dataclasses import dataclass

import h11


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    target: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class HttpFailure:
    """A request that cannot be read; answer it with `status` and close the connection."""

    status: int
    reason: str


_REASONS = {200: b"OK", 400: b"Bad Request", 408: b"Request Timeout", 413: b"Content Too Large",
            431: b"Request Header Fields Too Large", 500: b"Internal Server Error", 503: b"Service Unavailable"}


class HttpServerConnection:
    """The server side of one keep-alive connection: bytes in, whole requests out, replies as bytes.

    Built on h11, which refuses to read the next pipelined request before this one is answered, so
    replies go out in request order by construction.
    """

    def __init__(self, *, max_head_bytes: int = 8192, max_body_bytes: int = 65536) -> None:
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head_bytes)
        self._max_body = max_body_bytes
        self._request: h11.Request | None = None
        self._body = bytearray()
        self.must_close = False

    def receive_data(self, data: bytes) -> None:
        """Bytes from the peer; b"" means the peer closed its side."""
        self._h11.receive_data(data)

    def next_request(self) -> HttpRequest | HttpFailure | None:
        """The next whole request, a failure to answer before closing, or None: need bytes, or done."""
        if self.must_close:
            return None
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self.must_close = True
                return HttpFailure(exc.error_status_hint, f"bad HTTP request: {exc}")
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return None
            if isinstance(event, h11.Request):
                self._request, self._body = event, bytearray()
                if self._declared_length(event) > self._max_body:
                    self.must_close = True
                    return HttpFailure(413, f"body larger than {self._max_body} bytes")
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self._max_body:
                    self.must_close = True
                    return HttpFailure(413, f"body larger than {self._max_body} bytes")
            elif isinstance(event, h11.EndOfMessage):
                request, self._request = self._request, None
                assert request is not None
                return HttpRequest(request.method.decode("ascii"), request.target.decode("ascii", "replace"),
                                   tuple(request.headers), bytes(self._body))
            elif isinstance(event, h11.ConnectionClosed):
                self.must_close = True
                return None

    def pending_continue(self) -> bytes:
        """`100 Continue` for a client that holds its body back until told (else b"")."""
        if not self._h11.they_are_waiting_for_100_continue:
            return b""
        return self._h11.send(h11.InformationalResponse(status_code=100, headers=[])) or b""

    def reply(self, status: int, text: str = "") -> bytes:
        """The response bytes; afterwards the connection is ready for the next request or must close."""
        body = text.encode("utf-8")
        headers = [("content-length", str(len(body)))]
        if body:
            headers.append(("content-type", "text/plain; charset=utf-8"))
        if self.must_close or status == 500:
            headers.append(("connection", "close"))
        try:
            out = self._h11.send(h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, b"")))
            if body:
                out = (out or b"") + (self._h11.send(h11.Data(data=body)) or b"")
            out = (out or b"") + (self._h11.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:
            # h11 cannot frame a reply here (the request never started): write it by hand and close
            self.must_close = True
            reason = _REASONS.get(status, b"").decode()
            return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
                    f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
        else:  # keep-alive is off, or we answered before the body arrived and cannot skip the rest of it
            self.must_close = True
        return bytes(out)

    @staticmethod
    def _declared_length(request: h11.Request) -> int:
        for name, value in request.headers:
            if name == b"content-length":
                return int(value)
        return 0



@dataclass(frozen=True)
class HttpLimits:
    max_head_bytes: int = 8192
    max_body_bytes: int = 65536
    idle_timeout_s: float = 60.0  # a connection must complete a request this often, or it is closed
    max_connections: int = 10_000
    max_backlog_bytes: int = 262_144  # unread pipelined bytes before we stop reading the socket



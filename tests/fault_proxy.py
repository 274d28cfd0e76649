"""A fault-injecting HTTP proxy for drills: sits between the pipeline and the S3 server and, per
request, adds latency, resets the connection, or answers `503 SlowDown` (or, as for a
session whose temporary credentials ran out, `400 ExpiredToken`) itself.

It is a real TCP proxy on 127.0.0.1 (asyncio, in a thread of its own). It reads each HTTP/1.1
request whole (Content-Length or chunked bodies), decides the request's fate from the
`Faults` in force, and relays the rest to the upstream server over a kept-alive connection.
`stop_listening()` / `start_listening()` take the endpoint away and bring it back on the same
port, as an S3 endpoint that is gone refuses connections.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field

SLOWDOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
EXPIRED_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ExpiredToken</Code>'
    b"<Message>The provided token has expired.</Message></Error>"
)


@dataclass(frozen=True)
class Faults:
    """What happens to requests: each matching request (method in `methods`, path matching
    `path`) is delayed with probability `delay_fraction`, reset with `reset_fraction`, or
    answered 503 SlowDown with `slowdown_fraction`."""

    delay_fraction: float = 0.0
    delay_seconds: float = 1.0
    reset_fraction: float = 0.0
    slowdown_fraction: float = 0.0
    expired_fraction: float = 0.0
    methods: frozenset[str] = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE"})
    path: str = ""


@dataclass
class FaultProxy:
    upstream_port: int
    seed: int = 0
    faults: Faults = field(default_factory=Faults)
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fault-proxy", daemon=True)
        self.server: asyncio.Server | None = None
        self.port = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def airflow_connection(self) -> str:
        from tasks.demo.local_s3 import airflow_connection

        return airflow_connection(self.endpoint_url)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        self.start_listening()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_listening()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def start_listening(self) -> None:
        async def listen() -> asyncio.Server:
            return await asyncio.start_server(self.serve, "127.0.0.1", self.port, reuse_address=True)

        self.server = asyncio.run_coroutine_threadsafe(listen(), self.loop).result(timeout=10)
        self.port = self.server.sockets[0].getsockname()[1]

    def stop_listening(self) -> None:
        """New connections are refused from now on; open ones are dropped."""
        server = self.server
        if server is None:
            return
        self.server = None

        async def close() -> None:
            server.close()
            for task in asyncio.all_tasks():
                if task.get_name().startswith("proxy-connection"):
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)

    def set_faults(self, faults: Faults) -> None:
        """Injects `faults` from now on; `counts` start again from zero."""
        with self.lock:
            self.faults = faults
            self.counts.clear()

    def fate(self, method: str, path: str) -> str:
        """'delay', 'reset', 'slowdown' or 'pass' for one request, counted (and counted as
        'matched' when the faults' methods and path apply to it)."""
        with self.lock:
            faults = self.faults
            outcome = "pass"
            if method in faults.methods and re.search(faults.path, path):
                self.counts["matched"] += 1
                draw = self.random.random()
                if draw < faults.reset_fraction:
                    outcome = "reset"
                elif draw < faults.reset_fraction + faults.slowdown_fraction:
                    outcome = "slowdown"
                elif draw < faults.reset_fraction + faults.slowdown_fraction + faults.expired_fraction:
                    outcome = "expired"
                elif self.random.random() < faults.delay_fraction:
                    outcome = "delay"
            self.counts["requests"] += 1
            self.counts[outcome] += 1
            self.counts[f"{outcome} {method}"] += 1
            return outcome

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asyncio.current_task().set_name("proxy-connection")  # type: ignore[union-attr]
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                head = await read_head(reader)
                if head is None:
                    return
                method, path = head.split(b" ", 2)[:2]
                fate = self.fate(method.decode(), path.decode())
                expects_continue = b"\r\nexpect: 100-continue" in head.lower()
                if fate == "reset":
                    reset(writer)
                    return
                if fate in ("slowdown", "expired"):
                    # Answered before the body, as S3 does; a client that sent its body anyway
                    # cannot be told apart from the next request, so the connection closes.
                    status, answer = (
                        (b"503 Slow Down", SLOWDOWN_BODY)
                        if fate == "slowdown"
                        else (b"400 Bad Request", EXPIRED_BODY)
                    )
                    writer.write(
                        b"HTTP/1.1 "
                        + status
                        + b"\r\nContent-Type: application/xml\r\nConnection: close\r\n"
                        + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                        + answer
                    )
                    await writer.drain()
                    return
                if expects_continue:
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    await writer.drain()
                body = await read_body(reader, head)
                if fate == "delay":
                    await asyncio.sleep(self.faults.delay_seconds)
                if upstream is None:
                    upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                upstream[1].write(head + body)
                await upstream[1].drain()
                response_head, response_body = await read_message(upstream[0], request_method=method)
                while response_head is not None and response_head.startswith(b"HTTP/1.1 100"):
                    response_head, response_body = await read_message(upstream[0], request_method=method)
                if response_head is None:
                    reset(writer)
                    return
                writer.write(response_head + response_body)
                await writer.drain()
                if b"\r\nconnection: close" in response_head.lower():
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            if upstream is not None:
                upstream[1].close()
            if not writer.is_closing():
                writer.close()


def reset(writer: asyncio.StreamWriter) -> None:
    """Closes with a TCP RST rather than a FIN, as a dropped connection looks to the client."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def read_head(reader: asyncio.StreamReader) -> bytes | None:
    """A message's head through the blank line; None when the peer closed the connection."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None


async def read_body(reader: asyncio.StreamReader, head: bytes, request_method: bytes | None = None) -> bytes:
    """The body that follows `head`; `request_method` is set when reading a response (a HEAD's
    response, a 1xx, 204 or 304 has none)."""
    lowered = head.lower()
    if request_method is not None:
        status = int(head.split(b" ", 2)[1])
        if request_method == b"HEAD" or status in (204, 304) or status < 200:
            return b""
    length = re.search(rb"\r\ncontent-length:\s*(\d+)", lowered)
    if length:
        return await reader.readexactly(int(length.group(1)))
    if re.search(rb"\r\ntransfer-encoding:\s*chunked", lowered):
        return await read_chunks(reader)
    if request_method is not None:
        return await reader.read()  # a response delimited by closing the connection
    return b""


async def read_message(reader: asyncio.StreamReader, request_method: bytes) -> tuple[bytes | None, bytes]:
    """One HTTP/1.1 response to a `request_method` request: head and body as raw bytes."""
    head = await read_head(reader)
    if head is None:
        return None, b""
    return head, await read_body(reader, head, request_method)


async def read_chunks(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size_line = await reader.readuntil(b"\r\n")
        body += size_line
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            while True:  # trailers, then the blank line
                line = await reader.readuntil(b"\r\n")
                body += line
                if line == b"\r\n":
                    return body
        body += await reader.readexactly(size + 2)

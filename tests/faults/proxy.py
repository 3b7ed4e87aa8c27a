"""A loopback TCP proxy that can break the network on command (asyncio, 127.0.0.1 only).

It sits between the pages and a Directus and forwards bytes both ways. Faults:

- ``cut()``: close every proxied connection (both sides get a FIN) and stop listening, so new
  connections are refused, until ``accept_again()``.
- ``stall()``: every connection, open or new, stops forwarding in both directions; bytes are
  read and dropped and nothing is closed (a half-open, silent network). A side that closes on
  its own is not told to the other. ``resume()`` makes connections opened *after* it forward
  again; the stalled ones stay blackholed for good.

All methods run in the proxy's event loop (call them from a coroutine on that loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"
CHUNK = 65536


@dataclass
class Link:
    """One proxied connection: the client's side and, when forwarding, Directus's side."""

    number: int
    opened_at: float
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    blackholed: bool = False
    bytes_up: int = 0  # client -> Directus, forwarded
    bytes_down: int = 0  # Directus -> client, forwarded
    dropped: int = 0  # bytes read while blackholed and thrown away
    tasks: list[asyncio.Task] = field(default_factory=list)
    closed: bool = False


class FaultProxy:
    def __init__(self, listen_port: int, target_port: int, target_host: str = HOST) -> None:
        self.listen_port = listen_port
        self.target_host = target_host
        self.target_port = target_port
        self.links: list[Link] = []
        self.stalled = False
        self.log: list[tuple[float, str]] = []
        self._server: asyncio.Server | None = None
        self._count = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.listen_port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    # ----- life cycle -----

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, HOST, self.listen_port, reuse_address=True
            )
            self._note("listening")

    async def stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
            self._note("not listening")

    async def close(self) -> None:
        """Stop everything: the listener and every link (blackholed ones too)."""
        await self.stop_listening()
        for link in list(self.links):
            self._close_link(link)
        tasks = [t for link in self.links for t in link.tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)

    # ----- faults -----

    async def cut(self) -> int:
        """Close every proxied connection and refuse new ones. Returns how many were closed."""
        await self.stop_listening()
        open_links = [link for link in self.links if not link.closed]
        for link in open_links:
            self._close_link(link)
        self._note(f"cut: closed {len(open_links)} connections")
        return len(open_links)

    async def accept_again(self) -> None:
        await self.start()
        self._note("accepting again")

    def stall(self) -> int:
        """Blackhole every open connection and every new one. Returns how many were open."""
        self.stalled = True
        open_links = [link for link in self.links if not link.closed]
        for link in open_links:
            link.blackholed = True
        self._note(f"stall: {len(open_links)} open connections blackholed")
        return len(open_links)

    def resume(self) -> None:
        """New connections forward again; the stalled ones stay blackholed."""
        self.stalled = False
        self._note("resume (new connections only)")

    # ----- stats -----

    def summary(self) -> str:
        parts = []
        for link in self.links:
            state = "blackholed" if link.blackholed else ("closed" if link.closed else "open")
            parts.append(
                f"#{link.number} {state} up={link.bytes_up} down={link.bytes_down} "
                f"dropped={link.dropped}"
            )
        return "; ".join(parts) or "(no connections)"

    # ----- internals -----

    def _note(self, what: str) -> None:
        self.log.append((time.time(), what))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._count += 1
        link = Link(self._count, time.time(), writer, blackholed=self.stalled)
        self.links.append(link)
        if link.blackholed:
            # Accepted, but nothing will ever come back: read and drop what the client sends.
            link.tasks.append(asyncio.current_task())
            await self._drain_forever(link, reader)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            self._close_link(link)
            return
        link.upstream = up_writer
        if link.closed:  # cut while we were connecting
            self._close_link(link)
            return
        link.tasks = [
            asyncio.ensure_future(self._pump(link, reader, up_writer, "up")),
            asyncio.ensure_future(self._pump(link, up_reader, writer, "down")),
        ]

    async def _drain_forever(self, link: Link, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    return
                link.dropped += len(data)

    async def _pump(
        self,
        link: Link,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        direction: str,
    ) -> None:
        try:
            while True:
                data = await src.read(CHUNK)
                if not data:
                    break
                if link.blackholed:
                    link.dropped += len(data)
                    continue
                dst.write(data)
                if direction == "up":
                    link.bytes_up += len(data)
                else:
                    link.bytes_down += len(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        if link.blackholed:
            # A half-open network tells nobody: keep the other side open and silent. Keep
            # reading so the stalled side's bytes are dropped, not buffered.
            return
        self._close_link(link)

    def _close_link(self, link: Link) -> None:
        link.closed = True
        for writer in (link.client, link.upstream):
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close()

"""CPython transport: the ``websockets`` library, as a thin shell around the protocol core."""

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import DATA_OPCODES, Frame
from websockets.http11 import Request, Response

# The largest message accepted, in bytes: a bigger one closes the socket (code 1009; the
# client reconnects) instead of being buffered without bound. Directus refuses texts over
# 10,000 characters (stack/provision.py), so a read of 1,000 such rows in 4-byte UTF-8 is
# 40 MB; the websockets default (1 MiB) would refuse a read of a few hundred long messages.
MAX_SIZE = 64 * 2**20
READ_BUFFER = 256 * 2**10  # bytes read from a socket at once (asyncio's own read size)
_thread = threading.local()  # its read buffer


class _Connection(ClientConnection, asyncio.BufferedProtocol):
    """A connection that hands each message to ``deliver`` as its last frame is parsed.

    websockets queues messages for a reader task that ``recv()`` wakes; here the core takes
    them at once, in the callback that read the bytes, which saves a future and a task step
    per message (the fan-out's hot path). Messages read before ``deliver`` is set wait in
    ``early``. Fragments are joined here; ``max_size`` is still enforced by websockets.

    The socket is read into a buffer kept for the thread (a buffered protocol): as a plain
    protocol, asyncio allocates 256 KiB for every read, which cost more than the rest of a
    small message's way together. One buffer serves every connection of the thread, as the
    bytes are copied out before the read returns (one per connection: 256 MiB for 1,000).
    """

    deliver: "Callable[[str], object] | None" = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.early: list[str] | None = []
        self._fragments: list[bytes] = []

    def get_buffer(self, sizehint: int) -> memoryview:
        buffer: memoryview | None = getattr(_thread, "buffer", None)
        if buffer is None:
            buffer = _thread.buffer = memoryview(bytearray(READ_BUFFER))
        return buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(_thread.buffer[:nbytes]))

    def process_event(self, event: "Request | Response | Frame") -> None:
        if (
            not isinstance(event, Frame)
            or self.response is None
            or event.opcode not in DATA_OPCODES
        ):
            super().process_event(event)  # the handshake's response; control frames
            return
        if self._fragments or not event.fin:
            self._fragments.append(bytes(event.data))
            if not event.fin:
                return
            data, self._fragments = b"".join(self._fragments), []
        else:
            data = bytes(event.data)
        text = data.decode("utf-8", "replace")  # not JSON then: the core reports it
        if self.deliver is None:
            if self.early is not None:
                self.early.append(text)
            return
        try:
            self.deliver(text)
        except Exception as error:  # websockets' data_received must not raise
            self.loop.call_exception_handler({"message": "WebSocket message", "exception": error})


class WebsocketsSocket:
    """One WebSocket connection; reports to ``listener`` like the browser's ``WebSocket`` does."""

    def __init__(self, url: str, listener: Any, max_size: int = MAX_SIZE) -> None:
        self.url = url
        self.max_size = max_size
        self._listener = listener
        self._outgoing: asyncio.Queue[str | None] = asyncio.Queue()
        self._closing = False
        self._task = asyncio.ensure_future(self._run())

    def send(self, text: str) -> None:
        self._outgoing.put_nowait(text)

    def close(self) -> None:
        self._closing = True
        self._outgoing.put_nowait(None)

    async def _run(self) -> None:
        code, reason = None, ""
        try:
            # ping_interval=None: Directus has its own heartbeat, which the core answers.
            async with connect(
                self.url,
                ping_interval=None,
                max_size=self.max_size,
                create_connection=_Connection,
            ) as ws:
                if self._closing:
                    return
                self._listener.socket_opened()
                assert isinstance(ws, _Connection)
                for text in ws.early or ():
                    self._listener.socket_message(text)
                ws.early = None
                ws.deliver = self._listener.socket_message
                writer = asyncio.ensure_future(self._write(ws))
                try:
                    await ws.wait_closed()
                finally:
                    writer.cancel()
                code, reason = _close_info(ws.protocol)
        except ConnectionClosed as closed:
            code, reason = _close_info(closed)
        except asyncio.CancelledError:
            raise
        except InvalidStatus as refused:  # an HTTP answer instead of a WebSocket
            response = refused.response
            body = (response.body or b"").decode("utf-8", "replace")[:200]
            self._listener.socket_refused(response.status_code, body)
            return
        except Exception as error:  # refused, DNS, TLS, handshake status...
            self._listener.socket_error(error)
            code, reason = 1006, str(error)
        self._listener.socket_closed(code, reason)

    async def _write(self, ws: Any) -> None:
        while True:
            text = await self._outgoing.get()
            if text is None:
                await ws.close()
                return
            try:
                await ws.send(text)
            except ConnectionClosed:
                return


def _close_info(source: object) -> tuple[int | None, str]:
    frame = getattr(source, "rcvd", None) or getattr(source, "close_rcvd", None)
    if frame is None:
        return 1005, ""
    return frame.code, frame.reason

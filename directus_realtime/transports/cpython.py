"""CPython transport: the ``websockets`` library, as a thin shell around the protocol core."""

import asyncio
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

# The largest message accepted, in bytes: a bigger one closes the socket (code 1009; the
# client reconnects) instead of being buffered without bound. Directus refuses texts over
# 10,000 characters (stack/provision.py), so a read of 1,000 such rows in 4-byte UTF-8 is
# 40 MB; the websockets default (1 MiB) would refuse a read of a few hundred long messages.
MAX_SIZE = 64 * 2**20


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
            async with connect(self.url, ping_interval=None, max_size=self.max_size) as ws:
                if self._closing:
                    return
                self._listener.socket_opened()
                writer = asyncio.ensure_future(self._write(ws))
                try:
                    async for text in ws:
                        if isinstance(text, bytes):
                            text = text.decode("utf-8", "replace")
                        self._listener.socket_message(text)
                finally:
                    writer.cancel()
                code, reason = _close_info(ws)
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

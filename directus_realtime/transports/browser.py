"""Browser transport: the native ``WebSocket``, reached through PyScript's JS FFI.

The only module of the client that touches JavaScript. Handlers are wrapped once with
``create_proxy`` (a bare function would be a borrowed proxy that dies after the call) and
destroyed when the socket closes (where they can be: MicroPython's proxies have no
``destroy()``). The same code runs on PyScript's Pyodide and on its MicroPython.
"""

from pyscript import window
from pyscript.ffi import create_proxy, to_js

# typing.TYPE_CHECKING without importing typing at run time (MicroPython has none).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_EVENTS = ("open", "message", "close", "error")


class BrowserWebSocket:
    def __init__(self, url: str, listener: "Any") -> None:
        self.url = url
        self._listener = listener
        self._ws = window.WebSocket.new(url)
        self._proxies = {
            "open": create_proxy(self._on_open),
            "message": create_proxy(self._on_message),
            "close": create_proxy(self._on_close),
            "error": create_proxy(self._on_error),
        }
        for name in _EVENTS:
            self._ws.addEventListener(name, self._proxies[name])

    def send(self, text: str) -> None:
        if self._ws.readyState == 1:  # OPEN; the core never sends on another state
            self._ws.send(text)

    def close(self) -> None:
        if self._ws.readyState <= 1:  # CONNECTING or OPEN
            self._ws.close()

    def _on_open(self, event: "Any") -> None:
        self._listener.socket_opened()

    def _on_message(self, event: "Any") -> None:
        try:
            data = event.data
            text = data if isinstance(data, str) else str(data)
        except Exception as error:  # MemoryError: a frame too large for MicroPython's heap
            # Not JSON, so the core reports it as an InvalidFrame and the connection goes on.
            text = "<a frame the page could not read: %s>" % type(error).__name__
        self._listener.socket_message(text)

    def _on_error(self, event: "Any") -> None:
        self._listener.socket_error(OSError("WebSocket error on " + self.url.split("?")[0]))

    def _on_close(self, event: "Any") -> None:
        try:
            self._listener.socket_closed(event.code, event.reason)
        finally:
            for name in _EVENTS:
                self._ws.removeEventListener(name, self._proxies[name])
                destroy = getattr(self._proxies[name], "destroy", None)
                if destroy is not None:
                    destroy()
            self._proxies = {}


async def fetch_text(
    url: str, method: str, headers: "dict[str, str]", body: "str | None" = None
) -> "tuple[int, str]":
    """The browser's ``fetch``: ``(status, text)``. ``rest.TokenSession``'s ``http`` where
    there is no ``urllib`` (MicroPython)."""
    init: dict[str, Any] = {"method": method, "headers": headers}
    if body is not None:
        init["body"] = body
    response = await window.fetch(url, to_js(init))
    return response.status, await response.text()

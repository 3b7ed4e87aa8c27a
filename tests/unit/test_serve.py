"""The page server's connections (stack/serve.py)."""

from __future__ import annotations

import http.client
import socket
import threading

from stack.serve import Handler, Server


def test_responses_are_not_held_back_by_nagles_algorithm():
    """Headers and body are two writes: on a kept-alive connection, with Nagle's algorithm on,
    every body after the first response waited for the browser's delayed ACK (43 ms a
    response on loopback, measured). The server's sockets must have TCP_NODELAY."""
    seen = []

    class Recording(Handler):
        def setup(self) -> None:
            super().setup()
            seen.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    server = Server(("127.0.0.1", 0), Recording)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
        for _ in range(2):  # two requests on one kept-alive connection
            conn.request("GET", "/index.html")
            response = conn.getresponse()
            assert response.status == 200 and response.read()
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert seen and all(seen), seen

"""The page server (stack/serve.py): its connections, what it answers and to whom."""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import zipfile

import pytest

from stack import mpy
from stack.serve import Handler, Server, make_server


def test_responses_are_not_held_back_by_nagles_algorithm():
    """Headers and body are two writes: on a kept-alive connection, with Nagle's algorithm on,
    every body after the first response would wait for the browser's delayed ACK. The
    server's sockets must have TCP_NODELAY."""
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


# --- a page server over a throwaway root ---------------------------------------------------


@pytest.fixture
def served(tmp_path):
    """A page server (make_server, as `make run` starts it) over a tiny repository: main.py,
    a page/ package and var/stack.json; yields a request function and the port."""
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "__init__.py").write_text("")
    (tmp_path / "page" / "tiny.py").write_text("def hello():\n    return 'hello'\n")
    (tmp_path / "main.py").write_text("async def start():\n    pass\n")
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "core.py").write_text("X = 1\n")
    (tmp_path / "stack.json").write_text(
        json.dumps({"directus_url": "http://127.0.0.1:8055", "token": "secret", "admin": "no"})
    )
    server = make_server(0, root=tmp_path, stack_json=tmp_path / "stack.json")
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    port = server.server_address[1]

    def request(
        path: str, method: str = "GET", host: str | None = None, **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            if host is not None:
                headers["Host"] = host
            conn.request(method, path, headers=headers)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    try:
        yield request, port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_page_package_is_answered_as_bytecode(served):
    request, _ = served
    status, headers, body = request("/page/tiny.mpy")
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    assert body[:2] == b"M\x06" and b"page/tiny.py" in body  # the name tracebacks show
    assert headers["cache-control"] == "no-cache"
    assert request("/page/tiny.mpy", **{"If-None-Match": headers["etag"]})[0] == 304

    stamp = mpy.stamp(body)
    status, headers, _ = request(f"/page/tiny.mpy?v={stamp}")
    assert status == 200 and headers["cache-control"] == "public, max-age=31536000, immutable"
    status, headers, _ = request("/page/tiny.mpy?v=0000000000000000")
    assert status == 200 and headers["cache-control"] == "no-cache"

    assert request("/page/__init__.mpy")[0] == 200
    assert request("/main.mpy")[2][:2] == b"M\x06"
    # The source itself too, as for the library: the Pyodide build imports it.
    status, headers, body = request("/page/tiny.py")
    assert status == 200 and body.startswith(b"def hello")


def test_the_pyodide_builds_python_comes_in_one_zip_of_index_htmls_sources(served, tmp_path):
    request, _ = served
    # The tiny repository's index.html: its MicroPython config names two modules.
    files = {"./main.mpy": "./main.mpy", "./page/tiny.mpy": "./page/tiny.mpy"}
    (tmp_path / "index.html").write_text(
        "<script type=\"mpy\" config='%s'>\nfrom main import start\n</script>"
        % json.dumps({"files": files})
    )
    status, headers, body = request("/python.zip")
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    assert headers["cache-control"] == "no-cache"
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert sorted(archive.namelist()) == ["main.py", "page/tiny.py"]
        assert archive.read("page/tiny.py").startswith(b"def hello")
    assert request("/python.zip", **{"If-None-Match": headers["etag"]})[0] == 304
    (tmp_path / "main.py").write_text("async def start():\n    return 1\n")
    assert request("/python.zip", **{"If-None-Match": headers["etag"]})[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/page/nothing.mpy",
        "/page/../stack/core.mpy",
        "/page/%2e%2e/stack/core.mpy",
        "/stack/core.mpy",
        "/page.mpy",
        "/nothing.mpy",
        "/pages/tiny.mpy",
    ],
)
def test_no_other_bytecode_is_answered(served, path):
    request, _ = served
    assert request(path)[0] == 404, path


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:{port}",
        "127.0.0.1",
        "127.0.0.1:1",
        "localhost",
        "[::1]:{port}",
    ],
)
def test_another_host_name_is_refused(served, host):
    """DNS rebinding: a site whose name resolves to 127.0.0.1 would otherwise read the page
    server, /local-stack.json (a token) included, as same-origin."""
    request, port = served
    for path, method in [("/local-stack.json", "GET"), ("/", "GET"), ("/", "HEAD"), ("/", "POST")]:
        status, headers, body = request(path, method, host=host.format(port=port))
        assert status == 421, (path, method)
        assert b"secret" not in body
        assert headers["referrer-policy"] == "no-referrer"
        if method == "GET":
            assert b"answers only" in body


def test_a_request_without_a_host_is_refused(served):
    _, port = served
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /local-stack.json HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.split(b"\r\n", 1)[0].endswith(b" 421 Misdirected Request")
    assert b"secret" not in answer


def test_the_servers_own_names_are_answered(served):
    request, port = served
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        assert request("/local-stack.json", host=host)[0] == 200, host


def test_local_stack_json_is_never_stored(served, tmp_path):
    request, _ = served
    status, headers, body = request("/local-stack.json")
    assert status == 200
    assert json.loads(body) == {"directus_url": "http://127.0.0.1:8055", "token": "secret"}
    assert headers["cache-control"] == "no-store"
    (tmp_path / "stack.json").unlink()
    status, headers, _ = request("/local-stack.json")
    assert status == 503 and headers["cache-control"] == "no-store"


def test_every_answer_has_no_referrer(served):
    """The page's address can hold a token until the page removes it."""
    request, _ = served
    _, headers, _ = request("/page/tiny.mpy")
    answers = {
        "200": request("/page/tiny.py"),
        "304": request("/page/tiny.mpy", **{"If-None-Match": headers["etag"]}),
        "404": request("/stack/core.py"),
        "405": request("/page/tiny.py", "POST"),
        "501": request("/", "BREW"),
        "200 json": request("/local-stack.json"),
    }
    for status, (got, headers, _) in answers.items():
        assert str(got) == status.split()[0]
        assert headers.get("referrer-policy") == "no-referrer", status
        assert headers.get("x-content-type-options") == "nosniff", status
        assert "content-security-policy" in headers, status

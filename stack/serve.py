"""The static page server: 127.0.0.1:APP_PORT, the page files of the repository and nothing else.

- It answers only requests for ``127.0.0.1:<its port>`` or ``localhost:<its port>`` (the
  ``Host`` header), and 421 to any other name: a web page whose own host name has been made to
  resolve to 127.0.0.1 (DNS rebinding) cannot read the page server, /local-stack.json included.
- ``/`` is index.html (the page, on MicroPython); ``/pyodide.html`` is the same page on Pyodide,
  written from index.html when the server starts (stack/pages.py). Other paths map to files
  under the repository root, but only below the
  top-level names in ALLOWED (deny by default: no var/, .venv/, stack/, .git/, tests/ ...), and
  never dot-files or __pycache__.
- ``/config.json`` (the page's default settings: in ``make dist``'s build it holds only
  ``directus_url``) answers ``{"directus_url", "token"}`` of the local stack (the demo user's
  static token, from var/stack.json), so the page works with no query parameters; so does
  ``/local-stack.json``, its old name. It is ``no-store``: a secret stays out of every cache.
- ``/main.mpy``, ``/directus_realtime/<name>.mpy`` and ``/page/<name>.mpy`` (mpy.SOURCES) are
  the .py compiled to MicroPython bytecode, which the MicroPython page imports without
  compiling (stack/mpy.py); ``/bytecode.mpy`` is all of index.html's in one file, and
  ``/python.zip`` their sources in one zip, which the Pyodide build unpacks
  (pages.python_zip). index.html is sent asking for that bundle stamped ``?v=<its version>``
  (stack/pages.py ``bundled``), and a stamped URL that matches is ``immutable``.
- ``/sw.js`` is the service worker (static/sw.js with this build's version and file list,
  stack/offline.py), ``no-cache``: the page opens from it with no network.
- static/runtime/** is immutable (hashed, versioned copies); everything else is ``no-cache``
  (with an ETag, so a reload revalidates cheaply).
- Every answer carries ``Referrer-Policy: no-referrer`` (the page's address can hold a token
  until the page removes it) and the Content-Security-Policy of stack/build.py (the one
  ``make dist`` writes into the pages): scripts only from this server and the page's inline
  script by its hash, connections only to this server and to Directus on the loopback (any
  port: the local stack and the test instances). ``APP_CONNECT_SRC`` and ``EXTRA_ORIGINS``
  (environment) add origins, e.g. ``https://x.directus.app wss://x.directus.app`` to use a
  remote Directus; ``APP_CSP`` replaces the whole policy.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import json
import posixpath
import shutil
import signal
import sys
import threading
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from . import build, mpy, offline, pages, paths

# Top-level names served; everything else in the repository is not (deny by default).
ALLOWED = mpy.SOURCES | {
    "index.html",
    "pyscript.toml",
    "pyodide.html",
    "config.json",
    "static",
    "bench",
    "examples",
}

TEXT_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".map": "application/json",
    ".toml": "text/plain",
    ".py": "text/plain",
    ".txt": "text/plain",
    ".md": "text/plain",
    ".svg": "image/svg+xml",
    ".webmanifest": "application/manifest+json",
}
BINARY_TYPES = {
    ".wasm": "application/wasm",
    ".whl": "application/octet-stream",
    ".zip": "application/octet-stream",
    ".tar": "application/x-tar",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".mpy": "application/octet-stream",
}

IMMUTABLE = "public, max-age=31536000, immutable"


def content_type(path: Path) -> str:
    ext = path.suffix.lower()
    if ext in TEXT_TYPES:
        return f"{TEXT_TYPES[ext]}; charset=utf-8"
    return BINARY_TYPES.get(ext, "application/octet-stream")


def resolve(root: Path, url_path: str) -> Path | None:
    """The file that url_path names under root, or None when it is not served."""
    decoded = urllib.parse.unquote(url_path)
    if "\0" in decoded or "\\" in decoded:
        return None
    if decoded == "" or decoded.endswith("/"):
        decoded += "index.html"  # a folder's page (/, /examples/counter/)
    norm = posixpath.normpath(decoded)
    parts = [p for p in norm.split("/") if p]
    if not parts or parts[0] not in ALLOWED:
        return None
    if any(p in (".", "..") or p.startswith(".") or p == "__pycache__" for p in parts):
        return None
    candidate = root.joinpath(*parts)
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    allowed_top = (root / parts[0]).resolve()
    if real != allowed_top and allowed_top not in real.parents:
        return None
    if not real.is_file() or real.suffix == ".pyc":
        return None
    return real


def content_security_policy(root: Path = paths.ROOT) -> str:
    """The policy of stack/build.py (the one `make dist` writes into the pages), with the hash
    of the inline script of ``root``'s index.html, as a header."""
    return build.content_security_policy(build.connect_sources(), _inline_hashes(root))


_hashes: dict[Path, tuple[tuple[int, int], list[str]]] = {}


def _inline_hashes(root: Path) -> list[str]:
    """build.script_hashes of root/index.html (pyodide.html has the same script), kept until the
    file changes: every answer carries the policy."""
    index = root / "index.html"
    try:
        stat = index.stat()
    except OSError:
        return []
    key = (stat.st_mtime_ns, stat.st_size)
    hit = _hashes.get(index)
    if hit is None or hit[0] != key:
        hit = _hashes[index] = (key, build.script_hashes(index.read_text()))
    return hit[1]


_workers: dict[tuple, str] = {}


def service_worker(root: Path) -> str:
    """/sw.js for the files under ``root`` now (kept until one of them changes)."""
    index = build.index_page(root)
    runtime = root / "static" / "runtime"
    names = [str(name) for name in build._runtime_files(runtime)]
    urls = offline.precache_urls(index, names)
    files = [root / url.removeprefix("./") for url in urls if url not in ("./", "./config.json")]
    key = (
        index,
        *((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files if "?" not in f.name),
    )
    if key not in _workers:
        _workers.clear()
        _workers[key] = offline.service_worker(
            index, names, lambda url: (root / url.removeprefix("./")).read_bytes()
        )
    return _workers[key]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    # Headers and body go out in two writes: with Nagle's algorithm on, the body of every
    # response after the first on a kept-alive connection would wait for the delayed ACK.
    disable_nagle_algorithm = True
    server_version = "directus-realtime-dev"
    root: Path = paths.ROOT
    stack_json: Path = paths.STACK_JSON
    verbose = False

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args) -> None:
        if self.verbose:
            super().log_message(format, *args)

    def log_error(self, format: str, *args) -> None:
        super().log_message(format, *args)

    def parse_request(self) -> bool:
        """The request line and headers, then the ``Host`` check: a request for any other name
        is answered 421 here, before any method sees it."""
        if not super().parse_request():
            return False
        port = self.server.server_address[1]
        if self.headers.get("Host", "").lower() in (f"{paths.HOST}:{port}", f"localhost:{port}"):
            return True
        self.close_connection = True
        names = f"http://{paths.HOST}:{port}/ and http://localhost:{port}/"
        body = f"This server answers only {names}.\n".encode()
        self.send_response(HTTPStatus.MISDIRECTED_REQUEST)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return False

    def end_headers(self) -> None:
        """Every answer's own headers, then these (error pages and 304s included)."""
        self.send_header("Content-Security-Policy", content_security_policy(self.root))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def _send_bytes(
        self,
        status: int,
        body: bytes,
        ctype: str,
        head: bool,
        etag: str | None = None,
        caching: str = "no-cache",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if etag is not None:
            self.send_header("ETag", etag)
        self.send_header("Cache-Control", caching)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _not_modified(self, etag: str, cache_control: str) -> bool:
        """Answer 304 when the browser already has this version (then True)."""
        if self.headers.get("If-None-Match") != etag:
            return False
        self.send_response(HTTPStatus.NOT_MODIFIED)
        self.send_header("ETag", etag)
        self.send_header("Cache-Control", cache_control)
        self.end_headers()
        return True

    def _not_found(self, head: bool) -> None:
        self._send_bytes(404, b"not found\n", "text/plain; charset=utf-8", head)

    def _local_stack(self, head: bool) -> None:
        try:
            info = json.loads(self.stack_json.read_text())
            body = {"directus_url": info["directus_url"], "token": info["token"]}
        except (OSError, ValueError, KeyError):
            data, status = b'{"error": "the local stack is not up"}\n', 503
        else:
            data, status = (json.dumps(body) + "\n").encode(), 200
        self._send_bytes(status, data, "application/json; charset=utf-8", head, caching="no-store")

    def _serve(self, head: bool) -> None:
        url = urllib.parse.urlsplit(self.path)
        url_path = url.path
        if url_path in ("/config.json", "/local-stack.json"):
            self._local_stack(head)
            return
        if url_path == pages.PYTHON_ZIP[1:]:
            self._python_zip(head)
            return
        if url_path == pages.BUNDLE_URL[1:]:
            self._bundle(urllib.parse.parse_qs(url.query).get("v", [""])[0], head)
            return
        source = mpy.source_of(urllib.parse.unquote(url_path))
        if source is not None:
            self._bytecode(source, urllib.parse.parse_qs(url.query).get("v", [""])[0], head)
            return
        if url_path in ("/", "/index.html"):
            self._index(head)
            return
        if url_path == "/sw.js":
            self._service_worker(head)
            return
        file = resolve(self.root, url_path)
        if file is None:
            self._not_found(head)
            return
        stat = file.stat()
        etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
        immutable = url_path.startswith("/static/runtime/")
        if self._not_modified(etag, IMMUTABLE if immutable else "no-cache"):
            return
        try:
            fh = open(file, "rb")
        except OSError:
            self._not_found(head)
            return
        with fh:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type(file))
            self.send_header("Content-Length", str(stat.st_size))
            self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
            self.send_header("ETag", etag)
            self.send_header("Cache-Control", IMMUTABLE if immutable else "no-cache")
            self.end_headers()
            if not head:
                try:
                    shutil.copyfileobj(fh, self.wfile, 256 * 1024)
                except (BrokenPipeError, ConnectionResetError):
                    pass

    def _index(self, head: bool) -> None:
        """index.html, its bytecode in one bundle asked for by version (pages.bundled)."""
        try:
            html = build.index_page(self.root)  # what make dist writes, less its meta policy
        except (OSError, ValueError):
            self._not_found(head)
            return
        data = html.encode()
        tag = '"index-' + hashlib.sha256(data).hexdigest()[:16] + '"'
        if not self._not_modified(tag, "no-cache"):
            self._send_bytes(200, data, "text/html; charset=utf-8", head, etag=tag)

    def _service_worker(self, head: bool) -> None:
        try:
            data = service_worker(self.root).encode()
        except (OSError, ValueError):
            self._not_found(head)
            return
        tag = '"sw-' + hashlib.sha256(data).hexdigest()[:16] + '"'
        if not self._not_modified(tag, "no-cache"):
            self._send_bytes(200, data, "text/javascript; charset=utf-8", head, etag=tag)

    def _bundle(self, wanted: str, head: bool) -> None:
        """index.html's bytecode in one file (pages.bundle); kept for good by the browser when
        asked for by its version (``wanted``)."""
        self._send_made(
            lambda: pages.bundle((self.root / "index.html").read_text(), self.root),
            BINARY_TYPES[".mpy"],
            head,
            wanted,
        )

    def _python_zip(self, head: bool) -> None:
        """The Pyodide build's Python in one zip (pages.python_zip), revalidated by its ETag."""
        self._send_made(lambda: pages.python_zip(self.root), BINARY_TYPES[".zip"], head)

    def _bytecode(self, name: str, wanted: str, head: bool) -> None:
        """The .mpy of the source ``name``; kept for good by the browser when asked for by its
        version (``wanted``)."""
        source = resolve(self.root, urllib.parse.quote("/" + name))  # name is decoded already
        if source is None:
            self._not_found(head)
            return
        # (name: what tracebacks show)
        self._send_made(lambda: mpy.compiled(source, name), BINARY_TYPES[".mpy"], head, wanted)

    def _send_made(
        self,
        make: Callable[[], bytes],
        content_type: str,
        head: bool,
        wanted: str | None = None,
    ) -> None:
        """A file the server makes (bytecode, its bundle, the Pyodide build's zip), revalidated
        by its ETag; kept for good by the browser when asked for by its version (``wanted``).
        A file that cannot be made is a 500 saying why."""
        try:
            data = make()
        except (mpy.CompileError, OSError, ValueError) as error:
            self._send_bytes(500, f"{error}\n".encode(), "text/plain; charset=utf-8", head)
            return
        tag = mpy.etag(data)
        caching = IMMUTABLE if wanted is not None and wanted == mpy.stamp(data) else "no-cache"
        if not self._not_modified(tag, caching):
            self._send_bytes(200, data, content_type, head, etag=tag, caching=caching)

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _method_not_allowed(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = _method_not_allowed


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(
    port: int,
    *,
    root: Path = paths.ROOT,
    stack_json: Path = paths.STACK_JSON,
    verbose: bool = False,
) -> Server:
    pages.write_pyodide_page(root)
    mpy.warm(root, pages.bytecode_sources(root))
    handler = type(
        "BoundHandler", (Handler,), {"root": root, "stack_json": stack_json, "verbose": verbose}
    )
    return Server((paths.HOST, port), handler)


def serve_in_thread(port: int, **kwargs) -> tuple[Server, threading.Thread]:
    server = make_server(port, **kwargs)
    thread = threading.Thread(target=server.serve_forever, name="page-server", daemon=True)
    thread.start()
    return server, thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack serve")
    parser.add_argument("--port", type=int, default=paths.app_port())
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    server = make_server(args.port, verbose=args.verbose)
    print(f"page server on http://{paths.HOST}:{args.port}/", flush=True)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

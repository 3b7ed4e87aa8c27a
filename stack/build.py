"""The page as it goes out: one build for the page server (stack/serve.py) and `make dist`.

The page server sends these pages on request; ``build()`` writes the same ones into a folder
that any static web server can host (``make dist``: ``python -m stack dist``):

- ``index.html`` with its bytecode as one stamped bundle (stack/pages.py ``bundled``) and
  ``pyodide.html`` (``pages.pyodide_page``), each with the Content-Security-Policy as a
  ``<meta http-equiv>`` (what a static host sends no header for);
- ``bytecode.mpy``, that bundle, and the ``.mpy`` of every source index.html imports
  (stack/mpy.py: ``source_of``, ``compiled``; kept for any older page still asking for them),
  and ``python.zip``, their sources, which the Pyodide build unpacks (``pages.python_zip``);
- the runtime files the two builds load (PyScript without its code editor and terminal,
  MicroPython, Pyodide and its memory snapshot (stack/snapshot.py), the pyodide-http wheel),
  static/pyodide-loader.mjs (the Pyodide build's interpreter module), static/app.css, the web
  app manifest and its icons; ``sw.js``, the service worker that opens the page offline
  (stack/offline.py);
  examples/ (pages of their own on the client library, e.g. examples/counter/);
- ``config.json``: ``{"directus_url": ...}``, the Directus a visitor connects to unless ``?url=``
  or the Settings panel says otherwise (page/app.py reads it). Never a token;
- ``DEPLOY.md`` and ``nginx.conf``: what a meta tag cannot carry (``frame-ancestors``) and the
  cache lifetimes of the stamped files;
- a ``.gz`` beside each stamped file that compresses well (``precompress``), which nginx's
  ``gzip_static`` and Caddy's ``precompressed`` send to browsers that accept gzip.

The Content-Security-Policy is defined once, here (``content_security_policy``), with the
sha256 of the page's inline classic script (``script_hashes``: the few lines that say what to
do when the page is opened from disk), computed from the page's own text by both.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import os
import re
import shutil
import sys
import tomllib
import urllib.parse
from pathlib import Path

from . import mpy, offline, pages, paths, snapshot

# Connections the dev page may make besides its own origin: Directus on the loopback, any port
# (the local stack and the test instances).
LOOPBACK_DIRECTUS = "http://127.0.0.1:* ws://127.0.0.1:* http://localhost:* ws://localhost:*"
# A classic inline script: <script> with no attributes (type="module", "mpy", "py" are not).
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
CSP_META = '<meta http-equiv="Content-Security-Policy" content="{}">'
# PyScript's chunks that only a <py-editor> or a terminal imports (its plugins themselves are
# imported at every start, used or not).
UNUSED_PYSCRIPT = ("codemirror", "index-", "xterm")
PYODIDE_FILES = (
    "pyodide.mjs",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
)


def script_hashes(html: str) -> list[str]:
    """The CSP source (``'sha256-…'``) of each inline classic script of ``html``."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in INLINE_SCRIPT.findall(html)
    ]


def connect_sources(directus_url: str | None = None) -> list[str]:
    """connect-src besides ``'self'``: Directus at ``directus_url`` (over http(s) and ws(s)), or
    on the loopback when none is given; ``APP_CONNECT_SRC`` and ``EXTRA_ORIGINS`` (environment)."""
    if directus_url:
        parts = urllib.parse.urlsplit(directus_url)
        socket = {"http": "ws", "https": "wss"}[parts.scheme]
        sources = [f"{parts.scheme}://{parts.netloc}", f"{socket}://{parts.netloc}"]
    else:
        sources = LOOPBACK_DIRECTUS.split()
    sources += os.environ.get("APP_CONNECT_SRC", "").split()
    sources += paths.extra_origins()
    return sources


def content_security_policy(connect: list[str], hashes: list[str], *, meta: bool = False) -> str:
    """The page's policy: scripts only from its own origin (plus ``'wasm-unsafe-eval'`` for the
    interpreters' WebAssembly, ``'unsafe-eval'``, without which PyScript's core does not start:
    it evaluates strings, and the inline scripts ``hashes``); connections to ``connect``. As a
    meta tag (``meta``) it leaves out ``frame-ancestors``, which browsers ignore there.
    ``APP_CSP`` (environment) replaces the whole policy."""
    if os.environ.get("APP_CSP"):
        return os.environ["APP_CSP"]
    directives = [
        "default-src 'self'",
        " ".join(["script-src 'self' 'wasm-unsafe-eval' 'unsafe-eval'", *hashes]),
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        " ".join(["connect-src 'self'", *connect]),
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
    if not meta:
        directives.append("frame-ancestors 'none'")
    return "; ".join(directives)


def with_csp_meta(html: str, policy: str) -> str:
    """``html`` with ``policy`` as its first element after ``<meta charset>`` (a meta policy
    covers only what comes after it)."""
    tag = CSP_META.format(policy.replace("&", "&amp;").replace('"', "&quot;"))
    head, sep, rest = html.partition('<meta charset="utf-8">')
    if not sep:
        raise ValueError('the page has no <meta charset="utf-8"> to put its policy after')
    indent = head[head.rfind("\n") + 1 :]
    return head + sep + "\n" + indent + tag + rest


def index_page(root: Path) -> str:
    """index.html as it goes out: its bytecode in one stamped bundle (pages.bundled)."""
    return pages.bundled((root / "index.html").read_text(), root)


def pyodide_sources(root: Path) -> list[str]:
    """The page's .py files the Pyodide build unpacks from pyscript.toml's ``[files]`` zip
    (pages.PYTHON_ZIP)."""
    config = tomllib.loads((root / "pyscript.toml").read_text())
    if pages.PYTHON_ZIP not in config.get("files", {}):
        raise ValueError(f"pyscript.toml's [files] lacks {pages.PYTHON_ZIP}")
    return pages.bytecode_sources(root)


def config_json(directus_url: str | None) -> str:
    """config.json: the Directus a visitor connects to by default (no token, ever)."""
    return json.dumps({"directus_url": directus_url}) + "\n"


DEPLOY_MD = """\
# Deploying this folder

Everything here is static: upload the folder to any web server. The page must be served over
http(s) (opened from disk it says so and stops).

- `config.json` names the Directus a visitor connects to unless the address says otherwise
  (`?url=<Directus URL>&token=<static token>`) or the Settings panel saved another. It never
  holds a token. Directus must allow this site's origin: `CORS_ENABLED=true`,
  `CORS_ORIGIN=<this site's origin>`, `WEBSOCKETS_ENABLED=true`.
- The Content-Security-Policy is in each page's `<meta http-equiv>`. A meta tag cannot carry
  `frame-ancestors`: send it as a header (below) if the page must not be framed. Its
  connect-src names only the build's Directus (`DIRECTUS_URL`; Directus on the loopback when
  none was given), so `?url=` and Settings can point only there: list others at build time
  with `APP_CONNECT_SRC="https://b.example wss://b.example" make dist`.
- Stamped files never change under the same URL: `*.mpy` (asked for as `?v=<hash>`) and
  `static/runtime/**` (versioned copies). Let browsers keep them for a year; revalidate the
  rest (`index.html`, `pyodide.html`, `config.json`, `static/app.css`, `python.zip`).
- `.mpy`, `.whl` and `.bin` (Pyodide's memory snapshot) are binary
  (`application/octet-stream`), `.wasm` is `application/wasm`, `.mjs` is `text/javascript`,
  `.webmanifest` is `application/manifest+json`.
- Each stamped file that compresses well has a `.gz` beside it (the same bytes, gzipped):
  send it to browsers that accept gzip, with `Content-Encoding: gzip` and `Vary:
  Accept-Encoding` (nginx `gzip_static on`, Caddy `precompressed gzip`). A cold load of the
  MicroPython page is then about half the bytes, the Pyodide build's 13 MB instead of 45 MB.
- `sw.js` is the service worker that opens the page with no network; it must stay at the
  folder's top (its scope) and be revalidated (`no-cache`, as above), so that a new deploy
  reaches visitors at their next visit.

`nginx.conf` here is a complete server block doing all of this. With Caddy:

```
example.org {
    root * /srv/directus-realtime
    file_server {
        precompressed gzip
    }
    header Content-Security-Policy "frame-ancestors 'none'"
    header Referrer-Policy no-referrer
    header X-Content-Type-Options nosniff
    @stamped path *.mpy /static/runtime/*
    header @stamped Cache-Control "public, max-age=31536000, immutable"
    @other not path *.mpy /static/runtime/*
    header @other Cache-Control no-cache
}
```
"""

NGINX_CONF = """\
# A server block for this folder (include it in nginx.conf's http block; set root).
server {
    listen 8080;
    root /srv/directus-realtime;
    index index.html;
    charset utf-8;

    types {
        text/html html;
        text/css css;
        text/javascript js mjs;
        application/json json map;
        application/manifest+json webmanifest;
        application/wasm wasm;
        image/png png;
        application/octet-stream mpy whl zip bin;
        text/plain py toml md;
    }

    # What a <meta http-equiv> policy cannot carry; the rest of the policy is in each page.
    add_header Content-Security-Policy "frame-ancestors 'none'" always;
    add_header Referrer-Policy no-referrer always;
    add_header X-Content-Type-Options nosniff always;
    add_header Cache-Control no-cache always;

    # Stamped files never change under the same URL. Each has its .gz beside it when that is
    # smaller: sent compressed, with no compression work per request.
    location ~ ^/static/runtime/|\\.mpy$ {
        gzip_static on;
        gzip_vary on;
        add_header Content-Security-Policy "frame-ancestors 'none'" always;
        add_header Referrer-Policy no-referrer always;
        add_header X-Content-Type-Options nosniff always;
        add_header Cache-Control "public, max-age=31536000, immutable" always;
    }
}
"""


def nginx_main_conf(dist: Path, prefix: Path, port: int) -> Path:
    """A whole nginx.conf around ``dist``'s sample server block (its port and root replaced),
    everything nginx writes kept under ``prefix``, for ``nginx -p prefix -c <this>``: one
    process in the foreground (no master), which reads ``dist`` as the user who starts it.
    tests/e2e/test_dist.py and ``make bench`` (``--dist``) serve a build with it."""
    block = (dist / "nginx.conf").read_text()
    block = block.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    block = block.replace("root /srv/directus-realtime;", f"root {dist};")
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"daemon off;\nmaster_process off;\npid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} warn;\nevents {{}}\n"
        f"http {{\n    access_log {prefix / 'access.log'};\n{temp}\n"
        "    default_type application/octet-stream;\n"
        f"{block}}}\n"
    )
    return conf


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


def _runtime_files(runtime: Path) -> list[Path]:
    """The runtime files the two builds load, relative to ``runtime`` (static/runtime)."""
    files = [
        p.relative_to(runtime)
        for p in sorted((runtime / "pyscript").iterdir())
        if p.is_file() and not p.name.startswith(UNUSED_PYSCRIPT) and p.suffix != ".map"
    ]
    files += [
        Path("micropython") / p.name
        for p in sorted((runtime / "micropython").iterdir())
        if p.suffix in (".mjs", ".wasm")
    ]
    files += [Path("pyodide") / name for name in PYODIDE_FILES]
    memory = snapshot.current(runtime / "pyodide")
    if memory is not None:
        files.append(Path("pyodide") / memory.name)
    files += [p.relative_to(runtime) for p in sorted((runtime / "wheels").glob("*.whl"))]
    return files


GZIP_MIN_BYTES = 1024
GZIP_GAIN = 0.9  # a .gz is written when it is at most this share of the file


def precompress(out: Path) -> list[Path]:
    """A ``.gz`` beside each stamped file of ``out`` (static/runtime/**, ``*.mpy``) that
    compresses well, for servers that send precompressed files; returns them. Compressing at
    build time costs the server no CPU per request."""
    written = []
    for path in sorted(out.rglob("*")):
        stamped = path.suffix == ".mpy" or path.relative_to(out).parts[:2] == ("static", "runtime")
        if not stamped or not path.is_file() or path.suffix == ".gz":
            continue
        data = path.read_bytes()
        if len(data) < GZIP_MIN_BYTES:
            continue
        packed = gzip.compress(data, 6, mtime=0)  # (level 9: 5x the time for 1 % less)
        if len(packed) <= GZIP_GAIN * len(data):
            target = path.with_name(path.name + ".gz")
            target.write_bytes(packed)
            written.append(target)
    return written


def build(out: Path, *, directus_url: str | None = None, root: Path = paths.ROOT) -> dict[str, int]:
    """Write the deployable page into ``out`` (emptied first); returns {file: bytes}."""
    if directus_url is not None:
        from page.settings import SettingsError, check_url

        try:
            directus_url = check_url(directus_url)
        except SettingsError as error:
            raise ValueError("DIRECTUS_URL: " + error.message) from None
    runtime = root / "static" / "runtime"
    if not (runtime / "pyscript" / "core.js").is_file():
        raise FileNotFoundError(f"{runtime} has no runtime: run `make setup` first")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    connect = connect_sources(directus_url)

    index = index_page(root)
    policy = content_security_policy(connect, script_hashes(index), meta=True)
    (out / "index.html").write_text(with_csp_meta(index, policy))
    memory = snapshot.current(runtime / "pyodide")
    pyodide = pages.pyodide_page(
        (root / "index.html").read_text(), memory.name if memory is not None else None
    )
    policy = content_security_policy(connect, script_hashes(pyodide), meta=True)
    (out / "pyodide.html").write_text(with_csp_meta(pyodide, policy))
    _copy(root / "pyscript.toml", out / "pyscript.toml")

    for name in pages.bytecode_sources(root):
        target = out / mpy.url_of(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(mpy.compiled_in(root, name))  # CompileError says where
    bundle = pages.bundle((root / "index.html").read_text(), root)
    (out / pages.BUNDLE_URL).write_bytes(bundle)
    pyodide_sources(root)  # (pyscript.toml asks for the zip)
    (out / pages.PYTHON_ZIP).write_bytes(pages.python_zip(root))
    for name in ("app.css", "offline.js", "manifest.webmanifest", "pyodide-loader.mjs"):
        _copy(root / "static" / name, out / "static" / name)
    for icon in sorted((root / "static" / "icons").glob("*.png")):
        _copy(icon, out / "static" / "icons" / icon.name)
    for name in _runtime_files(runtime):
        _copy(runtime / name, out / "static" / "runtime" / name)

    for example in sorted((root / "examples").rglob("*")):
        if example.suffix in (".html", ".css", ".py") and "__pycache__" not in example.parts:
            target = out / example.relative_to(root)
            if example.suffix == ".html":
                text = example.read_text()
                policy = content_security_policy(connect, script_hashes(text), meta=True)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(with_csp_meta(text, policy))
            else:
                _copy(example, target)

    (out / "config.json").write_text(config_json(directus_url))
    worker = offline.service_worker(
        (out / "index.html").read_text(),
        [str(name) for name in _runtime_files(runtime)],
        lambda url: (out / url.removeprefix("./")).read_bytes(),
    )
    (out / "sw.js").write_text(worker)
    (out / "DEPLOY.md").write_text(DEPLOY_MD)
    (out / "nginx.conf").write_text(NGINX_CONF)
    precompress(out)
    return {
        str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack dist", description=build.__doc__)
    parser.add_argument("--out", type=Path, default=paths.ROOT / "dist")
    parser.add_argument(
        "--directus-url",
        default=os.environ.get("DIRECTUS_URL") or None,
        help="the Directus the page connects to by default (DIRECTUS_URL)",
    )
    args = parser.parse_args(argv)
    try:
        files = build(args.out, directus_url=args.directus_url)
    except (ValueError, OSError, mpy.CompileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    total = sum(files.values())
    print(f"wrote {args.out}: {len(files)} files, {total / 1e6:.1f} MB")
    print(f"  default Directus: {args.directus_url or '(none: ?url= or the Settings panel)'}")
    print(f"  serve it with e.g.: python3 -m http.server -d {args.out} 8123")
    return 0


if __name__ == "__main__":
    sys.exit(main())

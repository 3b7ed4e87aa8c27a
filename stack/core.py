"""The local stack: the main Directus (var/directus.db) plus the page server.

``up()``/``ensure_up()`` start it in the background (detached; pids in var/*.pid, logs in
var/*.log), ``down()`` stops it, ``run()`` runs it in the foreground until Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import credentials, directus, paths, procs, serve
from .provision import provision


class StackError(RuntimeError):
    pass


def _is_directus(pid: int) -> bool:
    return any(part.endswith("directus/cli.js") for part in procs.cmdline(pid))


def _is_app(pid: int) -> bool:
    argv = procs.cmdline(pid)
    return "-m" in argv and "stack" in argv and ("serve" in argv or "run" in argv)


def _live(pid_file: Path, check) -> int | None:
    pid = procs.read_pid(pid_file)
    if pid is None:
        return None
    if procs.is_alive(pid) and check(pid):
        return pid
    with contextlib.suppress(FileNotFoundError):
        pid_file.unlink()
    return None


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """One up/down/run at a time per checkout (e.g. two pytest sessions starting together)."""
    paths.VAR.mkdir(parents=True, exist_ok=True)
    with open(paths.VAR / "stack.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_info() -> dict[str, Any] | None:
    try:
        return json.loads(paths.STACK_JSON.read_text())
    except (OSError, ValueError):
        return None


def _make_info(directus_port: int, app_port: int) -> dict[str, Any]:
    s = credentials.load()
    return {
        # "cluster" when `make up CLUSTER=1` runs (stack/cluster.py adds its instances).
        "mode": "single",
        "directus_url": f"http://{paths.HOST}:{directus_port}",
        "ws_url": f"ws://{paths.HOST}:{directus_port}/websocket",
        "app_url": f"http://{paths.HOST}:{app_port}/",
        "token": s["demo_token"],
        "admin_email": s["admin_email"],
        "admin_password": s["admin_password"],
        "demo_email": s["demo_email"],
        "demo_password": s["demo_password"],
        "reader_email": s["reader_email"],
        "reader_password": s["reader_password"],
        "reader_token": s["reader_token"],
        "editor_email": s["editor_email"],
        "editor_password": s["editor_password"],
        "editor_token": s["editor_token"],
        "db_file": str(paths.MAIN_DB),
        "directus_port": directus_port,
        "app_port": app_port,
    }


def _write_info(info: dict[str, Any]) -> None:
    text = json.dumps(info, indent=2) + "\n"
    with contextlib.suppress(OSError):
        if paths.STACK_JSON.read_text() == text:
            return
    tmp = paths.STACK_JSON.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, paths.STACK_JSON)


def _check_secrets() -> None:
    if paths.MAIN_DB.exists() and not paths.SECRETS_FILE.exists():
        raise StackError(
            f"{paths.MAIN_DB} exists but {paths.SECRETS_FILE} does not: the admin password "
            f"is lost. Delete {paths.MAIN_DB} to start with a fresh database."
        )


def _ports(info: dict[str, Any] | None, running: bool) -> tuple[int, int]:
    """Ports of the running stack when there is one, else from DIRECTUS_PORT/APP_PORT."""
    if running and info:
        return int(info["directus_port"]), int(info["app_port"])
    return paths.directus_port(), paths.app_port()


def _start_directus(port: int, app_port: int, say) -> directus.DirectusHandle:
    _check_secrets()
    if not paths.MAIN_DB.exists():
        say(f"bootstrapping a fresh Directus database at {paths.MAIN_DB} (~10 s)…")
    say(f"starting Directus on http://{paths.HOST}:{port} (log {paths.DIRECTUS_LOG})…")
    t0 = time.monotonic()
    handle = directus.start_directus(
        port, paths.MAIN_DB, log_file=paths.DIRECTUS_LOG, app_port=app_port
    )
    procs.write_pid(paths.DIRECTUS_PID, handle.pid)
    say(f"Directus is up ({time.monotonic() - t0:.1f} s)")
    return handle


def _provision(url: str, say) -> None:
    changes = provision(url, credentials.load())
    if changes:
        for change in changes:
            say(f"  provision: {change}")
    else:
        say("  provision: nothing to change")


def status() -> dict[str, Any]:
    info = read_info()
    d_pid = _live(paths.DIRECTUS_PID, _is_directus)
    a_pid = _live(paths.APP_PID, _is_app)
    d_port, a_port = _ports(info, bool(d_pid or a_pid))
    d_url = f"http://{paths.HOST}:{d_port}"
    a_url = f"http://{paths.HOST}:{a_port}/"
    return {
        "directus_pid": d_pid,
        "directus_url": d_url,
        "directus_ready": bool(d_pid) and directus.ready(d_url),
        "app_pid": a_pid,
        "app_url": a_url,
        "app_answers": bool(a_pid) and procs.http_status(a_url) is not None,
    }


def is_up() -> bool:
    st = status()
    return st["directus_ready"] and st["app_answers"]


def up(*, quiet: bool = False, timeout: float = 120.0) -> tuple[dict[str, Any], bool]:
    """Start whatever part of the stack is not running, in the background; return
    (info, started_anything). Returns at once when everything already answers."""

    def say(msg: str) -> None:
        if not quiet:
            print(msg, flush=True)

    with _lock():
        info = read_info()
        d_pid = _live(paths.DIRECTUS_PID, _is_directus)
        a_pid = _live(paths.APP_PID, _is_app)
        d_port, a_port = _ports(info, bool(d_pid or a_pid))
        d_url = f"http://{paths.HOST}:{d_port}"
        a_url = f"http://{paths.HOST}:{a_port}/"
        started = False

        if d_pid and not procs.wait_until(lambda: directus.ready(d_url), timeout=30.0):
            say(f"Directus (pid {d_pid}) does not answer; restarting it")
            procs.stop_pid(d_pid)
            d_pid = None
        if not d_pid:
            _start_directus(d_port, a_port, say)
            _provision(d_url, say)
            started = True

        info = _make_info(d_port, a_port)
        _write_info(info)

        if a_pid and procs.http_status(a_url) is None:
            procs.stop_pid(a_pid)
            a_pid = None
        if not a_pid:
            if procs.port_in_use(a_port):
                raise StackError(f"port {a_port} on {paths.HOST} is already in use")
            say(f"starting the page server on {a_url} (log {paths.APP_LOG})…")
            proc = procs.spawn(
                [paths.python(), "-m", "stack", "serve", "--port", str(a_port)],
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                cwd=paths.ROOT,
                log_file=paths.APP_LOG,
            )
            ok = procs.wait_until(
                lambda: procs.http_status(a_url) is not None,
                timeout=timeout,
                alive=lambda: proc.poll() is None,
            )
            if not ok:
                procs.stop_pid(proc.pid)
                raise StackError(
                    f"the page server did not start; log {paths.APP_LOG}:\n"
                    + procs.log_tail(paths.APP_LOG)
                )
            procs.write_pid(paths.APP_PID, proc.pid)
            started = True
        return info, started


def ensure_up(*, quiet: bool = True) -> tuple[dict[str, Any], bool]:
    """For pytest: (info, started_here). Stop it afterwards with down() only if started_here."""
    return up(quiet=quiet)


def down(*, quiet: bool = True) -> bool:
    """Stop the page server and Directus by their pid files. True when something was stopped."""
    stopped = False
    with _lock():
        for name, pid_file, check in (
            ("page server", paths.APP_PID, _is_app),
            ("Directus", paths.DIRECTUS_PID, _is_directus),
        ):
            pid = _live(pid_file, check)
            if pid:
                if not quiet:
                    print(f"stopping {name} (pid {pid})…", flush=True)
                if pid == os.getpid():
                    raise StackError("down() called from the process that runs the stack")
                procs.stop_pid(pid, timeout=10.0)
                stopped = True
            with contextlib.suppress(FileNotFoundError):
                pid_file.unlink()
    return stopped


def run(*, verbose: bool = False) -> int:
    """Foreground: start everything, print the URL and the token, wait for Ctrl-C/SIGTERM,
    stop both servers."""

    def say(msg: str) -> None:
        print(msg, flush=True)

    stop_event = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop_event.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    handle: directus.DirectusHandle | None = None
    server = None
    code = 0
    with _lock():
        if _live(paths.DIRECTUS_PID, _is_directus) or _live(paths.APP_PID, _is_app):
            say("the stack is already running (`make down` stops it)")
            return 1
        d_port, a_port = paths.directus_port(), paths.app_port()
        if procs.port_in_use(a_port):
            say(f"port {a_port} on {paths.HOST} is already in use")
            return 1
        try:
            handle = _start_directus(d_port, a_port, say)
            _provision(handle.url, say)
            info = _make_info(d_port, a_port)
            _write_info(info)
            server, _ = serve.serve_in_thread(a_port, verbose=verbose)
            procs.write_pid(paths.APP_PID, os.getpid())
        except BaseException:
            if handle is not None:
                directus.stop(handle)
                paths.DIRECTUS_PID.unlink(missing_ok=True)
            raise
    try:
        say("")
        say(f"  open      {info['app_url']}")
        say(
            f"  Directus  {info['directus_url']}  (admin: {info['admin_email']} / "
            f"{info['admin_password']})"
        )
        say(f"  token     {info['token']}  (demo@example.com, policy 'Public Posts')")
        say("")
        say("Ctrl-C stops both servers.")
        while not stop_event.wait(1.0):
            if not handle.alive():
                say(
                    f"Directus exited; log {paths.DIRECTUS_LOG}:\n"
                    + procs.log_tail(paths.DIRECTUS_LOG)
                )
                code = 1
                break
    finally:
        say("stopping…")
        if server is not None:
            server.shutdown()
            server.server_close()
        if handle is not None:
            directus.stop(handle, timeout=10.0)
        for pid_file in (paths.APP_PID, paths.DIRECTUS_PID):
            pid_file.unlink(missing_ok=True)
        say("stopped.")
    return code


def print_status() -> int:
    st = status()
    d = "up" if st["directus_ready"] else ("not answering" if st["directus_pid"] else "down")
    a = "up" if st["app_answers"] else ("not answering" if st["app_pid"] else "down")
    print(f"Directus     {d:14} {st['directus_url']}  pid {st['directus_pid']}")
    print(f"page server  {a:14} {st['app_url']}  pid {st['app_pid']}")
    return 0 if d == "up" and a == "up" else 3


def provision_running() -> int:
    info = read_info()
    st = status()
    if not st["directus_ready"]:
        print("Directus is not running (`make up` starts it)", file=sys.stderr)
        return 1
    url = info["directus_url"] if info else st["directus_url"]
    _provision(url, lambda m: print(m, flush=True))
    return 0

"""Start and stop real Directus processes (node + stack/directus/node_modules/directus/cli.js).

The main instance of the stack uses var/directus.db; tests can start extra instances on other
ports, on a copy of that database (same users, policies and static tokens), with other
settings::

    from stack import directus, procs
    db = directus.copy_of_main_db(tmp_path)
    h = directus.start_directus(procs.free_port(), db,
                                extra_env={"WEBSOCKETS_REST_AUTH": "strict"},
                                log_file=tmp_path / "directus.log")
    ...
    h = directus.restart(h, hard=True)   # SIGKILL, then start again on the same db
    directus.stop(h)
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import credentials, paths, procs
from .parts import Part

# Environment variables passed on from the caller's environment; everything else Directus
# sees is set here, so a stray DB_* or *_FILE variable of the shell cannot change it.
_PASSTHROUGH = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ")


class DirectusProcessError(RuntimeError):
    """A Directus process of the stack could not be bootstrapped or started (the library's
    ``directus_realtime.DirectusError`` is an error answer of a running Directus)."""


@dataclass
class DirectusHandle:
    port: int
    db_file: Path
    log_file: Path
    pid: int
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{paths.HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{paths.HOST}:{self.port}/websocket"

    def alive(self) -> bool:
        return procs.is_alive(self.pid)


def app_origins(app_port: int | None = None) -> str:
    """CORS_ORIGIN: the page server's two origins, and ``EXTRA_ORIGINS`` (paths.extra_origins:
    e.g. ``dist/`` served by another web server)."""
    port = paths.app_port() if app_port is None else app_port
    origins = [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
    origins += [origin for origin in paths.extra_origins() if origin not in origins]
    return ",".join(origins)


def directus_env(
    port: int,
    db_file: Path,
    extra_env: dict[str, str] | None = None,
    *,
    app_port: int | None = None,
) -> dict[str, str]:
    """The full environment of a Directus process."""
    secrets = credentials.load()
    data_dir = Path(db_file).resolve().parent
    env = {k: os.environ[k] for k in _PASSTHROUGH if k in os.environ}
    env.update(
        {
            "HOST": paths.HOST,
            "PORT": str(port),
            "PUBLIC_URL": f"http://{paths.HOST}:{port}",
            "DB_CLIENT": "sqlite3",
            "DB_FILENAME": str(Path(db_file).resolve()),
            "SECRET": secrets["secret"],
            "ADMIN_EMAIL": secrets["admin_email"],
            "ADMIN_PASSWORD": secrets["admin_password"],
            "WEBSOCKETS_ENABLED": "true",
            "TELEMETRY": "false",
            # Directus answers 503 "Under pressure" when its event loop lags, as it does on a
            # 2-core machine running several instances and a browser: a dev stack must not.
            "PRESSURE_LIMITER_ENABLED": "false",
            "LOG_LEVEL": "warn",
            "CORS_ENABLED": "true",
            "CORS_ORIGIN": app_origins(app_port),
            "STORAGE_LOCATIONS": "local",
            "STORAGE_LOCAL_ROOT": str(data_dir / "uploads"),
            "EXTENSIONS_PATH": str(data_dir / "extensions"),
            "NODE_ENV": "production",
        }
    )
    if extra_env:
        env.update({k: str(v) for k, v in extra_env.items()})
    return env


def _ensure_dirs(db_file: Path) -> None:
    data_dir = Path(db_file).resolve().parent
    for sub in ("uploads", "extensions"):
        (data_dir / sub).mkdir(parents=True, exist_ok=True)


def _check_installed() -> None:
    if not paths.NODE.exists():
        raise DirectusProcessError(f"{paths.NODE} is missing: run `make setup` first")
    if not paths.DIRECTUS_CLI.exists():
        raise DirectusProcessError(f"{paths.DIRECTUS_CLI} is missing: run `make setup` first")


def bootstrap(
    db_file: Path,
    *,
    extra_env: dict[str, str] | None = None,
    log_file: Path | None = None,
    timeout: float = 300.0,
) -> None:
    """Create a fresh Directus database at db_file (tables, admin user). The database is made
    under a temporary name and renamed when bootstrap succeeded, so a half-made file is never
    taken for a real one."""
    _check_installed()
    db_file = Path(db_file).resolve()
    _ensure_dirs(db_file)
    log_file = log_file or db_file.with_suffix(".log")
    tmp = db_file.with_name(db_file.name + ".bootstrap")
    for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    run_bootstrap(directus_env(0, tmp, extra_env), log_file, str(db_file), timeout=timeout)
    if not tmp.exists():
        raise DirectusProcessError(
            f"directus bootstrap made no database at {tmp}; log {log_file}:\n"
            + procs.log_tail(log_file)
        )
    os.replace(tmp, db_file)


def run_bootstrap(env: dict[str, str], log_file: Path, what: str, *, timeout: float = 300) -> None:
    """``directus bootstrap`` (tables, admin user) with env, its output appended to log_file;
    DirectusProcessError with the log's tail when it fails."""
    _check_installed()
    with open(log_file, "ab") as log:
        log.write(f"\n--- directus bootstrap {what} ---\n".encode())
        log.flush()
        try:
            result = subprocess.run(
                [str(paths.NODE), str(paths.DIRECTUS_CLI), "bootstrap"],
                env=env,
                cwd=str(paths.DIRECTUS_DIR),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as err:
            raise DirectusProcessError(
                f"directus bootstrap took more than {timeout:.0f} s; log {log_file}:\n"
                + procs.log_tail(log_file)
            ) from err
    if result.returncode != 0:
        raise DirectusProcessError(
            f"directus bootstrap failed (exit {result.returncode}); log {log_file}:\n"
            + procs.log_tail(log_file)
        )


def ready(url: str, timeout: float = 2.0) -> bool:
    """True when the Directus at url answers. Directus 12 answers /server/health only to an
    authenticated user (403 FORBIDDEN otherwise), so readiness is /server/ping -> "pong"."""
    try:
        with urllib.request.urlopen(f"{url}/server/ping", timeout=timeout) as resp:
            return resp.status == 200 and resp.read().strip() == b"pong"
    except (OSError, ValueError):
        return False


def start_directus(
    port: int,
    db_file: Path,
    extra_env: dict[str, str] | None = None,
    log_file: Path | None = None,
    *,
    timeout: float = 120.0,
    app_port: int | None = None,
) -> DirectusHandle:
    """Start Directus on 127.0.0.1:port with the SQLite database db_file (bootstrapped first
    when it does not exist) and return once it answers (/server/ping). Raises
    DirectusProcessError with the log's tail when it does not come up within timeout seconds."""
    _check_installed()
    db_file = Path(db_file).resolve()
    log_file = Path(log_file) if log_file else db_file.with_suffix(".log")
    if procs.port_in_use(port):
        raise DirectusProcessError(f"port {port} on {paths.HOST} is already in use")
    if not db_file.exists():
        t0 = time.monotonic()
        bootstrap(db_file, extra_env=extra_env, log_file=log_file)
        print(f"bootstrapped {db_file} in {time.monotonic() - t0:.1f} s", flush=True)
    _ensure_dirs(db_file)
    env = directus_env(port, db_file, extra_env, app_port=app_port)
    with open(log_file, "ab") as log:
        log.write(f"\n--- directus start :{port} {db_file} ---\n".encode())
    proc = procs.spawn(
        [str(paths.NODE), str(paths.DIRECTUS_CLI), "start"],
        env=env,
        cwd=paths.DIRECTUS_DIR,
        log_file=log_file,
    )
    handle = DirectusHandle(
        port=port,
        db_file=db_file,
        log_file=log_file,
        pid=proc.pid,
        extra_env=dict(extra_env or {}),
        process=proc,
    )
    ok = procs.wait_until(
        lambda: ready(handle.url), timeout=timeout, alive=lambda: proc.poll() is None
    )
    if not ok:
        code = proc.poll()
        stop(handle)
        why = f"exited with {code}" if code is not None else f"not answering after {timeout:.0f} s"
        raise DirectusProcessError(
            f"Directus on port {port} {why}; log {log_file}:\n" + procs.log_tail(log_file)
        )
    return handle


def stop(handle: DirectusHandle, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after timeout seconds."""
    procs.stop_pid(handle.pid, timeout=timeout)


def kill(handle: DirectusHandle) -> None:
    """SIGKILL (a crash), and wait until the process is gone."""
    procs.kill_pid(handle.pid)


def restart(
    handle: DirectusHandle, *, hard: bool = False, timeout: float = 120.0
) -> DirectusHandle:
    """Stop (SIGTERM, or SIGKILL when hard) and start again: same port, database and env."""
    if hard:
        kill(handle)
    else:
        stop(handle)
    procs.wait_until(lambda: not procs.port_in_use(handle.port), timeout=10.0)
    return start_directus(
        handle.port, handle.db_file, handle.extra_env, handle.log_file, timeout=timeout
    )


def copy_db(src: Path, dest: Path) -> Path:
    """A consistent copy of a SQLite database (the online backup API: safe while Directus is
    writing to src)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        dest.unlink()
    src_conn = sqlite3.connect(f"file:{Path(src).resolve()}?mode=ro", uri=True)
    try:
        dest_conn = sqlite3.connect(str(dest))
        try:
            src_conn.backup(dest_conn)
        finally:
            dest_conn.close()
    finally:
        src_conn.close()
    return dest


def copy_of_main_db(dest_dir: Path, name: str = "directus.db") -> Path:
    """A copy of the main stack's database (provisioned: same users and tokens) in dest_dir."""
    if not paths.MAIN_DB.exists():
        raise DirectusProcessError(f"{paths.MAIN_DB} does not exist: start the stack first")
    return copy_db(paths.MAIN_DB, Path(dest_dir) / name)


class DirectusPart(Part):
    """A Directus process of the stack: ``environment`` gives its full environment at each
    start, ``prepare`` makes its database when there is none (bootstrap)."""

    marker = ("directus/cli.js",)

    def __init__(
        self,
        name: str,
        label: str,
        *,
        port: int,
        pid_file: Path,
        log_file: Path,
        environment: Callable[[], dict[str, str]],
        prepare: Callable[[Callable[[str], None]], None] | None = None,
        group: str | None = None,
    ) -> None:
        super().__init__(name, label, port=port, pid_file=pid_file, log_file=log_file)
        self._environment = environment
        self._prepare = prepare
        self.group = group

    def command(self) -> list[str]:
        _check_installed()
        return [str(paths.NODE), str(paths.DIRECTUS_CLI), "start"]

    def cwd(self) -> Path:
        return paths.DIRECTUS_DIR

    def environment(self) -> dict[str, str]:
        return self._environment()

    def prepare(self, say: Callable[[str], None]) -> None:
        if self._prepare is not None:
            self._prepare(say)

    def ready(self) -> bool:
        return ready(self.url)

    def health(self) -> tuple[bool, str]:
        ok = ready(self.url)
        return ok, "/server/ping: pong" if ok else "/server/ping: no answer"

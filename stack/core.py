"""The local stack: its parts in either mode, and ``up``/``down``/``status``/``run``.

- single: Directus on SQLite (var/directus.db) and the page server;
- cluster: PostgreSQL, Redis, two Directus instances, HAProxy (stack/cluster.py) and the page
  server.

A supervisor (stack/supervisor.py, pid in var/supervisor.pid) starts the parts and restarts a
crashed one. ``up()`` starts the supervisor when none runs, or asks the running one to start
whatever is down, and waits for its answer; ``down()`` stops the supervisor, then every part.
``run()`` is the supervisor in the foreground. var/stack.json says what runs (the supervisor
rewrites it whenever a pid changes).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import credentials, directus, envfile, parts, paths, procs, supervisor
from .cluster import Cluster, ClusterPorts
from .parts import Part, Say, StackError, say_nothing
from .provision import provision

MODES = ("single", "cluster")
CLUSTER_DIR = paths.VAR / "cluster"


class PageServer(Part):
    """``python -m stack serve`` (stack/serve.py) on APP_PORT."""

    marker = ("-m", "stack", "serve")
    ready_timeout = 60.0

    def __init__(
        self,
        port: int,
        *,
        verbose: bool = False,
        pid_file: Path = paths.APP_PID,
        log_file: Path = paths.APP_LOG,
    ) -> None:
        super().__init__("app", "page server", port=port, pid_file=pid_file, log_file=log_file)
        self.verbose = verbose

    @property
    def url(self) -> str:
        return f"http://{paths.HOST}:{self.port}/"

    def command(self) -> list[str]:
        argv = [paths.python(), "-m", "stack", "serve", "--port", str(self.port)]
        return argv + (["--verbose"] if self.verbose else [])

    def cwd(self) -> Path:
        return paths.ROOT

    def environment(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1"}

    def ready(self) -> bool:
        return procs.http_status(self.url) is not None

    def health(self) -> tuple[bool, str]:
        status = procs.http_status(self.url)
        return status == 200, f"GET /: {status or 'no answer'}"


class LocalStack:
    """The parts of the local stack in one mode, on given ports."""

    def __init__(
        self, mode: str, directus_port: int, app_port: int, *, verbose: bool = False
    ) -> None:
        if mode not in MODES:
            raise StackError(f"unknown mode {mode!r} (single | cluster)")
        self.mode = mode
        self.directus_port = directus_port
        self.app_port = app_port
        self.cluster: Cluster | None = None
        if mode == "single":
            self.directus = [
                directus.DirectusPart(
                    "directus",
                    "Directus",
                    port=directus_port,
                    pid_file=paths.DIRECTUS_PID,
                    log_file=paths.DIRECTUS_LOG,
                    environment=self._single_env,
                    prepare=self._bootstrap_sqlite,
                )
            ]
            servers: list[Part] = list(self.directus)
        else:
            self.cluster = Cluster(
                CLUSTER_DIR,
                ClusterPorts.from_base(directus_port),
                app_port=app_port,
                extra_env=lambda: envfile.load("cluster"),
            )
            self.directus = list(self.cluster.instances)
            servers = self.cluster.parts
        self.page_server = PageServer(app_port, verbose=verbose)
        self.parts: list[Part] = [*servers, self.page_server]

    @property
    def directus_url(self) -> str:
        return f"http://{paths.HOST}:{self.directus_port}"

    def _single_env(self) -> dict[str, str]:
        return directus.directus_env(
            self.directus_port, paths.MAIN_DB, envfile.load("single"), app_port=self.app_port
        )

    def _bootstrap_sqlite(self, say: Say) -> None:
        if paths.MAIN_DB.exists():
            if not paths.SECRETS_FILE.exists():
                raise StackError(
                    f"{paths.MAIN_DB} exists but {paths.SECRETS_FILE} does not: the admin "
                    f"password is lost. Delete {paths.MAIN_DB} to start with a fresh database."
                )
            return
        say(f"bootstrapping a fresh Directus database at {paths.MAIN_DB} (~10 s)…")
        directus.bootstrap(paths.MAIN_DB, log_file=paths.DIRECTUS_LOG)

    def provision(self, say: Say) -> None:
        changes = provision(self.directus[0].url, credentials.load())
        for change in changes:
            say(f"  provision: {change}")
        if not changes:
            say("  provision: nothing to change")

    def info(self) -> dict[str, Any]:
        """The content of var/stack.json."""
        s = credentials.load()
        info: dict[str, Any] = {
            "mode": self.mode,
            "directus_url": self.directus_url,
            "ws_url": f"ws://{paths.HOST}:{self.directus_port}/websocket",
            "app_url": self.page_server.url,
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
            "directus_port": self.directus_port,
            "app_port": self.app_port,
        }
        if self.cluster is not None:
            info.update(self.cluster.info())
        else:
            info["db_file"] = str(paths.MAIN_DB)
        info["pids"] = {part.name: part.pid() for part in self.parts}
        info["supervisor"] = {"pid": supervisor.pid(), "log": str(supervisor.LOG)}
        return info

    def write_info(self) -> dict[str, Any]:
        info = self.info()
        text = json.dumps(info, indent=2) + "\n"
        with contextlib.suppress(OSError):
            if paths.STACK_JSON.read_text() == text:
                return info
        paths.STACK_JSON.parent.mkdir(parents=True, exist_ok=True)
        tmp = paths.STACK_JSON.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, paths.STACK_JSON)
        return info


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


def _recorded_ports() -> tuple[int, int]:
    info = read_info()
    if info and "directus_port" in info and "app_port" in info:
        return int(info["directus_port"]), int(info["app_port"])
    return paths.directus_port(), paths.app_port()


def running_stack() -> LocalStack | None:
    """The stack that runs (its supervisor or any of its parts), on its recorded ports."""
    d_port, a_port = _recorded_ports()
    state = supervisor.read_state()
    if supervisor.pid() is not None and state and state.get("mode") in MODES:
        return LocalStack(state["mode"], d_port, a_port)
    for mode in MODES:
        stack = LocalStack(mode, d_port, a_port)
        # The page server is in both modes: it does not tell them apart.
        if any(part.alive() for part in stack.parts if part is not stack.page_server):
            return stack
    if LocalStack("single", d_port, a_port).page_server.alive():
        return LocalStack(_recorded_mode(), d_port, a_port)
    return None


def _recorded_mode() -> str:
    info = read_info()
    return info["mode"] if info and info.get("mode") in MODES else "single"


def _wanted_stack(cluster: bool | None, verbose: bool = False) -> LocalStack:
    """The stack that ``up``/``run`` should make true: the running one when the mode agrees."""
    running = running_stack()
    wanted = None if cluster is None else ("cluster" if cluster else "single")
    if running is not None:
        if wanted is not None and wanted != running.mode:
            raise StackError(
                f"the {running.mode} stack is running: `make down` stops it before "
                f"`make up{' CLUSTER=1' if wanted == 'cluster' else ''}`"
            )
        return LocalStack(running.mode, running.directus_port, running.app_port, verbose=verbose)
    return LocalStack(wanted or "single", paths.directus_port(), paths.app_port(), verbose=verbose)


def up(
    *, cluster: bool | None = None, quiet: bool = False, timeout: float = 900.0
) -> tuple[dict[str, Any], list[str]]:
    """Start whatever part of the stack is down (all of it the first time) under a supervisor
    in the background, and leave what runs alone. Returns (var/stack.json's content, the labels
    of the parts started). ``cluster`` None: the mode that runs, else single."""

    def say(msg: str) -> None:
        if not quiet:
            print(msg, flush=True)

    with _lock():
        stack = _wanted_stack(cluster)
        envfile.load(stack.mode)  # a refused key fails here, before anything starts
        request = secrets.token_hex(8)
        supervisor.REQUEST.parent.mkdir(parents=True, exist_ok=True)
        supervisor.REQUEST.write_text(request + "\n")
        log_offset = supervisor.LOG.stat().st_size if supervisor.LOG.exists() else 0
        sup_pid = supervisor.pid()
        if sup_pid is not None:
            os.kill(sup_pid, signal.SIGUSR1)
        else:
            proc = procs.spawn(
                [
                    paths.python(),
                    "-m",
                    "stack",
                    "supervise",
                    "--mode",
                    stack.mode,
                    "--directus-port",
                    str(stack.directus_port),
                    "--app-port",
                    str(stack.app_port),
                ],
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                cwd=paths.ROOT,
                log_file=supervisor.LOG,
            )
            sup_pid = proc.pid
            procs.write_pid(supervisor.PID, sup_pid)
        deadline = time.monotonic() + timeout
        while True:
            log_offset = supervisor.echo_log(log_offset, say)
            state = supervisor.read_state() or {}
            if state.get("served_request") == request and state.get("pid") == sup_pid:
                break
            if not procs.is_alive(sup_pid):
                supervisor.echo_log(log_offset, say)
                raise StackError(
                    f"the supervisor exited; log {supervisor.LOG}:\n"
                    + procs.log_tail(supervisor.LOG, 15)
                )
            if time.monotonic() > deadline:
                raise StackError(f"the stack did not come up in {timeout:.0f} s")
            time.sleep(0.2)
        outcome = state.get("last_pass") or {}
        if outcome.get("error"):
            raise StackError(outcome["error"])
        return read_info() or stack.info(), list(outcome.get("started") or [])


def ensure_up(*, quiet: bool = True) -> tuple[dict[str, Any], bool]:
    """For pytest and scripts: (info, started_something). Stop it afterwards with down() only
    when started_something."""
    info, started = up(quiet=quiet)
    return info, bool(started)


def down(*, quiet: bool = True) -> bool:
    """Stop the supervisor, then every part of either mode (by pid files). True when something
    was stopped."""
    say: Say = say_nothing if quiet else (lambda m: print(m, flush=True))
    stopped = False
    with _lock():
        sup_pid = supervisor.pid()
        if sup_pid is not None:
            if sup_pid == os.getpid():
                raise StackError("down() called from the supervisor itself")
            say(f"stopping the supervisor (pid {sup_pid})…")
            # In the foreground (`make run`) it stops the parts itself first.
            procs.stop_pid(sup_pid, timeout=90.0)
            stopped = True
        supervisor.PID.unlink(missing_ok=True)
        supervisor.STATE.unlink(missing_ok=True)
        d_port, a_port = _recorded_ports()
        seen: set[Path] = set()
        for mode in MODES:
            stack = LocalStack(mode, d_port, a_port)
            todo = [p for p in stack.parts if p.pid_file not in seen]
            seen.update(p.pid_file for p in todo)
            stopped = bool(parts.stop(todo, say)) or stopped
    return stopped


def status() -> dict[str, Any]:
    """What runs: the mode, the supervisor, and for each part its pid, uptime, restarts,
    health and whether the supervisor gave up on it."""
    stack = running_stack() or LocalStack(_recorded_mode(), *_recorded_ports())
    state = supervisor.read_state() or {}
    sup_pid = supervisor.pid()
    watched = state.get("parts", {}) if sup_pid is not None else {}
    rows = []
    for part in stack.parts:
        pid = part.pid()
        healthy, detail = part.health() if pid is not None else (False, "")
        seen = watched.get(part.name, {})
        rows.append(
            {
                "name": part.name,
                "label": part.label,
                "url": part.url,
                "pid": pid,
                "up": pid is not None and healthy,
                "uptime": procs.uptime(pid) if pid is not None else None,
                "health": detail,
                "restarts": seen.get("restarts", 0),
                "last_exit": seen.get("last_exit"),
                "given_up": seen.get("given_up"),
            }
        )
    return {
        "mode": stack.mode,
        "directus_url": stack.directus_url,
        "app_url": stack.page_server.url,
        "supervisor": {
            "pid": sup_pid,
            "uptime": procs.uptime(sup_pid) if sup_pid is not None else None,
            "log": str(supervisor.LOG),
        },
        "parts": rows,
        "up": all(row["up"] for row in rows),
    }


def is_up() -> bool:
    return status()["up"]


def run(*, cluster: bool = False, verbose: bool = False) -> int:
    """The stack in the foreground: its supervisor in this process, until Ctrl-C/SIGTERM,
    which stop every part."""
    with _lock():
        if supervisor.pid() is not None:
            print("the stack is already running (`make down` stops it)", flush=True)
            return 1
        stack = _wanted_stack(cluster, verbose=verbose)
        envfile.load(stack.mode)
        procs.write_pid(supervisor.PID, os.getpid())
    return supervisor.Supervisor(stack, foreground=True).run()


def provision_running() -> int:
    stack = running_stack()
    if stack is None or not stack.directus[0].ready():
        print("Directus is not running (`make up` starts it)", flush=True)
        return 1
    stack.provision(lambda m: print(m, flush=True))
    return 0

"""The supervisor: a small process of ours that keeps the stack's parts running.

It is the one that starts parts: at its own start, and whenever ``make up`` asks (a request id
in var/supervisor.request, then SIGUSR1); it answers in var/supervisor.json. Between requests
it looks at every part twice a second, and restarts one whose process is gone, as a container's
``on-failure`` restart policy does: at once the first time, then after 1, 2, 4 and 8 s. A part
that crashes more than BURST times within WINDOW seconds is given up on (``make status`` says
so; ``make up`` tries again). Every start, exit (with its status) and restart is logged with
its time in var/supervisor.log.

In the background (``make up``) SIGTERM ends the supervisor alone, and ``make down`` then stops
the parts; in the foreground (``make run``) Ctrl-C or SIGTERM stops every part too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import directus, parts, paths, procs

if TYPE_CHECKING:
    from .core import LocalStack

PID = paths.VAR / "supervisor.pid"
STATE = paths.VAR / "supervisor.json"
LOG = paths.VAR / "supervisor.log"
REQUEST = paths.VAR / "supervisor.request"

BACKOFF = (0.0, 1.0, 2.0, 4.0, 8.0)  # seconds before the 1st, 2nd, ... restart in a row
BURST = 5  # more crashes than this within WINDOW seconds: given up
WINDOW = 120.0
INTERVAL = 0.5


def _is_supervisor(pid: int) -> bool:
    line = procs.cmdline(pid)
    return "stack" in line and ("supervise" in line or "run" in line)


def pid() -> int | None:
    """The running supervisor's pid (a stale pid file is removed)."""
    found = procs.read_pid(PID)
    if found is None:
        return None
    if procs.is_alive(found) and _is_supervisor(found):
        return found
    with contextlib.suppress(FileNotFoundError):
        PID.unlink()
    return None


def read_state() -> dict[str, Any] | None:
    try:
        return json.loads(STATE.read_text())
    except (OSError, ValueError):
        return None


def echo_log(offset: int, say: Callable[[str], None]) -> int:
    """Pass on what the log got since offset (without the time stamps); the new offset."""
    try:
        with open(LOG, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
    except OSError:
        return offset
    end = chunk.rfind(b"\n") + 1
    for line in chunk[:end].decode(errors="replace").splitlines():
        stamp, _, rest = line.partition(" ")
        say(rest if stamp[:2] == "20" and "T" in stamp else line)
    return offset + end


class Watch:
    """What the supervisor knows of one part."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.restarts = 0
        self.crashes: list[float] = []  # monotonic times
        self.next_try: float | None = None
        self.last_exit: str | None = None
        self.last_restart: str | None = None
        self.given_up: str | None = None

    def __repr__(self) -> str:
        return f"<Watch pid={self.pid} restarts={self.restarts} given_up={bool(self.given_up)}>"

    def as_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "last_restart": self.last_restart,
            "given_up": self.given_up,
        }


class _Stop(BaseException):
    pass


class Supervisor:
    def __init__(self, stack: LocalStack, *, foreground: bool) -> None:
        self.stack = stack
        self.foreground = foreground
        self.watches = {part.name: Watch() for part in stack.parts}
        # Restarts count from the stack's start (`make down` clears them), not this process's.
        earlier = read_state() or {}
        # Parts this stack has run before: starting one of them again is a restart.
        self.known: set[str] = set()
        if earlier.get("mode") == stack.mode:
            for name, seen in (earlier.get("parts") or {}).items():
                if name in self.watches:
                    self.watches[name].restarts = int(seen.get("restarts") or 0)
                    self.known.add(name)
        self.served_request: str | None = None
        self.last_pass: dict[str, Any] = {}
        self.requested = True  # the first pass
        self.first_pass = True
        self.started_at = time.time()

    # --- output and state -------------------------------------------------------------------

    def say(self, msg: str) -> None:
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}"
        if self.foreground:
            print(msg, flush=True)
            with open(LOG, "a") as fh:
                fh.write(line + "\n")
        else:
            print(line, flush=True)  # stdout is the log

    def write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "mode": self.stack.mode,
            "foreground": self.foreground,
            "started_at": self.started_at,
            "served_request": self.served_request,
            "last_pass": self.last_pass,
            "parts": {name: w.as_dict() for name, w in self.watches.items()},
        }
        tmp = STATE.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, STATE)

    # --- a requested pass: start whatever is down ---------------------------------------------

    def serve_request(self) -> None:
        self.requested = False
        try:
            request = REQUEST.read_text().strip()
        except OSError:
            request = None
        started: list[parts.Part] = []
        error = None
        try:
            parts.ensure(self.stack.parts, self.say, started=started)
            if any(isinstance(p, directus.DirectusPart) for p in started):
                self.stack.provision(self.say)
        except Exception as err:
            error = str(err)
            self.say(f"error: {err}")
        for part in self.stack.parts:
            watch = self.watches[part.name]
            watch.pid = part.pid()
            watch.given_up, watch.crashes, watch.next_try = None, [], None
            if part in started and part.name in self.known:
                watch.restarts += 1
                watch.last_restart = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.known.update(part.name for part in self.stack.parts)
        if started:
            self.say("started: " + ", ".join(p.label for p in started))
        elif error is None:
            self.say("every part was already running")
        self.last_pass = {"started": [p.label for p in started], "error": error}
        self.served_request = request
        self.stack.write_info()
        self.write_state()
        if error is not None and self.first_pass:
            # Nothing to supervise: leave no half-started stack behind.
            parts.stop(started, self.say)
            raise SystemExit(1)

    # --- watching -----------------------------------------------------------------------------

    def _crashed(self, part: parts.Part, watch: Watch, why: str) -> None:
        now = time.monotonic()
        watch.last_exit = why
        watch.crashes = [t for t in watch.crashes if now - t < WINDOW] + [now]
        if len(watch.crashes) > BURST:
            watch.given_up = (
                f"{part.label} crashed {len(watch.crashes)} times within {WINDOW:.0f} s "
                f"(last: {why}); the supervisor gave up on it. Its log: {part.log_file}; "
                "`make up` tries again"
            )
            watch.next_try = None
            self.say(watch.given_up)
        else:
            delay = BACKOFF[min(len(watch.crashes), len(BACKOFF)) - 1]
            watch.next_try = now + delay
            self.say(f"{part.label}: {why}; restarting it in {delay:.0f} s")
        self.write_state()

    def check(self, part: parts.Part) -> None:
        watch = self.watches[part.name]
        live = part.pid()
        if live is not None:
            watch.pid = live
            return
        if watch.given_up:
            return
        if watch.next_try is None:
            status = procs.exit_status(watch.pid) if watch.pid else None
            pid_text = f"pid {watch.pid} " if watch.pid else ""
            self._crashed(part, watch, f"{pid_text}exited, {procs.describe_exit(status)}")
        if watch.next_try is not None and time.monotonic() >= watch.next_try:
            watch.next_try = None
            watch.restarts += 1  # counted when it begins: a restart cut short is one too
            watch.last_restart = time.strftime("%Y-%m-%dT%H:%M:%S")
            self.write_state()
            t0 = time.monotonic()
            try:
                new_pid = part.start(self.say)
            except Exception as err:
                watch.pid = None
                first = str(err).splitlines()[0] if str(err) else type(err).__name__
                self._crashed(part, watch, f"restart failed: {first}")
                return
            watch.pid = new_pid
            self.say(
                f"restarted {part.label}: pid {new_pid}, restart {watch.restarts}, "
                f"{time.monotonic() - t0:.1f} s"
            )
            self.stack.write_info()
            self.write_state()

    # --- the loop -----------------------------------------------------------------------------

    def _on_request(self, signum: int, frame: object) -> None:
        self.requested = True

    def _on_stop(self, signum: int, frame: object) -> None:
        raise _Stop()

    def run(self) -> int:
        paths.VAR.mkdir(parents=True, exist_ok=True)
        procs.write_pid(PID, os.getpid())
        signal.signal(signal.SIGUSR1, self._on_request)
        stop_signals = [signal.SIGTERM, signal.SIGHUP]
        if self.foreground:
            stop_signals.append(signal.SIGINT)
        for sig in stop_signals:
            signal.signal(sig, self._on_stop)
        self.say(
            f"supervisor (pid {os.getpid()}) of the {self.stack.mode} stack"
            f"{' in the foreground' if self.foreground else ''}"
        )
        code = 0
        try:
            self.serve_request()
            self.first_pass = False
            if self.foreground:
                print_banner(self.stack.info())
                print("Ctrl-C stops every part.", flush=True)
            while True:
                if self.requested:
                    self.serve_request()
                for part in self.stack.parts:
                    self.check(part)
                time.sleep(INTERVAL)
        except _Stop:
            self.say("supervisor stopping")
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        finally:
            if self.foreground:
                for sig in stop_signals:  # a second Ctrl-C does not cut the stopping short
                    signal.signal(sig, signal.SIG_IGN)
                parts.stop(self.stack.parts, self.say)
                self.say("stopped.")
            if procs.read_pid(PID) == os.getpid():
                PID.unlink(missing_ok=True)
        return code


def print_banner(info: dict[str, Any]) -> None:
    """The URLs, the admin's login and the demo token."""
    out = sys.stdout
    out.write("\n")
    out.write(f"  open      {info['app_url']}\n")
    via = "HAProxy; " if info.get("mode") == "cluster" else ""
    out.write(
        f"  Directus  {info['directus_url']}  ({via}admin: {info['admin_email']} / "
        f"{info['admin_password']})\n"
    )
    for instance in info.get("instances", []):
        out.write(f"  instance  {instance['url']}  pid {instance['pid']}\n")
    if info.get("mode") == "cluster":
        out.write(
            f"  Redis     :{info['redis']['port']}  PostgreSQL :{info['postgres']['port']}"
            f" (data {info['postgres'].get('data')})\n"
        )
    out.write(f"  token     {info['token']}  (demo@example.com, policy 'Public Posts')\n")
    out.write("\n")
    out.flush()

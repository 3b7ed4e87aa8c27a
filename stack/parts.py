"""The processes of a stack ("parts") and the one way they are started, checked and stopped.

Both modes are a list of parts in start order: one Directus and the page server, or
PostgreSQL, Redis, two Directus instances, HAProxy and the page server. ``ensure(parts)``
starts whatever is down and leaves what answers alone; ``stop(parts)`` stops them in reverse
order. Each part keeps its pid in a pid file, checked against the process's command line, so a
recycled pid is never taken for ours.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from . import paths, procs

Say = Callable[[str], None]


class StackError(RuntimeError):
    pass


def say_nothing(msg: str) -> None:
    pass


class Part:
    """One process of the stack. Subclasses say how to start it and how to know it answers."""

    #: strings that all appear in the command line of this part's process
    marker: tuple[str, ...] = ()
    #: the signal that asks it to stop (PostgreSQL: SIGINT, its "fast" shutdown)
    stop_signal: int = signal.SIGTERM
    #: parts of one group are started at the same time (both Directus instances)
    group: str | None = None
    ready_timeout: float = 120.0
    #: run as this user when we are root (PostgreSQL refuses to run as root)
    user: str | None = None

    def __init__(self, name: str, label: str, *, port: int, pid_file: Path, log_file: Path):
        self.name = name
        self.label = label
        self.port = port
        self.pid_file = Path(pid_file)
        self.log_file = Path(log_file)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} :{self.port} pid={self.pid()}>"

    # --- what a subclass provides ---------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{paths.HOST}:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def cwd(self) -> Path:
        return self.log_file.parent

    def prepare(self, say: Say) -> None:
        """Before each start (data folders, bootstrap, a configuration file)."""

    def after_start(self, say: Say) -> None:
        """Once it answers, at each start."""

    def ready(self) -> bool:
        raise NotImplementedError

    def health(self) -> tuple[bool, str]:
        """(healthy, what was checked and what it answered), for `make status`."""
        ok = self.ready()
        return ok, "answers" if ok else "does not answer"

    # --- the process ----------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of the running process, or None (a stale pid file is removed)."""
        pid = procs.read_pid(self.pid_file)
        if pid is None:
            return None
        if procs.is_alive(pid):
            line = " ".join(procs.cmdline(pid))
            if all(m in line for m in self.marker):
                return pid
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        return None

    def alive(self) -> bool:
        return self.pid() is not None

    def start(self, say: Say = say_nothing) -> int:
        """Start it and return its pid once it answers; StackError (with the log's tail) when
        it does not. The pid file is written at once, so `make down` finds a part that is
        still starting."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.prepare(say)
        if procs.port_in_use(self.port):
            raise StackError(f"port {self.port} on {paths.HOST} is already in use ({self.label})")
        say(f"starting {self.label} on {self.url} (log {self.log_file})…")
        t0 = time.monotonic()
        with open(self.log_file, "ab") as log:
            log.write(f"\n--- {self.label} start {time.strftime('%FT%T')} ---\n".encode())
        proc = procs.spawn(
            self.command(),
            env=self.environment(),
            cwd=self.cwd(),
            log_file=self.log_file,
            user=self.user if os.geteuid() == 0 else None,
        )
        procs.write_pid(self.pid_file, proc.pid)
        ok = procs.wait_until(
            self.ready, timeout=self.ready_timeout, alive=lambda: proc.poll() is None
        )
        if not ok:
            code = proc.poll()
            self.stop()
            why = (
                procs.describe_exit(code)
                if code is not None
                else f"not answering after {self.ready_timeout:.0f} s"
            )
            raise StackError(
                f"{self.label} did not start ({why}); log {self.log_file}:\n"
                + procs.log_tail(self.log_file)
            )
        self.after_start(say)
        say(f"{self.label} is up, pid {proc.pid} ({time.monotonic() - t0:.1f} s)")
        return proc.pid

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop it (its stop signal, then SIGKILL); True when it was running."""
        pid = self.pid()
        if pid is not None:
            if pid == os.getpid():
                raise StackError(f"{self.label} is this process: it cannot stop itself")
            procs.stop_pid(pid, timeout=timeout, sig=self.stop_signal)
            procs.wait_until(lambda: not procs.port_in_use(self.port), timeout=10.0)
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        return pid is not None

    def kill(self) -> None:
        """SIGKILL of its process alone (a crash); returns once it is gone."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            procs.wait_dead(pid, 10.0)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self) -> str:
        return procs.log_tail(self.log_file)


def _groups(parts: list[Part]) -> list[list[Part]]:
    groups: list[list[Part]] = []
    for part in parts:
        if groups and part.group is not None and groups[-1][-1].group == part.group:
            groups[-1].append(part)
        else:
            groups.append([part])
    return groups


def ensure(
    parts: list[Part],
    say: Say = say_nothing,
    *,
    started: list[Part] | None = None,
    busy_wait: float = 30.0,
) -> list[Part]:
    """Start, in order, every part that is down; a part that runs but does not answer within
    busy_wait seconds is restarted; the others are left alone. Returns the parts started (also
    appended to ``started`` as they come, so a caller sees them when a later start fails)."""
    started = [] if started is None else started
    for group in _groups(parts):
        to_start = []
        for part in group:
            pid = part.pid()
            if pid is not None:
                if procs.wait_until(part.ready, timeout=busy_wait, alive=part.alive):
                    continue
                if part.alive():
                    say(f"{part.label} (pid {pid}) does not answer; restarting it")
                    part.stop()
            to_start.append(part)
        if len(to_start) == 1:
            to_start[0].start(say)
        elif to_start:
            with concurrent.futures.ThreadPoolExecutor(len(to_start)) as pool:
                futures = [pool.submit(part.start, say) for part in to_start]
                errors = [f.exception() for f in futures if f.exception() is not None]
            if errors:
                ok = zip(to_start, futures, strict=True)
                started.extend(part for part, f in ok if f.exception() is None)
                raise errors[0]  # type: ignore[misc]
        started.extend(to_start)
    return started


def stop(parts: list[Part], say: Say = say_nothing) -> list[Part]:
    """Stop every part that runs, last started first; returns those that ran."""
    stopped = []
    errors = []
    for part in reversed(parts):
        pid = part.pid()
        if pid is None:
            continue
        say(f"stopping {part.label} (pid {pid})…")
        try:
            part.stop()
            stopped.append(part)
        except Exception as err:  # stop the rest anyway
            errors.append(f"{part.label}: {err}")
    if errors:
        raise StackError("stopping the stack: " + "; ".join(errors))
    return stopped

"""Small process helpers: pid files, liveness, stopping by pid, waiting for a URL."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

# Popen objects of the processes this Python process started, by pid, so they can be reaped
# (no zombies, no "subprocess still running" warnings) when they are stopped.
_CHILDREN: dict[int, subprocess.Popen] = {}
# Exit statuses of the children reaped so far, by pid.
_EXITED: dict[int, int] = {}


def spawn(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log_file: Path,
    user: str | None = None,
) -> subprocess.Popen:
    """Start a process in its own session (Ctrl-C at the terminal does not reach it), with
    stdout and stderr appended to log_file and no stdin. ``user`` (when we are root) runs it as
    that user and group, with no supplementary groups: it stays our child, with its own pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    as_user: dict = {}
    if user is not None:
        as_user = {"user": user, "group": user, "extra_groups": []}
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=str(cwd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            **as_user,
        )
    _CHILDREN[proc.pid] = proc
    return proc


def _reap(pid: int) -> bool:
    """Collect pid if it is a dead child of ours. True when it was reaped (so it is gone)."""
    proc = _CHILDREN.get(pid)
    if proc is not None:
        if proc.poll() is not None:
            _EXITED[pid] = proc.returncode
            _CHILDREN.pop(pid, None)
            return True
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid


def exit_status(pid: int) -> int | None:
    """The exit status of a child of ours that has exited (negative: killed by that signal);
    None while it runs or when it is not our child (then nobody here can know it)."""
    if pid in _EXITED:
        return _EXITED[pid]
    proc = _CHILDREN.get(pid)
    if proc is None:
        return None
    # It may be seen dead (a zombie in /proc) a moment before it can be reaped.
    with contextlib.suppress(subprocess.TimeoutExpired):
        return proc.wait(timeout=1.0)
    return None


def describe_exit(status: int | None) -> str:
    if status is None:
        return "exit status unknown (not started by this process)"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def uptime(pid: int) -> float | None:
    """Seconds since pid started (from /proc), or None when it does not run."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        started_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        since_boot = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return max(0.0, since_boot - started_ticks / os.sysconf("SC_CLK_TCK"))


def is_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if _reap(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie that is not our child still answers kill(0); look at its state.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _signal(pid: int, sig: int) -> None:
    """Signal pid, and its process group when it leads one (our servers do: own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
            return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.05)
    return not is_alive(pid)


def stop_pid(pid: int, *, timeout: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """sig (SIGTERM), then SIGKILL when it has not exited within timeout seconds."""
    if not is_alive(pid):
        return
    _signal(pid, sig)
    if wait_dead(pid, timeout):
        return
    _signal(pid, signal.SIGKILL)
    wait_dead(pid, 5.0)


def kill_pid(pid: int) -> None:
    """SIGKILL at once (a crash, for tests), and wait until it is gone."""
    if not is_alive(pid):
        return
    _signal(pid, signal.SIGKILL)
    wait_dead(pid, 5.0)


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    os.replace(tmp, pid_file)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for extra test servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of GET url, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except (OSError, ValueError):
        return None


def log_tail(log_file: Path, lines: int = 40) -> str:
    try:
        with open(log_file, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    alive: Callable[[], bool] | None = None,
    interval: float = 0.2,
) -> bool:
    """Poll check() until it is true (True), the deadline passes or alive() turns false (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if alive is not None and not alive():
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)

"""Unit tests of how the stack is operated, with no server: directus.env (what it may set, how it
is read), where PostgreSQL's data goes, the parts' pid files, ensure(), and the supervisor's
restart policy (backoff, giving up) on fake parts and a fake clock."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from stack import cluster, core, credentials, envfile, parts, procs, supervisor
from stack.parts import Part, StackError

SECRETS = {
    "secret": "S3CRET",
    "admin_email": "admin@example.com",
    "admin_password": "pw",
}


# ----- directus.env ---------------------------------------------------------------------------


def test_directus_env_is_read_as_directus_reads_its_env_file():
    text = """
# a comment
RATE_LIMITER_ENABLED=true
export WEBSOCKETS_HEARTBEAT_PERIOD=10
LOG_LEVEL = "info"
EMAIL_FROM='no-reply@example.com'
EMPTY=
"""
    assert envfile.parse(text) == {
        "RATE_LIMITER_ENABLED": "true",
        "WEBSOCKETS_HEARTBEAT_PERIOD": "10",
        "LOG_LEVEL": "info",
        "EMAIL_FROM": "no-reply@example.com",
        "EMPTY": "",
    }


@pytest.mark.parametrize("line", ["JUST_A_WORD", "1ABC=x", "A B=c"])
def test_a_malformed_line_is_refused_with_its_number(line):
    with pytest.raises(StackError, match=r"line 2: expected KEY=value"):
        envfile.parse(f"OK=1\n{line}\n")


@pytest.fixture
def env_file(tmp_path, monkeypatch):
    file = tmp_path / "directus.env"
    monkeypatch.setenv("DIRECTUS_ENV_FILE", str(file))
    return file


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("DB_CLIENT", "owns the database"),
        ("DB_PASSWORD_FILE", "owns the database"),
        ("PORT", "its port"),
        ("HOST", "127.0.0.1"),
        ("PUBLIC_URL", "address clients use"),
        ("SECRET", "secret"),
        ("SECRET_FILE", "secret"),
    ],
)
def test_keys_the_stack_owns_are_refused_naming_the_key_and_why(env_file, key, why):
    env_file.write_text(f"LOG_LEVEL=info\n{key}=x\n")
    for mode in ("single", "cluster"):
        with pytest.raises(StackError) as refused:
            envfile.load(mode)
        assert f"  {key}: " in str(refused.value) and why in str(refused.value)
        assert "LOG_LEVEL" not in str(refused.value)


def test_redis_settings_are_refused_in_the_cluster_only(env_file):
    env_file.write_text("REDIS_HOST=elsewhere\nREDIS=redis://x\n")
    assert envfile.load("single") == {"REDIS_HOST": "elsewhere", "REDIS": "redis://x"}
    with pytest.raises(StackError) as refused:
        envfile.load("cluster")
    assert "REDIS_HOST: " in str(refused.value) and "REDIS: " in str(refused.value)
    assert "events stop crossing instances" in str(refused.value)


def test_a_named_file_must_exist_the_default_one_need_not(tmp_path, monkeypatch):
    monkeypatch.setenv("DIRECTUS_ENV_FILE", str(tmp_path / "missing.env"))
    with pytest.raises(StackError, match="does not exist"):
        envfile.load("single")
    monkeypatch.delenv("DIRECTUS_ENV_FILE")
    monkeypatch.setattr(envfile, "DEFAULT_FILE", tmp_path / "directus.env")
    assert envfile.load("single") == {}


@pytest.fixture
def no_postgres_files(monkeypatch):
    """PostgreSQL's passwords without making its folder (outside the checkout when root)."""
    monkeypatch.setattr(
        cluster.Postgres, "passwords", property(lambda self: {"postgres": "p", "directus": "d"})
    )


def test_directus_env_reaches_every_instance_of_both_modes(
    env_file, monkeypatch, no_postgres_files
):
    monkeypatch.setattr(credentials, "load", lambda *a, **k: dict(SECRETS))
    env_file.write_text("WEBSOCKETS_HEARTBEAT_PERIOD=10\nRATE_LIMITER_ENABLED=true\n")
    single = core.LocalStack("single", 9300, 9310)
    clustered = core.LocalStack("cluster", 9320, 9330)
    envs = [single.directus[0].environment()] + [i.environment() for i in clustered.directus]
    assert len(envs) == 3
    for env in envs:
        assert env["WEBSOCKETS_HEARTBEAT_PERIOD"] == "10"
        assert env["RATE_LIMITER_ENABLED"] == "true"
        assert env["SECRET"] == "S3CRET"
    # and is read at each start: a change reaches the next restart
    env_file.write_text("WEBSOCKETS_HEARTBEAT_PERIOD=20\n")
    assert clustered.directus[1].environment()["WEBSOCKETS_HEARTBEAT_PERIOD"] == "20"


# ----- PostgreSQL's folder --------------------------------------------------------------------


def test_postgres_data_leaves_the_checkout_only_when_root(monkeypatch, tmp_path):
    wanted = tmp_path / "var" / "cluster" / "postgres"
    monkeypatch.setattr(cluster, "_is_root", lambda: False)
    assert cluster.postgres_dir(wanted) == wanted
    monkeypatch.setattr(cluster, "_is_root", lambda: True)
    outside = cluster.postgres_dir(wanted)
    assert outside.parent == cluster.POSTGRES_HOME
    assert cluster.postgres_dir(wanted) == outside  # the same checkout finds it again
    assert cluster.postgres_dir(tmp_path / "other" / "cluster" / "postgres") != outside
    # Its pid file stays in the checkout, beside the other parts'.
    postgres = cluster.Postgres(wanted, 9999)
    assert postgres.pid_file == wanted.parent / "postgres.pid"
    assert postgres.data == outside / "data"


# ----- parts ------------------------------------------------------------------------------------


class FakePart(Part):
    """A part whose process is this test's: ``running`` says whether it is up."""

    marker = ()

    def __init__(self, name: str, tmp: Path, *, group: str | None = None) -> None:
        super().__init__(
            name, name.title(), port=1, pid_file=tmp / f"{name}.pid", log_file=tmp / "x"
        )
        self.group = group
        self.running = False
        self.starts = 0
        self.fail_starts = 0

    def pid(self) -> int | None:
        return os.getpid() if self.running else None

    def ready(self) -> bool:
        return self.running

    def start(self, say=parts.say_nothing) -> int:
        self.starts += 1
        if self.fail_starts:
            self.fail_starts -= 1
            raise StackError(f"{self.label} did not start (exit status 1)\nlog tail")
        self.running = True
        say(f"{self.label} is up")
        return os.getpid()


def test_ensure_starts_what_is_down_in_order_and_leaves_the_rest(tmp_path):
    a, b, c = (FakePart(n, tmp_path) for n in ("db", "cache", "app"))
    b.running = True
    said: list[str] = []
    assert parts.ensure([a, b, c], said.append) == [a, c]
    assert (a.starts, b.starts, c.starts) == (1, 0, 1)
    assert said == ["Db is up", "App is up"]
    assert parts.ensure([a, b, c]) == []


def test_ensure_reports_what_it_started_before_a_failure(tmp_path):
    a, b, c = (FakePart(n, tmp_path, group="g" if n != "db" else None) for n in ("db", "x", "y"))
    c.fail_starts = 1
    started: list[Part] = []
    with pytest.raises(StackError, match="Y did not start"):
        parts.ensure([a, b, c], started=started)
    assert started == [a, b]  # b started beside c (one group), and is reported


def test_a_pid_file_naming_another_program_is_stale(tmp_path):
    class Redis(Part):
        marker = ("redis-server",)

    part = Redis("redis", "Redis", port=1, pid_file=tmp_path / "redis.pid", log_file=tmp_path / "l")
    procs.write_pid(part.pid_file, os.getpid())  # alive, but pytest, not redis-server
    assert part.pid() is None
    assert not part.pid_file.exists()


# ----- the supervisor ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def strftime(self, fmt: str) -> str:
        return f"t={self.now:.0f}"


@pytest.fixture
def watched(tmp_path, monkeypatch):
    monkeypatch.setattr(supervisor, "STATE", tmp_path / "supervisor.json")
    monkeypatch.setattr(supervisor, "LOG", tmp_path / "supervisor.log")
    clock = Clock()
    monkeypatch.setattr(supervisor, "time", clock)
    part = FakePart("directus", tmp_path)
    part.running = True
    stack = SimpleNamespace(
        mode="single", parts=[part], write_info=lambda: None, provision=lambda say: None
    )
    sup = supervisor.Supervisor(stack, foreground=False)  # type: ignore[arg-type]
    sup.watches["directus"].pid = 4242
    lines: list[str] = []
    monkeypatch.setattr(sup, "say", lines.append)
    return SimpleNamespace(sup=sup, part=part, clock=clock, lines=lines)


def test_a_crashed_part_is_restarted_at_once_and_the_exit_logged(watched, monkeypatch):
    monkeypatch.setattr(procs, "exit_status", lambda pid: -signal.SIGKILL)
    watched.part.running = False
    watched.sup.check(watched.part)
    assert watched.part.running and watched.part.starts == 1
    assert watched.lines[0] == "Directus: pid 4242 exited, killed by SIGKILL; restarting it in 0 s"
    assert watched.lines[-1].startswith("restarted Directus: pid ")
    state = supervisor.read_state()
    assert state["parts"]["directus"]["restarts"] == 1
    assert state["parts"]["directus"]["last_exit"] == "pid 4242 exited, killed by SIGKILL"


def test_restarts_back_off_then_the_supervisor_gives_up(watched):
    delays = []
    for _ in range(supervisor.BURST):
        watched.part.running = False
        watched.sup.check(watched.part)  # finds it down, schedules the restart
        watch = watched.sup.watches["directus"]
        if watch.next_try is not None:
            delays.append(watch.next_try - watched.clock.now)
            watched.clock.now = watch.next_try
            watched.sup.check(watched.part)
        else:
            delays.append(0.0)
        assert watched.part.running
        watched.clock.now += 1
    assert delays == list(supervisor.BACKOFF)
    watched.part.running = False
    watched.sup.check(watched.part)
    given_up = watched.sup.watches["directus"].given_up
    assert given_up and "crashed 6 times within 120 s" in given_up and "`make up`" in given_up
    watched.clock.now += 60
    watched.sup.check(watched.part)
    assert not watched.part.running  # left down
    assert supervisor.read_state()["parts"]["directus"]["given_up"] == given_up
    # `make up` asks for a pass: it starts the part and forgets the crashes.
    watched.sup.first_pass = False
    watched.sup.known.add("directus")  # it ran before: starting it again is a restart
    watched.sup.serve_request()
    assert watched.part.running and watched.sup.watches["directus"].given_up is None
    assert watched.sup.watches["directus"].restarts == supervisor.BURST + 1


def test_a_failed_restart_counts_as_a_crash_and_is_tried_again(watched):
    watched.part.running = False
    watched.part.fail_starts = 1
    watched.sup.check(watched.part)
    assert not watched.part.running
    assert "restart failed: Directus did not start (exit status 1)" in watched.lines[-1]
    watched.clock.now += 1  # BACKOFF[1]
    watched.sup.check(watched.part)
    assert watched.part.running and watched.part.starts == 2


def test_crashes_long_ago_do_not_count(watched):
    for _ in range(supervisor.BURST + 3):
        watched.part.running = False
        watched.sup.check(watched.part)
        watch = watched.sup.watches["directus"]
        if watch.next_try is not None:
            watched.clock.now = watch.next_try
            watched.sup.check(watched.part)
        watched.clock.now += supervisor.WINDOW  # each crash alone in its window
    assert watched.part.running and watched.sup.watches["directus"].given_up is None


# ----- make status ------------------------------------------------------------------------------


def _row(label: str, *, up: bool, **extra: object) -> dict:
    row = {
        "name": label.lower(),
        "label": label,
        "url": "http://127.0.0.1:1",
        "pid": 123 if up else None,
        "up": up,
        "uptime": 75.0 if up else None,
        "health": "/server/ping: pong" if up else "",
        "restarts": 0,
        "last_exit": None,
        "given_up": None,
    }
    row.update(extra)
    return row


def test_status_exits_nonzero_and_says_why_when_a_part_is_down(monkeypatch, capsys):
    from stack import cli

    given_up = "Directus crashed 6 times within 120 s (last: ...); the supervisor gave up on it"
    rows = [
        _row("Directus", up=False, restarts=5, last_exit="killed by SIGKILL", given_up=given_up),
        _row("page server", up=True),
    ]
    status = {"mode": "single", "supervisor": {"pid": 9, "uptime": 3700, "log": "var/x.log"}}
    monkeypatch.setattr(cli.core, "status", lambda: {**status, "parts": rows, "up": False})
    assert cli.print_status() == 3
    out = capsys.readouterr().out
    assert "supervisor pid 9 (up 1h01m)" in out
    assert "Directus     down" in out and "page server  up" in out and "1m15s" in out
    assert f"GIVEN UP: {given_up}" in out
    rows[0] = _row("Directus", up=True, restarts=5)
    monkeypatch.setattr(cli.core, "status", lambda: {**status, "parts": rows, "up": True})
    assert cli.print_status() == 0

"""The cluster stack: PostgreSQL, Redis, two Directus instances and HAProxy, all on 127.0.0.1.

``make up CLUSTER=1`` (``python -m stack up --cluster``) runs it as the local stack: HAProxy on
DIRECTUS_PORT (8055) so that the page and every client work unchanged, the instances on
DIRECTUS_PORT+1 and +2, Redis on +3, PostgreSQL on +4, data under var/cluster/. Tests start
their own ``Cluster`` on ports of their choosing under another folder::

    c = Cluster(root, ClusterPorts(haproxy=8250, instances=(8251, 8252), redis=8253,
                                   postgres=8254), app_port=8000)
    c.start()                  # initdb, Redis, bootstrap, both instances, HAProxy, provision
    c.kill_instance(0)         # SIGKILL instance A (a crash)
    c.redis.stop(); c.redis.start()
    c.postgres.restart()
    c.stop()                   # every process it started, by pid

Why each setting (measured, see README "Running on managed services"): every instance has the
same SECRET (a token made by one is valid on the other) and Redis for the bus, the cache, the
rate limiter and the synchronisation locks; without Redis, events do not cross instances.
``REDIS_HOST``/``REDIS_PORT`` with ``REDIS_MAX_RETRIES_PER_REQUEST=null`` rather than
``REDIS=redis://...``: with ioredis's default of 20 retries per request an outage over about
10.5 s makes every instance exit (MaxRetriesPerRequestError, an unhandled rejection).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import credentials, directus, paths, procs
from .provision import provision

CLUSTER_DIR = paths.VAR / "cluster"
CLUSTER_JSON = CLUSTER_DIR / "cluster.json"  # pids and ports of the running cluster stack
PACKAGES = "postgresql redis-server haproxy"


class ClusterError(RuntimeError):
    pass


def _say_nothing(msg: str) -> None:
    pass


# ----- the Debian binaries ----------------------------------------------------------------


def postgres_bin() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin (Debian's layout)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name)
    )
    if not found:
        raise ClusterError(f"PostgreSQL is not installed (apt-get install -y {PACKAGES})")
    return found[-1].parent


def _which(name: str) -> str:
    found = shutil.which(name) or next(
        (str(d / name) for d in (Path("/usr/sbin"), Path("/usr/bin")) if (d / name).exists()),
        None,
    )
    if not found:
        raise ClusterError(f"{name} is not installed (apt-get install -y {PACKAGES})")
    return found


def installed() -> bool:
    """True when PostgreSQL, Redis and HAProxy are all there."""
    try:
        postgres_bin(), _which("redis-server"), _which("haproxy")
    except ClusterError:
        return False
    return True


def _is_root() -> bool:
    return os.geteuid() == 0


# ----- PostgreSQL ---------------------------------------------------------------------------


class Postgres:
    """A PostgreSQL of its own: ``dir`` holds the data folder, the socket and the log, and
    belongs to the postgres user when we are root (PostgreSQL refuses to run as root)."""

    DATABASE = "directus"
    USER = "directus"

    def __init__(self, dir: Path, port: int) -> None:
        self.dir = Path(dir).resolve()
        self.port = port
        self.data = self.dir / "data"
        self.log_file = self.dir / "postgres.log"
        self._password_file = self.dir.parent / "postgres-passwords.json"

    def _as_postgres(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if _is_root() else argv

    def _run(self, argv: list[str], *, timeout: float = 120.0, **kw: Any) -> str:
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            **kw,
        )
        if result.returncode != 0:
            raise ClusterError(
                f"{' '.join(argv[:6])}… failed (exit {result.returncode}):\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}\n"
                f"log {self.log_file}:\n{procs.log_tail(self.log_file)}"
            )
        return result.stdout

    @property
    def passwords(self) -> dict[str, str]:
        """The superuser's and Directus's passwords, made with the cluster and kept beside it."""
        if self._password_file.exists():
            return json.loads(self._password_file.read_text())
        made = {"postgres": secrets.token_urlsafe(18), "directus": secrets.token_urlsafe(18)}
        fd = os.open(self._password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(made, fh)
        return made

    @property
    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def init(self) -> None:
        """initdb: password authentication over TCP, the postgres user alone on the socket."""
        self.dir.mkdir(parents=True, exist_ok=True)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.passwords["postgres"] + "\n")
        if _is_root():
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        os.chmod(self.dir, 0o700)
        os.chmod(pwfile, 0o600)
        try:
            self._run(
                self._as_postgres(
                    [
                        str(postgres_bin() / "initdb"),
                        "-D",
                        str(self.data),
                        "-U",
                        "postgres",
                        "--auth-local=peer",
                        "--auth-host=scram-sha-256",
                        f"--pwfile={pwfile}",
                        "--encoding=UTF8",
                        "--locale=C",
                    ]
                )
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def pid(self) -> int | None:
        """The postmaster's pid (first line of postmaster.pid) while it runs."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if procs.is_alive(pid) else None

    def start(self) -> None:
        if not self.initialised:
            self.init()
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run(
            self._as_postgres(
                [
                    str(postgres_bin() / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            # pg_ctl's postmaster must not die with our session (make up returns).
            start_new_session=True,
        )

    def stop(self, mode: str = "fast") -> None:
        if self.pid() is None:
            return
        self._run(
            self._as_postgres(
                [str(postgres_bin() / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]
            )
        )

    def restart(self) -> None:
        self.stop()
        self.start()

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self._run(
            [
                str(postgres_bin() / "psql"),
                "-h",
                paths.HOST,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-tA",
                "-c",
                sql,
            ],
            env={**os.environ, "PGPASSWORD": self.passwords["postgres"]},
        )

    def ensure_database(self) -> None:
        password = self.passwords["directus"]
        if not self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{self.USER}'").strip():
            self.psql(f"CREATE ROLE {self.USER} LOGIN PASSWORD '{password}'")
        if not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.DATABASE}'").strip():
            self.psql(f"CREATE DATABASE {self.DATABASE} OWNER {self.USER}")

    def env(self) -> dict[str, str]:
        """Directus's DB_* settings for this database."""
        return {
            "DB_CLIENT": "pg",
            "DB_HOST": paths.HOST,
            "DB_PORT": str(self.port),
            "DB_DATABASE": self.DATABASE,
            "DB_USER": self.USER,
            "DB_PASSWORD": self.passwords["directus"],
        }


# ----- Redis --------------------------------------------------------------------------------


class Redis:
    """A redis-server in the foreground (our child, stopped by pid): no persistence, loopback."""

    def __init__(self, dir: Path, port: int) -> None:
        self.dir = Path(dir).resolve()
        self.port = port
        self.log_file = self.dir / "redis.log"
        self.pid: int | None = None

    def start(self, timeout: float = 20.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if procs.port_in_use(self.port):
            raise ClusterError(f"port {self.port} on {paths.HOST} is already in use (Redis)")
        argv = [_which("redis-server"), "--port", str(self.port), "--bind", paths.HOST]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(self.dir)]
        proc = procs.spawn(argv, env=dict(os.environ), cwd=self.dir, log_file=self.log_file)
        self.pid = proc.pid
        if not procs.wait_until(
            lambda: procs.port_in_use(self.port), timeout=timeout, alive=lambda: proc.poll() is None
        ):
            self.stop()
            raise ClusterError(f"Redis did not start; log {self.log_file}:\n" + self.log_tail())

    def stop(self) -> None:
        if self.pid is not None:
            procs.stop_pid(self.pid)
            procs.wait_until(lambda: not procs.port_in_use(self.port), timeout=10.0)
        self.pid = None

    def alive(self) -> bool:
        return self.pid is not None and procs.is_alive(self.pid)

    def log_tail(self) -> str:
        return procs.log_tail(self.log_file)

    def env(self) -> dict[str, str]:
        return {
            "REDIS_ENABLED": "true",
            "REDIS_HOST": paths.HOST,
            "REDIS_PORT": str(self.port),
            # JSON null for ioredis: retry a command for as long as Redis is away instead of
            # failing it after 20 tries, which Directus does not catch (every instance exits).
            "REDIS_MAX_RETRIES_PER_REQUEST": "null",
            "CACHE_STORE": "redis",
            "RATE_LIMITER_STORE": "redis",
            "SYNCHRONIZATION_STORE": "redis",
        }


# ----- a Directus instance ------------------------------------------------------------------


@dataclass
class Instance:
    name: str
    port: int
    log_file: Path
    env: dict[str, str]
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://{paths.HOST}:{self.port}"

    def alive(self) -> bool:
        return self.pid is not None and procs.is_alive(self.pid)

    def spawn(self) -> subprocess.Popen:
        if procs.port_in_use(self.port):
            raise ClusterError(f"port {self.port} on {paths.HOST} is already in use ({self.name})")
        with open(self.log_file, "ab") as log:
            log.write(f"\n--- directus {self.name} start :{self.port} ---\n".encode())
        proc = procs.spawn(
            [str(paths.NODE), str(paths.DIRECTUS_CLI), "start"],
            env=self.env,
            cwd=paths.DIRECTUS_DIR,
            log_file=self.log_file,
        )
        self.pid = proc.pid
        return proc

    def wait_ready(self, timeout: float = 120.0) -> None:
        ok = procs.wait_until(lambda: directus.ready(self.url), timeout=timeout, alive=self.alive)
        if not ok:
            why = "exited" if not self.alive() else f"not answering after {timeout:.0f} s"
            self.stop()
            raise ClusterError(
                f"Directus {self.name} on port {self.port} {why}; log {self.log_file}:\n"
                + procs.log_tail(self.log_file)
            )

    def start(self, timeout: float = 120.0) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def stop(self) -> None:
        if self.pid is not None:
            procs.stop_pid(self.pid, timeout=10.0)

    def kill(self) -> None:
        """SIGKILL (a crash); returns once the process is gone and the port is free."""
        if self.pid is not None:
            procs.kill_pid(self.pid)
            procs.wait_until(lambda: not procs.port_in_use(self.port), timeout=10.0)

    def log_tail(self) -> str:
        return procs.log_tail(self.log_file)


# ----- HAProxy ------------------------------------------------------------------------------

HAPROXY_CFG = """\
# Written by stack/cluster.py. WebSockets need nothing special in mode http: after the upgrade
# the connection is a tunnel, kept open for `timeout tunnel` (longer than Directus's 30 s
# heartbeat). A dead instance is out after 2 failed checks 1 s apart, and its sockets are shut
# at once (on-marked-down shutdown-sessions), so clients reconnect to the survivor.
global
    # 2 descriptors per proxied socket; the default ulimit -n here is 20,000.
    maxconn 8000

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    option redispatch
    retries 3

frontend directus
    bind {host}:{port}
    default_backend instances

backend instances
    balance roundrobin
    option httpchk
    http-check send meth GET uri /server/ping
    http-check expect string pong
    # Which instance answered (also in a WebSocket's upgrade response).
    http-response set-header X-Backend %s
    default-server inter 1s fall 2 rise 2 on-marked-down shutdown-sessions
{servers}
"""


class HAProxy:
    def __init__(self, dir: Path, port: int, backends: list[tuple[str, int]]) -> None:
        self.dir = Path(dir).resolve()
        self.port = port
        self.backends = backends
        self.config = self.dir / "haproxy.cfg"
        self.log_file = self.dir / "haproxy.log"
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://{paths.HOST}:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if procs.port_in_use(self.port):
            raise ClusterError(f"port {self.port} on {paths.HOST} is already in use (HAProxy)")
        servers = "\n".join(
            f"    server {name} {paths.HOST}:{port} check" for name, port in self.backends
        )
        self.config.write_text(HAPROXY_CFG.format(host=paths.HOST, port=self.port, servers=servers))
        proc = procs.spawn(
            [_which("haproxy"), "-db", "-f", str(self.config)],
            env=dict(os.environ),
            cwd=self.dir,
            log_file=self.log_file,
        )
        self.pid = proc.pid
        ok = procs.wait_until(
            lambda: directus.ready(self.url), timeout=timeout, alive=lambda: proc.poll() is None
        )
        if not ok:
            self.stop()
            raise ClusterError(
                f"HAProxy did not start; log {self.log_file}:\n" + procs.log_tail(self.log_file)
            )

    def stop(self) -> None:
        if self.pid is not None:
            procs.stop_pid(self.pid)
        self.pid = None


# ----- the whole cluster --------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterPorts:
    haproxy: int
    instances: tuple[int, int]
    redis: int
    postgres: int

    @classmethod
    def from_base(cls, base: int) -> ClusterPorts:
        """HAProxy on base; instances on base+1, base+2; Redis base+3; PostgreSQL base+4."""
        return cls(base, (base + 1, base + 2), base + 3, base + 4)


class Cluster:
    def __init__(
        self,
        root: Path,
        ports: ClusterPorts,
        *,
        app_port: int,
        extra_env: dict[str, str] | None = None,
        say: Callable[[str], None] = _say_nothing,
    ) -> None:
        self.root = Path(root).resolve()
        self.ports = ports
        self.app_port = app_port
        self.extra_env = dict(extra_env or {})
        self.say = say
        self.postgres = Postgres(self.root / "postgres", ports.postgres)
        self.redis = Redis(self.root / "redis", ports.redis)
        self.instances = [
            Instance(name, port, self.root / f"directus-{name}.log", {})
            for name, port in zip(("a", "b"), ports.instances, strict=True)
        ]
        self.haproxy = HAProxy(
            self.root / "haproxy", ports.haproxy, [(i.name, i.port) for i in self.instances]
        )

    @property
    def url(self) -> str:
        """HAProxy's URL: where clients connect."""
        return self.haproxy.url

    def instance_env(self, port: int) -> dict[str, str]:
        data = self.root / "directus"
        for sub in ("uploads", "extensions"):
            (data / sub).mkdir(parents=True, exist_ok=True)
        env = directus.directus_env(
            port, data / "unused.db", self.extra_env, app_port=self.app_port
        )
        env.pop("DB_FILENAME", None)
        env.update(self.postgres.env())
        env.update(self.redis.env())
        # Links Directus makes (e.g. in e-mails) point at the load balancer, not at one instance.
        env["PUBLIC_URL"] = self.haproxy.url
        env.update(self.extra_env)
        return env

    def _bootstrap(self) -> None:
        marker = self.root / "directus" / "bootstrapped"
        if marker.exists():
            return
        log_file = self.instances[0].log_file
        env = self.instance_env(0)
        with open(log_file, "ab") as log:
            log.write(b"\n--- directus bootstrap (PostgreSQL) ---\n")
            log.flush()
            result = subprocess.run(
                [str(paths.NODE), str(paths.DIRECTUS_CLI), "bootstrap"],
                env=env,
                cwd=str(paths.DIRECTUS_DIR),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=300,
            )
        if result.returncode != 0:
            raise ClusterError(
                f"directus bootstrap on PostgreSQL failed (exit {result.returncode}); "
                f"log {log_file}:\n" + procs.log_tail(log_file)
            )
        marker.write_text("ok\n")

    def start(self) -> None:
        """Everything, in order; on failure whatever started is stopped again."""
        if not paths.DIRECTUS_CLI.exists():
            raise ClusterError(f"{paths.DIRECTUS_CLI} is missing: run `make setup` first")
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            t0 = time.monotonic()
            self.say(f"starting PostgreSQL on :{self.ports.postgres} ({self.postgres.dir})…")
            self.postgres.start()
            self.postgres.ensure_database()
            self.say(f"starting Redis on :{self.ports.redis}…")
            self.redis.start()
            self.say("bootstrapping Directus on PostgreSQL (first time only)…")
            self._bootstrap()
            self.start_instances()
            self.say(f"starting HAProxy on :{self.ports.haproxy}…")
            self.haproxy.start()
            changes = provision(self.instances[0].url, credentials.load())
            for change in changes:
                self.say(f"  provision: {change}")
            self.say(f"the cluster is up ({time.monotonic() - t0:.1f} s)")
        except BaseException:
            self.stop()
            raise

    def start_instances(self) -> None:
        for instance in self.instances:
            instance.env = self.instance_env(instance.port)
            self.say(f"starting Directus {instance.name} on {instance.url}…")
            instance.spawn()
        # Both start at once (5-7 s each); wait for both.
        with concurrent.futures.ThreadPoolExecutor(len(self.instances)) as pool:
            for future in [pool.submit(i.wait_ready) for i in self.instances]:
                future.result()

    def kill_instance(self, index: int) -> float:
        """SIGKILL one instance; returns the time.time() of the kill."""
        at = time.time()
        self.instances[index].kill()
        return at

    def heal(self, timeout: float = 30.0) -> None:
        """Start again whatever is down (after a fault), and return once HAProxy routes to
        every instance (its health check: 2 checks 1 s apart)."""
        if self.postgres.pid() is None:
            self.postgres.start()
        if not self.redis.alive():
            self.redis.start()
        dead = [i for i in self.instances if not i.alive()]
        for instance in dead:
            instance.spawn()
        for instance in dead:
            instance.wait_ready()
        if dead:
            time.sleep(2.5)  # HAProxy's `rise 2` with `inter 1s`: back in rotation

    def instance_by_name(self, name: str) -> Instance:
        return next(i for i in self.instances if i.name == name)

    def stop(self) -> None:
        """Every process this object started, by pid; PostgreSQL by pg_ctl (its postmaster)."""
        errors = []
        for step in (
            self.haproxy.stop,
            *(i.stop for i in self.instances),
            self.redis.stop,
            self.postgres.stop,
        ):
            try:
                step()
            except Exception as err:  # stop the rest anyway
                errors.append(err)
        if errors:
            raise ClusterError(f"stopping the cluster: {errors}")

    def pids(self) -> dict[str, Any]:
        return {
            "haproxy": self.haproxy.pid,
            "instances": [i.pid for i in self.instances],
            "redis": self.redis.pid,
            "postgres": self.postgres.pid(),
        }

    def info(self) -> dict[str, Any]:
        """The cluster's part of var/stack.json."""
        return {
            "mode": "cluster",
            "directus_url": self.url,
            "ws_url": f"ws://{paths.HOST}:{self.ports.haproxy}/websocket",
            "instances": [{"url": i.url, "pid": i.pid} for i in self.instances],
            "haproxy": {"url": self.url, "pid": self.haproxy.pid},
            "redis": {"port": self.ports.redis, "pid": self.redis.pid},
            "postgres": {"port": self.ports.postgres, "pid": self.postgres.pid()},
        }


# ----- the cluster as the local stack (make up CLUSTER=1) -----------------------------------


def _stack_cluster() -> Cluster:
    return Cluster(
        CLUSTER_DIR,
        ClusterPorts.from_base(paths.directus_port()),
        app_port=paths.app_port(),
        say=lambda m: print(m, flush=True),
    )


def _read_state() -> dict[str, Any] | None:
    try:
        return json.loads(CLUSTER_JSON.read_text())
    except (OSError, ValueError):
        return None


def running() -> bool:
    """True when the cluster stack (var/cluster/cluster.json) has a live process."""
    state = _read_state()
    if not state:
        return False
    pids = [state.get("haproxy"), state.get("redis"), *state.get("instances", [])]
    return any(pid and procs.is_alive(pid) for pid in pids) or bool(
        state.get("postgres_data") and (Path(state["postgres_data"]) / "postmaster.pid").exists()
    )


def _start_page_server(app_port: int) -> int:
    url = f"http://{paths.HOST}:{app_port}/"
    if procs.port_in_use(app_port):
        raise ClusterError(f"port {app_port} on {paths.HOST} is already in use")
    print(f"starting the page server on {url} (log {paths.APP_LOG})…", flush=True)
    proc = procs.spawn(
        [paths.python(), "-m", "stack", "serve", "--port", str(app_port)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=paths.ROOT,
        log_file=paths.APP_LOG,
    )
    if not procs.wait_until(
        lambda: procs.http_status(url) is not None, timeout=60, alive=lambda: proc.poll() is None
    ):
        procs.stop_pid(proc.pid)
        raise ClusterError(f"the page server did not start; log {paths.APP_LOG}")
    procs.write_pid(paths.APP_PID, proc.pid)
    return proc.pid


def up() -> dict[str, Any]:
    """Start the cluster stack and the page server in the background; write var/stack.json."""
    from . import core

    if core.status()["directus_pid"]:
        raise ClusterError("the single-instance stack is running: `make down` first")
    if running():
        raise ClusterError("the cluster is already running (`make down` stops it)")
    cluster = _stack_cluster()
    cluster.start()
    CLUSTER_JSON.write_text(
        json.dumps({**cluster.pids(), "postgres_data": str(cluster.postgres.data)}) + "\n"
    )
    try:
        info = core._make_info(cluster.ports.haproxy, paths.app_port())
        info.pop("db_file", None)
        info.update(cluster.info())
        core._write_info(info)
        if not core.status()["app_answers"]:
            _start_page_server(paths.app_port())
    except BaseException:
        down()
        raise
    return info


def down(quiet: bool = True) -> bool:
    """Stop the cluster stack by the pids in var/cluster/cluster.json. True when it ran."""
    state = _read_state()
    if not state:
        return False
    say = _say_nothing if quiet else (lambda m: print(m, flush=True))
    for name, pid, marker in [
        ("HAProxy", state.get("haproxy"), "haproxy"),
        *[
            (f"Directus {n}", p, "directus/cli.js")
            for n, p in zip("ab", state["instances"], strict=True)
        ],
        ("Redis", state.get("redis"), "redis-server"),
    ]:
        if pid and procs.is_alive(pid) and any(marker in a for a in procs.cmdline(pid)):
            say(f"stopping {name} (pid {pid})…")
            procs.stop_pid(pid, timeout=10.0)
    postgres = Postgres(Path(state["postgres_data"]).parent, 0)
    if postgres.pid():
        say(f"stopping PostgreSQL (pid {postgres.pid()})…")
        postgres.stop()
    CLUSTER_JSON.unlink(missing_ok=True)
    return True


def run() -> int:
    """Foreground: up, print the URLs, wait for Ctrl-C/SIGTERM, stop everything."""
    from . import core

    stop_event = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop_event.set())
    info = up()
    try:
        print_info(info)
        print("Ctrl-C stops the cluster and the page server.", flush=True)
        while not stop_event.wait(1.0):
            dead = [i["url"] for i in info["instances"] if not procs.is_alive(i["pid"])]
            if dead:
                print(f"Directus at {', '.join(dead)} exited; see var/cluster/*.log", flush=True)
                return 1
    finally:
        print("stopping…", flush=True)
        core.down()
        down(quiet=False)
        print("stopped.", flush=True)
    return 0


def print_info(info: dict[str, Any]) -> None:
    print("")
    print(f"  open      {info['app_url']}")
    print(
        f"  Directus  {info['directus_url']}  (HAProxy; admin: {info['admin_email']} / "
        f"{info['admin_password']})"
    )
    for name, instance in zip("AB", info["instances"], strict=True):
        print(f"  instance  {name} {instance['url']}  pid {instance['pid']}")
    print(f"  Redis     :{info['redis']['port']}  PostgreSQL :{info['postgres']['port']}")
    print(f"  token     {info['token']}")
    print("", flush=True)


def print_status() -> int:
    state = _read_state()
    if not state:
        print("cluster      down")
        return 3
    base = paths.directus_port()
    ports = ClusterPorts.from_base(base)
    print(
        f"HAProxy      {'up' if directus.ready(f'http://{paths.HOST}:{base}') else 'down':14}"
        f" http://{paths.HOST}:{base}  pid {state.get('haproxy')}"
    )
    for name, port, pid in zip("AB", ports.instances, state["instances"], strict=True):
        ok = directus.ready(f"http://{paths.HOST}:{port}")
        print(
            f"Directus {name}   {'up' if ok else 'down':14} http://{paths.HOST}:{port}  pid {pid}"
        )
    print(f"Redis        {'up' if procs.port_in_use(ports.redis) else 'down':14} :{ports.redis}")
    print(
        f"PostgreSQL   {'up' if procs.port_in_use(ports.postgres) else 'down':14} :{ports.postgres}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(print_status())

"""The cluster: PostgreSQL, Redis, two Directus instances and HAProxy, all on 127.0.0.1.

``make up CLUSTER=1`` runs one as the local stack (stack/core.py): HAProxy on DIRECTUS_PORT
(8055) so that the page and every client work unchanged, the instances on DIRECTUS_PORT+1 and
+2, Redis on +3, PostgreSQL on +4, data under var/cluster/. Tests start their own ``Cluster`` on
ports of their choosing under another folder::

    c = Cluster(root, ClusterPorts(haproxy=8250, instances=(8251, 8252), redis=8253,
                                   postgres=8254), app_port=8000)
    c.start()                  # initdb, Redis, bootstrap, both instances, HAProxy, provision
    c.kill_instance(0)         # SIGKILL instance A (a crash)
    c.redis.stop(); c.redis.start()
    c.postgres.restart()
    c.heal()                   # start again whatever is down
    c.stop()                   # every process it started, by pid
    c.remove()                 # its folders, PostgreSQL's included

Every process is a ``stack.parts.Part``, started, checked and stopped as the single-instance
stack's are.

Why each setting (measured, see docs/operations.md): every instance has the same SECRET (a
token made by one is valid on the other) and Redis for the bus, the cache, the rate limiter and
the synchronisation locks; without Redis, events do not cross instances. ``REDIS_HOST``/
``REDIS_PORT`` with ``REDIS_MAX_RETRIES_PER_REQUEST=null`` rather than ``REDIS=redis://...``:
with ioredis's default of 20 retries per request an outage over about 10.5 s makes every
instance exit (MaxRetriesPerRequestError, an unhandled rejection).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import credentials, directus, parts, paths, procs
from .parts import Part, Say, StackError, say_nothing
from .provision import provision

PACKAGES = "postgresql redis-server haproxy"
# Where PostgreSQL's folders go when we are root: PostgreSQL runs as the postgres user, who
# cannot enter a checkout in a private (mode 700) folder.
POSTGRES_HOME = Path("/var/tmp/directus-realtime-postgres")


class ClusterError(StackError):
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


def postgres_dir(wanted: Path) -> Path:
    """Where PostgreSQL's folder for ``wanted`` really is: ``wanted`` itself, or, when we are
    root, a folder of the postgres user under POSTGRES_HOME named after ``wanted``'s path
    (so the same checkout finds its data again)."""
    wanted = Path(os.path.abspath(wanted))  # not resolve(): it may be our symlink already
    if not _is_root():
        return wanted
    digest = hashlib.sha256(str(wanted).encode()).hexdigest()[:16]
    return POSTGRES_HOME / f"{wanted.parent.name}-{digest}"


# ----- PostgreSQL ---------------------------------------------------------------------------


class Postgres(Part):
    """A PostgreSQL of its own, the postmaster in the foreground (our child). Its folder
    (data, socket, log, passwords) belongs to the postgres user when we are root."""

    DATABASE = "directus"
    USER = "directus"
    marker = ("postgres", "-D")
    # SIGTERM is a "smart" shutdown, which waits for every client (Directus's pool) to leave.
    stop_signal = signal.SIGINT
    user = "postgres"
    ready_timeout = 60.0

    def __init__(self, dir: Path, port: int, *, pid_file: Path | None = None) -> None:
        self.wanted = Path(os.path.abspath(dir))
        self.dir = postgres_dir(self.wanted)
        self.data = self.dir / "data"
        pid_file = pid_file or self.wanted.parent / "postgres.pid"
        super().__init__(
            "postgres",
            "PostgreSQL",
            port=port,
            pid_file=pid_file,
            log_file=self.dir / "postgres.log",
        )
        self._password_file = self.dir / "passwords.json"

    @property
    def url(self) -> str:
        return f"postgresql://{paths.HOST}:{self.port}"

    def _run(self, argv: list[str], *, timeout: float = 120.0, **kw: Any) -> str:
        if _is_root() and argv[0].endswith("/initdb"):
            argv = ["runuser", "-u", "postgres", "--", *argv]
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(self.dir),  # the postgres user may not enter the caller's folder
            **kw,
        )
        if result.returncode != 0:
            raise ClusterError(
                f"{' '.join(argv[:6])}… failed (exit {result.returncode}):\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}\n"
                f"log {self.log_file}:\n{procs.log_tail(self.log_file)}"
            )
        return result.stdout

    def _make_dir(self) -> None:
        if _is_root():
            POSTGRES_HOME.mkdir(mode=0o711, exist_ok=True)
            os.chmod(POSTGRES_HOME, 0o711)
        self.dir.mkdir(parents=True, exist_ok=True)
        if _is_root():
            shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)
        if self.dir != self.wanted:
            # A pointer from where the data would be to where it is.
            self.wanted.parent.mkdir(parents=True, exist_ok=True)
            if not self.wanted.is_symlink():
                if self.wanted.exists():
                    shutil.rmtree(self.wanted, ignore_errors=True)
                self.wanted.symlink_to(self.dir)

    @property
    def passwords(self) -> dict[str, str]:
        """The superuser's and Directus's passwords, made with the data and kept beside it."""
        if self._password_file.exists():
            return json.loads(self._password_file.read_text())
        made = {"postgres": secrets.token_urlsafe(18), "directus": secrets.token_urlsafe(18)}
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(made, fh)
        return made

    @property
    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def init(self) -> None:
        """initdb: password authentication over TCP, the postgres user alone on the socket."""
        self._make_dir()
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.passwords["postgres"] + "\n")
        if _is_root():
            shutil.chown(pwfile, "postgres", "postgres")
        os.chmod(pwfile, 0o600)
        try:
            self._run(
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
        finally:
            pwfile.unlink(missing_ok=True)

    def prepare(self, say: Say) -> None:
        if not self.initialised:
            say(f"initialising PostgreSQL's data in {self.data}…")
            self.init()
        self._make_dir()
        # A postmaster killed when its parent had gone can stay a zombie for a while; PostgreSQL
        # takes a zombie's pid in its lock files for a live postmaster and refuses to start.
        for lock in (self.data / "postmaster.pid", self.dir / f".s.PGSQL.{self.port}.lock"):
            try:
                other = int(lock.read_text().split("\n", 1)[0])
            except (OSError, ValueError):
                continue
            if not procs.is_alive(other):
                lock.unlink(missing_ok=True)

    def cwd(self) -> Path:
        return self.dir

    def command(self) -> list[str]:
        return [
            str(postgres_bin() / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-k",
            str(self.dir),
            "-c",
            f"listen_addresses={paths.HOST}",
        ]

    def environment(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}

    def ready(self) -> bool:
        try:
            result = subprocess.run(
                [str(postgres_bin() / "pg_isready"), "-q", "-h", paths.HOST, "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=5,
                cwd="/",
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return result.returncode == 0

    def health(self) -> tuple[bool, str]:
        ok = self.ready()
        return ok, "a connection: accepted" if ok else "a connection: refused"

    def after_start(self, say: Say) -> None:
        self.ensure_database()

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

    def remove(self) -> None:
        """Delete its folder (it must be stopped)."""
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.wanted.is_symlink():
            self.wanted.unlink()


# ----- Redis --------------------------------------------------------------------------------


class _InFolder(Part):
    """A part with a folder of its own (``dir``: its log, data, configuration); its pid file
    is beside the folder."""

    def __init__(self, name: str, label: str, dir: Path, port: int) -> None:
        self.dir = Path(dir).resolve()
        super().__init__(
            name,
            label,
            port=port,
            pid_file=self.dir.parent / f"{name}.pid",
            log_file=self.dir / f"{name}.log",
        )


class Redis(_InFolder):
    """A redis-server in the foreground (our child): no persistence, loopback only."""

    marker = ("redis-server",)
    ready_timeout = 20.0

    def __init__(self, dir: Path, port: int) -> None:
        super().__init__("redis", "Redis", dir, port)

    @property
    def url(self) -> str:
        return f"redis://{paths.HOST}:{self.port}"

    def command(self) -> list[str]:
        self.dir.mkdir(parents=True, exist_ok=True)
        argv = [_which("redis-server"), "--port", str(self.port), "--bind", paths.HOST]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        return argv + ["--dir", str(self.dir)]

    def ping(self) -> str | None:
        """Redis's answer to PING ("PONG"), or None."""
        try:
            with socket.create_connection((paths.HOST, self.port), timeout=2.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).decode(errors="replace").strip().lstrip("+-") or None
        except OSError:
            return None

    def ready(self) -> bool:
        return self.ping() == "PONG"

    def health(self) -> tuple[bool, str]:
        answer = self.ping()
        return answer == "PONG", f"PING: {answer or 'no answer'}"

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


class HAProxy(_InFolder):
    """HAProxy in the foreground (-db), in front of the instances."""

    marker = ("haproxy",)
    ready_timeout = 30.0

    def __init__(self, dir: Path, port: int, backends: list[tuple[str, int]]) -> None:
        super().__init__("haproxy", "HAProxy", dir, port)
        self.backends = backends
        self.config = self.dir / "haproxy.cfg"

    def prepare(self, say: Say) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(
            f"    server {name} {paths.HOST}:{port} check" for name, port in self.backends
        )
        self.config.write_text(HAPROXY_CFG.format(host=paths.HOST, port=self.port, servers=servers))

    def command(self) -> list[str]:
        return [_which("haproxy"), "-db", "-f", str(self.config)]

    def ready(self) -> bool:
        # Through to an instance: HAProxy routes only once a backend passed its checks.
        return directus.ready(self.url)

    def health(self) -> tuple[bool, str]:
        ok = self.ready()
        return ok, "/server/ping through it: pong" if ok else "/server/ping through it: no answer"


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
    """The cluster's parts in start order (``parts``), under ``root``; ``extra_env`` (a dict,
    or a function giving one at each start) goes to every instance over the defaults."""

    def __init__(
        self,
        root: Path,
        ports: ClusterPorts,
        *,
        app_port: int,
        extra_env: dict[str, str] | Callable[[], dict[str, str]] | None = None,
        say: Say = say_nothing,
    ) -> None:
        self.root = Path(root).resolve()
        self.ports = ports
        self.app_port = app_port
        self._extra_env = extra_env
        self.say = say
        self.postgres = Postgres(self.root / "postgres", ports.postgres)
        self.redis = Redis(self.root / "redis", ports.redis)
        self.instances = [
            directus.DirectusPart(
                name,
                f"Directus {name.upper()}",
                port=port,
                pid_file=self.root / f"directus-{name}.pid",
                log_file=self.root / f"directus-{name}.log",
                environment=lambda port=port: self.instance_env(port),
                prepare=self._bootstrap,
                group="directus",
            )
            for name, port in zip(("a", "b"), ports.instances, strict=True)
        ]
        self.haproxy = HAProxy(
            self.root / "haproxy",
            ports.haproxy,
            [(name, i.port) for name, i in zip("ab", self.instances, strict=True)],
        )

    @property
    def parts(self) -> list[Part]:
        return [self.postgres, self.redis, *self.instances, self.haproxy]

    @property
    def url(self) -> str:
        """HAProxy's URL: where clients connect."""
        return self.haproxy.url

    def extra_env(self) -> dict[str, str]:
        extra = self._extra_env() if callable(self._extra_env) else self._extra_env
        return dict(extra or {})

    def instance_env(self, port: int) -> dict[str, str]:
        data = self.root / "directus"
        for sub in ("uploads", "extensions"):
            (data / sub).mkdir(parents=True, exist_ok=True)
        extra = self.extra_env()
        env = directus.directus_env(port, data / "unused.db", app_port=self.app_port)
        env.pop("DB_FILENAME", None)
        env.update(self.postgres.env())
        env.update(self.redis.env())
        # Links Directus makes (e.g. in e-mails) point at the load balancer, not at one instance.
        env["PUBLIC_URL"] = self.haproxy.url
        env.update(extra)
        return env

    def _bootstrap(self, say: Say) -> None:
        """``directus bootstrap`` on PostgreSQL, once (both instances call it; one does it)."""
        marker = self.root / "directus" / "bootstrapped"
        if marker.exists():
            return
        log_file = self.instances[0].log_file
        env = self.instance_env(self.instances[0].port)
        lock = self.root / "directus" / "bootstrap.lock"
        with open(lock, "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            if marker.exists():
                return
            say("bootstrapping Directus on PostgreSQL (first time only)…")
            directus.run_bootstrap(env, log_file, "on PostgreSQL")
            marker.write_text("ok\n")

    def start(self) -> None:
        """Everything, in order, then provisioning; on failure whatever started is stopped."""
        if not paths.DIRECTUS_CLI.exists():
            raise ClusterError(f"{paths.DIRECTUS_CLI} is missing: run `make setup` first")
        self.root.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        started: list[Part] = []
        try:
            parts.ensure(self.parts, self.say, started=started)
            for change in provision(self.instances[0].url, credentials.load()):
                self.say(f"  provision: {change}")
        except BaseException:
            parts.stop(started)
            raise
        self.say(f"the cluster is up ({time.monotonic() - t0:.1f} s)")

    def kill_instance(self, index: int) -> float:
        """SIGKILL one instance; returns the time.time() of the kill."""
        at = time.time()
        self.instances[index].kill()
        procs.wait_until(lambda: not procs.port_in_use(self.instances[index].port), timeout=10)
        return at

    def heal(self, timeout: float = 30.0) -> None:
        """Start again whatever is down (after a fault), and return once HAProxy routes to
        every instance (its health check: 2 checks 1 s apart)."""
        started = parts.ensure(self.parts, self.say)
        if any(p in self.instances for p in started):
            time.sleep(2.5)  # HAProxy's `rise 2` with `inter 1s`: back in rotation

    def stop(self) -> None:
        """Every process of the cluster, by pid, last started first."""
        parts.stop(self.parts)

    def remove(self) -> None:
        """Delete its folders (PostgreSQL's too, wherever it is); stop it first."""
        self.postgres.remove()
        shutil.rmtree(self.root, ignore_errors=True)

    def pids(self) -> dict[str, Any]:
        return {
            "haproxy": self.haproxy.pid(),
            "instances": [i.pid() for i in self.instances],
            "redis": self.redis.pid(),
            "postgres": self.postgres.pid(),
        }

    def info(self) -> dict[str, Any]:
        """The cluster's part of var/stack.json."""
        return {
            "mode": "cluster",
            "directus_url": self.url,
            "ws_url": f"ws://{paths.HOST}:{self.ports.haproxy}/websocket",
            "instances": [{"url": i.url, "pid": i.pid()} for i in self.instances],
            "haproxy": {"url": self.url, "pid": self.haproxy.pid()},
            "redis": {"port": self.ports.redis, "pid": self.redis.pid()},
            "postgres": {
                "port": self.ports.postgres,
                "pid": self.postgres.pid(),
                "data": str(self.postgres.data),
            },
        }

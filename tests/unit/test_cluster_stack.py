"""Unit tests of stack/cluster.py's settings (no process is started): each Directus instance's
environment, HAProxy's configuration, the ports."""

import pytest

from stack import cluster, credentials

SECRETS = {
    "secret": "S3CRET",
    "admin_email": "admin@example.com",
    "admin_password": "pw",
}


@pytest.fixture(autouse=True)
def no_postgres_files(monkeypatch):
    """PostgreSQL's passwords without making its folder (outside the checkout when root)."""
    monkeypatch.setattr(
        cluster.Postgres, "passwords", property(lambda self: {"postgres": "p", "directus": "d"})
    )


@pytest.fixture
def made(tmp_path, monkeypatch):
    monkeypatch.setattr(credentials, "load", lambda *a, **k: dict(SECRETS))
    ports = cluster.ClusterPorts.from_base(9100)
    return cluster.Cluster(tmp_path / "c", ports, app_port=9000)


def test_ports_from_base():
    ports = cluster.ClusterPorts.from_base(8055)
    assert (ports.haproxy, ports.instances, ports.redis, ports.postgres) == (
        8055,
        (8056, 8057),
        8058,
        8059,
    )


def test_every_instance_shares_the_secret_the_database_and_redis(made):
    a, b = (made.instance_env(port) for port in (9101, 9102))
    for env, port in ((a, 9101), (b, 9102)):
        assert env["PORT"] == str(port)
        assert env["SECRET"] == "S3CRET"
        assert env["DB_CLIENT"] == "pg" and "DB_FILENAME" not in env
        assert env["DB_PORT"] == "9104" and env["DB_HOST"] == "127.0.0.1"
        assert env["REDIS_HOST"] == "127.0.0.1" and env["REDIS_PORT"] == "9103"
        # ioredis's default (20 retries, then an unhandled rejection) makes Directus exit
        # during a Redis outage over ~10.5 s
        assert env["REDIS_MAX_RETRIES_PER_REQUEST"] == "null"
        assert "REDIS" not in env
        for store in ("CACHE_STORE", "RATE_LIMITER_STORE", "SYNCHRONIZATION_STORE"):
            assert env[store] == "redis"
        assert env["WEBSOCKETS_ENABLED"] == "true"
        assert env["PUBLIC_URL"] == "http://127.0.0.1:9100"  # HAProxy
        assert env["CORS_ENABLED"] == "true"
        assert "http://127.0.0.1:9000" in env["CORS_ORIGIN"].split(",")
        assert env["HOST"] == "127.0.0.1"
    assert a["DB_PASSWORD"] == b["DB_PASSWORD"] != ""


def test_extra_env_wins(tmp_path, monkeypatch):
    monkeypatch.setattr(credentials, "load", lambda *a, **k: dict(SECRETS))
    c = cluster.Cluster(
        tmp_path,
        cluster.ClusterPorts.from_base(9200),
        app_port=9000,
        extra_env={"WEBSOCKETS_HEARTBEAT_PERIOD": "2", "PUBLIC_URL": "https://x"},
    )
    env = c.instance_env(9201)
    assert env["WEBSOCKETS_HEARTBEAT_PERIOD"] == "2" and env["PUBLIC_URL"] == "https://x"


def test_haproxy_config_checks_ping_and_moves_sockets_off_a_dead_instance():
    text = cluster.HAPROXY_CFG.format(
        host="127.0.0.1", port=9100, servers="    server a 127.0.0.1:9101 check"
    )
    assert "bind 127.0.0.1:9100" in text
    assert "http-check send meth GET uri /server/ping" in text
    assert "http-check expect string pong" in text
    assert "on-marked-down shutdown-sessions" in text
    assert "timeout tunnel 1h" in text  # over Directus's 30 s heartbeat
    assert "X-Backend %s" in text

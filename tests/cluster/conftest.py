"""Fixtures of the cluster tests (tests/cluster/test_cluster.py, test_operations.py).

- ``cluster`` (session): a ``stack.cluster.Cluster`` of this session's own (PostgreSQL, Redis,
  two Directus instances, HAProxy) on free ports of 8300-8349, data under
  var/test-cluster-<port>/ (PostgreSQL's where its user can reach it), CORS for the local
  stack's page server (whose pages the tests open with ``?url=<instance or HAProxy>&token=…``).
  Every process it started is stopped at the end, by pid, and its folders removed. The local
  stack (8055/8000) keeps running beside it.
  Skipped when PostgreSQL, Redis or HAProxy is not installed (``make test`` installs them).
- ``healthy`` (function): the cluster, with whatever an earlier test broke started again.
- The browser, the background loop, the pages, the steady writer and the counting helpers are
  tests/faults/conftest.py's (imported by path: that folder is not a package).
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stack import cluster as cluster_stack
from stack import paths
from tests.pools import reserve_port

PORTS = range(8300, 8350)


def _faults_conftest() -> Any:
    path = Path(__file__).parent.parent / "faults" / "conftest.py"
    spec = importlib.util.spec_from_file_location("faults_conftest_for_cluster", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


faults = _faults_conftest()
loop = faults.loop
browser = faults.browser
open_page = faults.open_page
writers = faults.writers
kit = faults.kit


@pytest.fixture(scope="session")
def cluster(stack: dict[str, Any]) -> Iterator[cluster_stack.Cluster]:
    if not cluster_stack.installed():
        pytest.skip(
            f"the cluster needs Debian's {cluster_stack.PACKAGES} (make test installs them)"
        )
    haproxy = reserve_port(PORTS)
    ports = cluster_stack.ClusterPorts(
        haproxy,
        (reserve_port(PORTS), reserve_port(PORTS)),
        reserve_port(PORTS),
        reserve_port(PORTS),
    )
    c = cluster_stack.Cluster(
        paths.VAR / f"test-cluster-{haproxy}",
        ports,
        app_port=int(stack["app_port"]),
        say=lambda m: print(f"[cluster] {m}", flush=True),
    )
    c.remove()  # what an earlier session may have left
    try:
        t0 = time.monotonic()
        c.start()
        print(f"\n[cluster] up in {time.monotonic() - t0:.1f} s: {c.info()}", flush=True)
        yield c
    finally:
        c.stop()
        c.remove()


@pytest.fixture
def healthy(cluster: cluster_stack.Cluster, request: pytest.FixtureRequest) -> Any:
    cluster.heal()
    for instance in cluster.instances:
        faults.report_on_failure(
            request.node, f"log of Directus {instance.name}", instance.log_tail
        )
    faults.report_on_failure(request.node, "log of Redis", cluster.redis.log_tail)
    return cluster

"""Extra Directus instances for a test session (tests/integration and tests/faults).

Starting one takes about 10 s, so a pool starts every instance the collected tests need at
once, in the background, and each is ready when its module comes; a module-scoped fixture
(``extra_directus_fixture``) hands it over and stops it when the module is done. Their ports
(and the fault proxies') come from ``reserve_port``.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

import pytest

from stack import procs

T = TypeVar("T")

_reserved: set[int] = set()
_reserve_lock = threading.Lock()


def reserve_port(ports: range) -> int:
    """A port of ``ports`` that is free and that nothing else in this session reserved; safe to
    call from the pool's worker threads."""
    with _reserve_lock:
        for port in ports:
            if port not in _reserved and not procs.port_in_use(port):
                _reserved.add(port)
                return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


def reserve_block(ports: range, count: int) -> int:
    """The first of ``count`` consecutive ports of ``ports`` that are all free and reserved by
    nobody else in this session (e.g. a cluster's HAProxy, instances, Redis and PostgreSQL)."""
    with _reserve_lock:
        for base in range(ports.start, ports.stop - count + 1):
            block = range(base, base + count)
            if all(p not in _reserved and not procs.port_in_use(p) for p in block):
                _reserved.update(block)
                return base
    raise RuntimeError(f"no {count} free consecutive ports in {ports.start}-{ports.stop - 1}")


class InstancePool(Generic[T]):
    """``plan(name)`` runs in the caller's thread (for what is not thread-safe, e.g. reserving
    a port) and returns what starts the instance in a worker thread. That must stop the instance
    itself when its start fails; every instance has ``stop()``."""

    def __init__(self, plan: Callable[[str], Callable[[], T]], size: int) -> None:
        self._plan = plan
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, size))
        self._futures: dict[str, concurrent.futures.Future[T]] = {}

    def start(self, name: str) -> None:
        if name not in self._futures:
            self._futures[name] = self._executor.submit(self._plan(name))

    def take(self, name: str) -> T:
        self.start(name)
        return self._futures[name].result(timeout=240)

    def release(self, name: str) -> None:
        """Stop the instance; a later ``take`` of the same name (another module) starts a new
        one."""
        future = self._futures.pop(name, None)
        if future is not None and future.done() and future.exception() is None:
            future.result().stop()  # type: ignore[attr-defined]

    def close(self) -> None:
        self._executor.shutdown(wait=True)  # a start under way finishes, then it is stopped
        for name in list(self._futures):
            self.release(name)


def needed(request: pytest.FixtureRequest, names: Iterable[str]) -> set[str]:
    """Which of ``names`` the tests of this session use as fixtures."""
    used = {name for item in request.session.items for name in item.fixturenames}
    return used & set(names)


def running_pool(
    request: pytest.FixtureRequest, pool: InstancePool[Any], names: Iterable[str]
) -> Iterator[InstancePool[Any]]:
    """The body of a session fixture: start what the session needs, stop it all at the end."""
    for name in sorted(needed(request, names)):
        pool.start(name)
    try:
        yield pool
    finally:
        pool.close()


def instance_fixture(name: str, pool_fixture: str, doc: str) -> Any:
    """A module-scoped fixture ``name``: the instance from the pool, stopped after the module."""

    @pytest.fixture(scope="module", name=name)
    def fixture(request: pytest.FixtureRequest) -> Iterator[Any]:
        pool = request.getfixturevalue(pool_fixture)
        try:
            yield pool.take(name)
        finally:
            pool.release(name)

    fixture.__doc__ = doc
    return fixture


def extra_directus_fixture(name: str, pool_fixture: str, envs: Mapping[str, Any]) -> Any:
    """The module-scoped fixture ``name``: the Directus with environment ``envs[name]`` on a
    copy of the main database, from the pool of the session fixture ``pool_fixture``."""
    doc = f"A Directus with {envs[name]} on a copy of the main database."
    return instance_fixture(name, pool_fixture, doc)

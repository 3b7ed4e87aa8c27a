"""Shared fixtures.

- ``stack`` (session): the local stack's info (var/stack.json keys: directus_url, ws_url,
  app_url, token, admin_email/admin_password, demo_email/demo_password, reader_token,
  editor_token, db_file, directus_port, app_port, ...). Started in the background when it is
  not running, and stopped at the end only when this session started it.
- ``api(token=None, base_url=None)``: a DirectusAPI on the stack (``.request()`` returns a
  Response whatever the status; ``.call()/.get()/.post()/.patch()`` raise on HTTP errors).
- ``admin_api`` (session): logged in as the admin.

Tests under tests/integration get the ``integration`` marker. A failed test's report gets the
sections its fixtures asked for with ``tests.browser.report_on_failure`` (the console of each
page it opened, the log of each server it used).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

import stack as local_stack
from stack.api import DirectusAPI
from tests.browser import failure_sections

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        report.sections += failure_sections(item)


@pytest.fixture(scope="session")
def stack() -> Iterator[dict[str, Any]]:
    info, started_here = local_stack.ensure_up()
    try:
        yield info
    finally:
        if started_here:
            local_stack.down()


@pytest.fixture(scope="session")
def api(stack: dict[str, Any]) -> Callable[..., DirectusAPI]:
    def make(token: str | None = None, base_url: str | None = None) -> DirectusAPI:
        return DirectusAPI(base_url or stack["directus_url"], token)

    return make


@pytest.fixture(scope="session")
def admin_api(stack: dict[str, Any]) -> DirectusAPI:
    return DirectusAPI.login(stack["directus_url"], stack["admin_email"], stack["admin_password"])

"""examples/counter/: a page of its own on the client library (MicroPython, the library's .py
files in [files]), against a local Directus: two pages count each other's clicks, and a row
created over REST counts too.

The page is served by this tree's page server (the stack's own may predate examples/) on a free
port, and Directus accepts a WebSocket only from an origin in its CORS_ORIGIN, read at its
start: so the module runs a Directus of its own on a copy of the main database (provisioned
first: it has the ``clicks`` collection), with that origin in EXTRA_ORIGINS."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from stack import credentials, directus, serve
from stack.api import DirectusAPI
from stack.provision import provision
from tests.pools import reserve_port

pytestmark = [pytest.mark.integration, pytest.mark.browser]
PORTS = range(8260, 8280)


@pytest.fixture(scope="module")
def provisioned(stack, tmp_path_factory) -> Iterator[dict]:
    """{app_url, directus_url, token}: this tree's page server and a Directus of its own."""
    provision(stack["directus_url"], credentials.load())  # (a stack older than the example)
    tmp = tmp_path_factory.mktemp("example")
    app_port = reserve_port(PORTS)
    os.environ["EXTRA_ORIGINS"], saved = (
        f"http://127.0.0.1:{app_port}",
        os.environ.get("EXTRA_ORIGINS", ""),
    )
    try:
        cors = directus.app_origins(stack["app_port"])
    finally:
        os.environ["EXTRA_ORIGINS"] = saved
    server = directus.start_directus(
        reserve_port(PORTS),
        directus.copy_of_main_db(tmp),
        {"CORS_ORIGIN": cors},
        log_file=tmp / "directus.log",
    )
    stack_json = tmp / "stack.json"
    stack_json.write_text(json.dumps({"directus_url": server.url, "token": stack["token"]}))
    pages, _ = serve.serve_in_thread(app_port, stack_json=stack_json)
    try:
        yield {
            "app_url": f"http://127.0.0.1:{app_port}/",
            "directus_url": server.url,
            "token": stack["token"],
        }
    finally:
        pages.shutdown()
        pages.server_close()
        directus.stop(server)


def total(probe) -> int:
    return int(probe.page.text_content("#total"))


def wait_total(probe, value: int) -> None:
    probe.page.wait_for_function(
        "n => document.getElementById('total').textContent === String(n)", arg=value
    )


def open_counter(open_page, stack, name: str, **query: str):
    probe = open_page(name)
    probe.goto(stack["app_url"] + "examples/counter/", **query)
    probe.page.wait_for_selector('#status[data-state="connected"]')
    probe.page.wait_for_function("/^[0-9]+$/.test(document.getElementById('total').textContent)")
    return probe


def test_the_counter_counts_every_page_s_clicks(open_page, provisioned):
    stack = provisioned
    a = open_counter(open_page, stack, "counter A")  # the page server's config.json
    b = open_counter(open_page, stack, "counter B", url=stack["directus_url"], token=stack["token"])
    start = total(a)
    wait_total(b, start)

    a.page.click("#click")
    a.page.click("#click")
    b.page.click("#click")
    for probe in (a, b):
        wait_total(probe, start + 3)

    DirectusAPI(stack["directus_url"], stack["token"]).post("/items/clicks", {})
    for probe in (a, b):
        wait_total(probe, start + 4)

    # A page opened now starts from the same total.
    c = open_counter(open_page, stack, "counter C")
    assert total(c) == start + 4
    assert not a.page_errors and not b.page_errors

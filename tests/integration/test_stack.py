"""The local stack itself: provisioning, permissions, CORS, the page server, extra instances."""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import connect as ws_connect

import stack as local_stack
from stack import credentials, directus, mpy, paths, procs, serve
from stack.api import DirectusAPI
from stack.pages import BUNDLE_PATH, BUNDLE_URL, bundle, micropython_config
from stack.provision import COLLECTION, EXAMPLE_COLLECTION, POLICIES, provision

OUR_POLICIES = list(POLICIES)
OUR_USERS = ["demo@example.com", "reader@example.com", "editor@example.com"]


def snapshot(admin: DirectusAPI) -> dict[str, Any]:
    """Everything provisioning creates, as plain comparable data."""
    policies = admin.get(
        "/policies", filter={"name": {"_in": OUR_POLICIES}}, fields=["id", "name"], limit=-1
    )
    policy_ids = [p["id"] for p in policies]
    return {
        "collections": sorted(c["collection"] for c in admin.get("/collections")),
        "fields": sorted(
            (f["field"], f["type"], json.dumps(f["meta"].get("special")))
            for f in admin.get(f"/fields/{COLLECTION}")
        ),
        "policies": sorted((p["id"], p["name"]) for p in policies),
        "permissions": sorted(
            (p["id"], p["policy"], p["collection"], p["action"], json.dumps(p["fields"]))
            for p in admin.get(
                "/permissions",
                filter={"policy": {"_in": policy_ids}},
                fields=["id", "policy", "collection", "action", "fields"],
                limit=-1,
            )
        ),
        "users": sorted(
            (u["id"], u["email"], u["status"], tuple(sorted(p["policy"] for p in u["policies"])))
            for u in admin.get(
                "/users",
                fields=["id", "email", "status", "policies.policy"],
                limit=-1,
            )
        ),
    }


def test_stack_json_has_the_documented_keys(stack):
    for key in (
        "directus_url",
        "app_url",
        "token",
        "admin_email",
        "admin_password",
        "demo_email",
        "demo_password",
        "reader_token",
        "editor_token",
        "db_file",
        "directus_port",
        "app_port",
    ):
        assert stack[key], key
    assert stack["app_url"] == f"http://127.0.0.1:{stack['app_port']}/"
    assert stack["directus_url"] == f"http://127.0.0.1:{stack['directus_port']}"


def test_up_again_starts_nothing_and_changes_no_pid(stack):
    before = local_stack.read_info()
    assert before is not None and before["mode"] in ("single", "cluster")
    info, started = local_stack.up(quiet=True)
    assert started == []
    assert info["pids"] == before["pids"] and all(before["pids"].values())
    assert info["supervisor"]["pid"] == before["supervisor"]["pid"] is not None


def test_status_shows_each_part_up_with_pid_uptime_and_health(stack):
    st = local_stack.status()
    assert st["up"] and st["mode"] == stack["mode"]
    assert st["supervisor"]["pid"] is not None
    labels = [row["label"] for row in st["parts"]]
    assert labels[-1] == "page server" and any(label.startswith("Directus") for label in labels)
    for row in st["parts"]:
        assert row["pid"] and row["uptime"] is not None and row["health"], row
        assert row["restarts"] >= 0 and row["given_up"] is None, row


def test_provisioning_is_idempotent(stack, admin_api):
    before = snapshot(admin_api)
    assert provision(stack["directus_url"], credentials.load()) == []
    assert provision(stack["directus_url"], credentials.load()) == []
    assert snapshot(admin_api) == before
    # each of our policies exists once, each user once
    assert sorted(name for _, name in before["policies"]) == sorted(OUR_POLICIES)
    emails = [email for _, email, *_ in before["users"]]
    for email in OUR_USERS:
        assert emails.count(email) == 1


def test_permissions_are_exactly_as_specified(admin_api):
    policies = {
        p["name"]: p["id"]
        for p in admin_api.get("/policies", filter={"name": {"_in": OUR_POLICIES}}, limit=-1)
    }
    for name, spec in POLICIES.items():
        perms = admin_api.get("/permissions", filter={"policy": {"_eq": policies[name]}}, limit=-1)
        on_messages = [p for p in perms if p["collection"] == COLLECTION]
        assert sorted(p["action"] for p in on_messages) == sorted(spec["actions"]), name
        # Beside messages, only "Public Posts" has a permission: read and create on the example
        # page's collection.
        others = sorted((p["collection"], p["action"]) for p in perms if p not in on_messages)
        wanted = [(EXAMPLE_COLLECTION, "create"), (EXAMPLE_COLLECTION, "read")]
        assert others == (wanted if name == "Public Posts" else []), name
        assert all(p["fields"] == ["*"] for p in perms)
    assert POLICIES["Public Posts"]["actions"] == ["read", "create"]


def test_messages_has_the_expected_fields(admin_api):
    fields = {f["field"]: f for f in admin_api.get(f"/fields/{COLLECTION}")}
    assert set(fields) == {"id", "date_created", "date_updated", "text", "user"}
    assert fields["id"]["type"] == "uuid"
    assert fields["id"]["schema"]["is_primary_key"] is True
    assert fields["id"]["meta"]["special"] == ["uuid"]
    assert fields["date_created"]["type"] == "timestamp"
    assert "date-created" in fields["date_created"]["meta"]["special"]
    assert fields["date_created"]["schema"]["is_indexed"] is True  # history reads sort by it
    assert fields["date_updated"]["type"] == "timestamp"
    assert "date-updated" in fields["date_updated"]["meta"]["special"]
    assert fields["date_updated"]["schema"]["is_indexed"] is True  # the live query's checks
    assert fields["text"]["type"] == "text"
    assert fields["user"]["type"] == "string"


def test_demo_token_creates_and_reads_messages(stack, api, admin_api):
    demo = api(stack["token"])
    created = demo.post(f"/items/{COLLECTION}", {"text": "hello from the test", "user": "pytest"})
    try:
        assert uuid.UUID(created["id"])
        assert created["date_created"]
        read = demo.get(f"/items/{COLLECTION}/{created['id']}")
        assert read["text"] == "hello from the test"
        assert read["user"] == "pytest"
        # a client-chosen id is kept
        own_id = str(uuid.uuid4())
        mine = demo.post(f"/items/{COLLECTION}", {"id": own_id, "text": "mine", "user": "pytest"})
        assert mine["id"] == own_id
        # the demo user may not update or delete (Public Posts = read + create)
        assert demo.request("PATCH", f"/items/{COLLECTION}/{own_id}", {"text": "x"}).status == 403
        assert demo.request("DELETE", f"/items/{COLLECTION}/{own_id}").status == 403
    finally:
        admin_api.call(
            "DELETE", f"/items/{COLLECTION}", {"query": {"filter": {"user": {"_eq": "pytest"}}}}
        )


def test_reader_token_can_read_but_not_create(stack, api):
    reader = api(stack["reader_token"])
    resp = reader.request("POST", f"/items/{COLLECTION}", {"text": "nope", "user": "pytest"})
    assert resp.status == 403
    assert "FORBIDDEN" in resp.error_codes
    assert reader.request("GET", f"/items/{COLLECTION}", params={"limit": 1}).status == 200


def test_editor_token_can_update_and_delete(stack, api):
    editor = api(stack["editor_token"])
    item = editor.post(f"/items/{COLLECTION}", {"text": "draft", "user": "pytest-editor"})
    updated = editor.patch(f"/items/{COLLECTION}/{item['id']}", {"text": "final"})
    assert updated["text"] == "final"
    assert editor.request("DELETE", f"/items/{COLLECTION}/{item['id']}").status == 204
    assert editor.request("GET", f"/items/{COLLECTION}/{item['id']}").status == 403


def test_anonymous_cannot_read(api):
    assert api().request("GET", f"/items/{COLLECTION}").status == 403


def test_cors_allows_the_page_origin(stack, api):
    for origin in (
        f"http://127.0.0.1:{stack['app_port']}",
        f"http://localhost:{stack['app_port']}",
    ):
        resp = api().request(
            "OPTIONS",
            f"/items/{COLLECTION}",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert resp.status in (200, 204)
        assert resp.headers.get("Access-Control-Allow-Origin") == origin


def test_websocket_from_the_page_origin_authenticates(stack):
    # Sync client on purpose: no event loop of its own, whatever other tests leave running.
    origin = f"http://127.0.0.1:{stack['app_port']}"
    with ws_connect(stack["ws_url"], origin=origin, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "auth", "access_token": stack["token"]}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "auth", "status": "ok"}


# --- the page server ---------------------------------------------------------------------
# These run the page server as the working tree has it (stack.serve on a free port, over the
# repository and var/stack.json): the stack's own server may have started before the last
# change to stack/. The e2e tests use that one.


@pytest.fixture(scope="module")
def page_server(stack) -> Iterator[int]:
    server = serve.make_server(0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def get(
    port: int, path: str, method: str = "GET", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """A raw request (the path is sent exactly as given: no client-side normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_the_stacks_page_server_answers_the_page_and_only_for_its_names(stack):
    status, headers, body = get(stack["app_port"], "/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert b'<script type="mpy"' in body
    assert headers["referrer-policy"] == "no-referrer"
    host = f"rebound.example:{stack['app_port']}"
    assert get(stack["app_port"], "/local-stack.json", Host=host)[0] == 421


def test_page_server_serves_the_runtime(page_server):
    status, headers, body = get(page_server, "/static/runtime/pyodide/pyodide.mjs")
    assert status == 200
    assert headers["content-type"] == "text/javascript; charset=utf-8"
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert len(body) == int(headers["content-length"]) > 1000

    status, headers, _ = get(page_server, "/static/runtime/pyodide/pyodide.asm.wasm", "HEAD")
    assert status == 200
    assert headers["content-type"] == "application/wasm"

    status, headers, body = get(
        page_server, "/static/runtime/wheels/pyodide_http-0.2.2-py3-none-any.whl"
    )
    assert status == 200
    assert headers["content-type"] == "application/octet-stream"
    assert body[:2] == b"PK"

    status, headers, _ = get(page_server, "/static/runtime/pyscript/core.js", "HEAD")
    assert status == 200
    assert headers["content-type"] == "text/javascript; charset=utf-8"


def test_page_server_answers_the_library_as_micropython_bytecode(page_server):
    status, headers, body = get(page_server, "/directus_realtime/transports/browser.mpy")
    assert status == 200
    assert headers["content-type"] == "application/octet-stream"
    assert headers["cache-control"] == "no-cache"  # compiled from the .py as it is now
    assert body[:2] == b"M\x06" and b"directus_realtime/transports/browser.py" in body
    etag = {"If-None-Match": headers["etag"]}
    assert get(page_server, "/directus_realtime/transports/browser.mpy", **etag)[0] == 304
    # main.py too: index.html imports it as bytecode.
    status, headers, body = get(page_server, "/main.mpy")
    assert status == 200 and body[:2] == b"M\x06" and b"main.py" in body
    for path in (
        "/directus_realtime/nothing.mpy",
        "/directus_realtime/../stack/core.mpy",
        "/stack/core.mpy",
        "/nothing.mpy",
        "/page/nothing.mpy",
        "/page/../stack/core.mpy",
        "/page.mpy",
    ):
        assert get(page_server, path)[0] == 404, path


def test_page_server_answers_the_page_package_as_micropython_bytecode(page_server):
    """Every module of page/ (the page's own logic, next to the library), as bytecode for the
    MicroPython build and as source for the Pyodide build."""
    modules = sorted(p.relative_to(paths.ROOT).as_posix() for p in paths.ROOT.glob("page/**/*.py"))
    if not modules:
        pytest.skip("no page/ package in this checkout")
    for name in modules:
        status, headers, body = get(page_server, "/" + name.removesuffix(".py") + ".mpy")
        assert status == 200 and headers["content-type"] == "application/octet-stream", name
        assert body[:2] == b"M\x06" and name.encode() in body, name
        stamped = get(page_server, f"{mpy.url_of(name)[1:]}?v={mpy.stamp(body)}")[1]
        assert stamped["cache-control"] == "public, max-age=31536000, immutable", name
        status, _, source = get(page_server, "/" + name)
        assert status == 200 and source == (paths.ROOT / name).read_bytes(), name


def test_page_server_sends_the_bytecode_urls_stamped_and_keeps_them_for_good(page_server):
    """index.html goes out with its bytecode in one bundle asked for as ?v=<version>; that URL,
    and each single .mpy's stamped one, may be cached for good; any other answer for the same
    file is revalidated (a stale or made-up stamp included)."""
    status, headers, body = get(page_server, "/")
    assert status == 200 and headers["cache-control"] == "no-cache"
    index = (paths.ROOT / "index.html").read_text()
    assert micropython_config(body.decode())["files"] == {
        f"{BUNDLE_URL}?v={mpy.stamp(bundle(index, paths.ROOT))}": BUNDLE_PATH
    }
    (url,) = micropython_config(body.decode())["files"]
    status, headers, data = get(page_server, url[1:])
    assert status == 200 and data == bundle(index, paths.ROOT)
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    for query in ("", "?v=0000000000000000"):
        status, headers, _ = get(page_server, BUNDLE_URL[1:] + query)
        assert status == 200 and headers["cache-control"] == "no-cache"

    for path in micropython_config(index)["files"]:
        _, _, data = get(page_server, path[1:])
        status, headers, stamped = get(page_server, f"{path[1:]}?v={mpy.stamp(data)}")
        assert status == 200 and stamped == data and data[:2] == b"M\x06", path
        assert headers["cache-control"] == "public, max-age=31536000, immutable", path
    for query in ("", "?v=0000000000000000"):
        status, headers, _ = get(page_server, "/main.mpy" + query)
        assert status == 200 and headers["cache-control"] == "no-cache"

    _, headers, _ = get(page_server, "/index.html")
    assert get(page_server, "/", **{"If-None-Match": headers["etag"]})[0] == 304  # stamps and all


def test_page_server_revalidates_with_etag(page_server):
    _, headers, _ = get(page_server, "/static/runtime/versions.json")
    etag = {"If-None-Match": headers["etag"]}
    assert get(page_server, "/static/runtime/versions.json", **etag)[0] == 304


@pytest.mark.parametrize(
    "path",
    [
        "/var/stack.json",
        "/var/secrets.json",
        "/stack/core.py",
        "/.git/config",
        "/.venv/pyvenv.cfg",
        "/pyproject.toml",
        "/Makefile",
        "/tests/conftest.py",
        "/../var/stack.json",
        "/static/../var/stack.json",
        "/static/%2e%2e/var/stack.json",
        "/static/runtime/../../var/stack.json",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/static/",
        "/directus_realtime/__pycache__/",
    ],
)
def test_page_server_denies_everything_else(page_server, path):
    status, _, body = get(page_server, path)
    assert status == 404, (path, body[:200])


def test_page_server_refuses_writes(page_server):
    status, headers, _ = get(page_server, "/static/runtime/versions.json", "POST")
    assert status == 405


def test_local_stack_json(stack, page_server):
    status, headers, body = get(page_server, "/local-stack.json")
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert headers["cache-control"] == "no-store"  # a token: kept out of every cache
    assert json.loads(body) == {"directus_url": stack["directus_url"], "token": stack["token"]}


@pytest.mark.parametrize("host", ["rebound.example:{port}", "rebound.example", "127.0.0.1:1"])
def test_page_server_answers_only_its_own_names(stack, page_server, host):
    """DNS rebinding: a site whose name is made to resolve to 127.0.0.1 would read the page
    server (the local token included) as its own origin."""
    for path in ("/local-stack.json", "/", "/main.mpy"):
        status, headers, body = get(page_server, path, Host=host.format(port=page_server))
        assert status == 421, (host, path)
        assert stack["token"].encode() not in body
    for host in (f"127.0.0.1:{page_server}", f"localhost:{page_server}"):
        assert get(page_server, "/local-stack.json", Host=host)[0] == 200, host


def test_page_server_sends_no_referrer(page_server):
    """The page's address can hold a token until the page has read it."""
    for path, method, status in [
        ("/", "GET", 200),
        ("/main.mpy", "GET", 200),
        ("/static/runtime/versions.json", "HEAD", 200),
        ("/local-stack.json", "GET", 200),
        ("/stack/core.py", "GET", 404),
        ("/", "POST", 405),
    ]:
        got, headers, _ = get(page_server, path, method)
        assert got == status and headers["referrer-policy"] == "no-referrer", (path, method)


# --- extra Directus instances (what integration tests of the client build on) ------------


@pytest.mark.slow
def test_extra_instance_on_a_copy_survives_a_hard_restart(stack, tmp_path):
    db = directus.copy_of_main_db(tmp_path)
    port = procs.free_port()
    handle = directus.start_directus(
        port, db, extra_env={"ACCESS_TOKEN_TTL": "5s"}, log_file=tmp_path / "directus.log"
    )
    try:
        demo = DirectusAPI(handle.url, stack["token"])
        item = demo.post(f"/items/{COLLECTION}", {"text": "on the copy", "user": "pytest-copy"})
        handle = directus.restart(handle, hard=True)
        assert handle.alive()
        assert demo.get(f"/items/{COLLECTION}/{item['id']}")["text"] == "on the copy"
        # the copy is separate from the main database
        main = DirectusAPI(stack["directus_url"], stack["token"])
        assert main.request("GET", f"/items/{COLLECTION}/{item['id']}").status == 403
    finally:
        directus.stop(handle)
    assert not handle.alive()
    assert not procs.port_in_use(port)

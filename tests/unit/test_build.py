"""stack/build.py: the one Content-Security-Policy of the page server and `make dist`, the hash
of the page's inline script, EXTRA_ORIGINS, config.json (tests/e2e/test_dist.py serves a whole
build)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os

import pytest

from stack import build, directus, paths, serve

INDEX = (paths.ROOT / "index.html").read_text()


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch):
    for name in ("APP_CSP", "APP_CONNECT_SRC", "EXTRA_ORIGINS"):
        monkeypatch.delenv(name, raising=False)


def directives(policy: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


def test_the_inline_script_is_hashed_as_the_browser_does():
    body = INDEX.split("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    assert build.script_hashes(INDEX) == [f"'sha256-{digest}'"]
    assert build.script_hashes('<script type="module" src="x.js"></script>') == []


def test_the_page_server_sends_the_hash_of_index_html_script():
    policy = directives(serve.content_security_policy(paths.ROOT))
    assert build.script_hashes(INDEX)[0] in policy["script-src"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in policy["script-src"]


def test_the_meta_policy_leaves_out_what_a_meta_tag_cannot_carry():
    policy = build.content_security_policy(["https://x.example"], ["'sha256-A'"], meta=True)
    assert "frame-ancestors" not in directives(policy)
    assert directives(policy)["connect-src"] == ["'self'", "https://x.example"]


def test_a_built_page_connects_only_to_its_directus():
    sources = build.connect_sources("https://x.directus.app")
    assert sources == ["https://x.directus.app", "wss://x.directus.app"]
    assert build.connect_sources("http://127.0.0.1:8055") == [
        "http://127.0.0.1:8055",
        "ws://127.0.0.1:8055",
    ]


def test_extra_origins_reach_directus_cors_and_connect_src(monkeypatch):
    monkeypatch.setenv("EXTRA_ORIGINS", " http://127.0.0.1:8123/ ,https://a.example,,")
    assert directus.app_origins(8000).split(",") == [
        "http://127.0.0.1:8000",
        "http://localhost:8000",
        "http://127.0.0.1:8123",
        "https://a.example",
    ]
    connect = directives(serve.content_security_policy(paths.ROOT))["connect-src"]
    assert "http://127.0.0.1:8123" in connect and "https://a.example" in connect


def test_without_extra_origins_cors_is_the_page_server_alone():
    assert directus.app_origins(8000) == "http://127.0.0.1:8000,http://localhost:8000"


def test_app_csp_still_replaces_the_whole_policy(monkeypatch):
    monkeypatch.setenv("APP_CSP", "default-src 'none'")
    assert serve.content_security_policy(paths.ROOT) == "default-src 'none'"


def test_the_policy_goes_first_in_the_head_escaped():
    page = build.with_csp_meta(INDEX, "default-src 'self'; x \"y\"")
    head = page.split("<head>", 1)[1]
    first, second = [line.strip() for line in head.strip().splitlines()[:2]]
    assert first == '<meta charset="utf-8">'
    assert second == build.CSP_META.format("default-src 'self'; x &quot;y&quot;")
    with pytest.raises(ValueError):
        build.with_csp_meta("<html></html>", "x")


def test_config_json_names_the_directus_and_never_a_token():
    assert json.loads(build.config_json("https://x.directus.app")) == {
        "directus_url": "https://x.directus.app"
    }
    assert json.loads(build.config_json(None)) == {"directus_url": None}


def test_a_bad_directus_url_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="DIRECTUS_URL"):
        build.build(tmp_path / "dist", directus_url="example.directus.app")
    assert not (tmp_path / "dist").exists()


def test_the_pyodide_build_gets_the_page_python_in_the_zip_pyscript_toml_names():
    names = build.pyodide_sources(paths.ROOT)
    assert "main.py" in names and "page/app.py" in names and "directus_realtime/rest.py" in names
    assert all((paths.ROOT / name).is_file() for name in names)


def test_a_built_page_with_no_token_asks_for_one_for_its_directus():
    from page import settings

    found = settings.from_query({}, lambda text: None)
    found = settings.with_local_stack(found, json.loads(build.config_json("https://x.example")))
    assert found["url"] == "https://x.example" and found["token"] is None
    with pytest.raises(settings.SettingsError) as caught:
        settings.checked(found)
    assert caught.value.kind == "settings"
    assert "static token" in caught.value.message and "https://x.example" in caught.value.message


def test_the_page_server_answers_config_json_with_the_local_stack_never_stored(tmp_path):
    """The dev page's config.json is the local stack's (with its token), kept out of caches;
    a folder's URL answers its index.html (/examples/counter/)."""
    import http.client
    import threading

    (tmp_path / "stack.json").write_text(
        json.dumps({"directus_url": "http://127.0.0.1:8055", "token": "T", "admin_password": "no"})
    )
    (tmp_path / "examples" / "counter").mkdir(parents=True)
    (tmp_path / "examples" / "counter" / "index.html").write_text("<p>counter</p>")
    server = serve.make_server(0, root=tmp_path, stack_json=tmp_path / "stack.json")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
        conn.request("GET", "/config.json")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Cache-Control") == "no-store"
        assert json.loads(response.read()) == {
            "directus_url": "http://127.0.0.1:8055",
            "token": "T",
        }
        conn.request("GET", "/examples/counter/")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"<p>counter</p>")
        conn.close()
    finally:
        server.shutdown()
        server.server_close()


def test_precompress_writes_a_gz_beside_stamped_files_that_compress_well(tmp_path):
    runtime = tmp_path / "static" / "runtime" / "micropython"
    runtime.mkdir(parents=True)
    wasm = bytes(range(256)) * 64  # 16 kB that compresses
    (runtime / "micropython.wasm").write_bytes(wasm)
    (runtime / "random.bin").write_bytes(os.urandom(4096))  # does not compress
    (runtime / "tiny.mjs").write_bytes(b"export {};")  # too small to bother
    (tmp_path / "bytecode.mpy").write_bytes(b"M" * 4096)
    (tmp_path / "index.html").write_text("<p>" * 4096)  # not stamped: revalidated, never .gz

    written = build.precompress(tmp_path)

    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "bytecode.mpy.gz",
        "static/runtime/micropython/micropython.wasm.gz",
    ]
    assert gzip.decompress((runtime / "micropython.wasm.gz").read_bytes()) == wasm
    assert build.precompress(tmp_path) == written  # again: the same files, no .gz.gz

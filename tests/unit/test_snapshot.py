"""The Pyodide build's memory snapshot (stack/snapshot.py): its name follows what it is made
from, it is made by Node with the recipe and a fixed environment, and the Pyodide page links it
when it is there. (The real one, made by `make setup`, is restored in tests/e2e/test_pyodide.py.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stack import build, pages, paths, snapshot

INDEX = (paths.ROOT / "index.html").read_text()

# Stands in for Node: records its arguments, stdin and environment, and writes the output.
FAKE_NODE = """#!%s
import json, os, sys
recipe, folder, output = sys.argv[1:4]
record = {"recipe": recipe, "folder": folder, "code": sys.stdin.read(),
          "env": {k: os.environ.get(k) for k in ("TZ", "LANG", "LC_ALL")}}
with open(os.path.join(os.path.dirname(sys.argv[0]), "calls.jsonl"), "a") as f:
    f.write(json.dumps(record) + "\\n")
if os.environ.get("FAKE_NODE_FAILS"):
    open(output, "wb").write(b"half")
    sys.exit("Pyodide could not start")
open(output, "wb").write(b"memory of " + folder.encode())
"""


@pytest.fixture
def pyodide_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "pyodide"
    folder.mkdir()
    for name in snapshot.INPUTS:
        (folder / name).write_bytes(b"pyodide's " + name.encode())
    return folder


@pytest.fixture
def node(tmp_path: Path) -> Path:
    fake = tmp_path / "bin" / "node"
    fake.parent.mkdir()
    fake.write_text(FAKE_NODE % sys.executable)
    fake.chmod(0o755)
    return fake


def calls(node: Path) -> list[dict]:
    log = node.parent / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_the_stamp_follows_every_file_of_pyodide_it_is_made_from(pyodide_dir):
    first = snapshot.stamp(pyodide_dir)
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert snapshot.stamp(pyodide_dir) == first
    for name in snapshot.INPUTS:
        before = snapshot.stamp(pyodide_dir)
        (pyodide_dir / name).write_bytes(b"another build's " + name.encode())
        assert snapshot.stamp(pyodide_dir) != before, name
    # The lock file and the package's metadata are not in the memory.
    before = snapshot.stamp(pyodide_dir)
    (pyodide_dir / "pyodide-lock.json").write_text("{}")
    assert snapshot.stamp(pyodide_dir) == before


def test_the_stamp_follows_the_recipe_too(pyodide_dir, monkeypatch):
    before = snapshot.stamp(pyodide_dir)
    monkeypatch.setattr(snapshot, "IMPORTS", (*snapshot.IMPORTS, "email"))
    assert snapshot.stamp(pyodide_dir) != before


def test_build_runs_the_recipe_in_node_with_a_fixed_zone_and_locale(pyodide_dir, node):
    built = snapshot.build(pyodide_dir, node=node)
    assert built == pyodide_dir / ("snapshot-%s.bin" % snapshot.stamp(pyodide_dir))
    assert built.read_bytes() == b"memory of " + str(pyodide_dir).encode()
    [call] = calls(node)
    assert call["recipe"] == str(snapshot.RECIPE) and call["folder"] == str(pyodide_dir)
    assert call["env"] == snapshot.BUILD_ENV
    assert call["code"] == snapshot.code()
    assert snapshot.current(pyodide_dir) == built
    # Built once: a second build finds it.
    assert snapshot.build(pyodide_dir, node=node) == built
    assert len(calls(node)) == 1


def test_the_recipe_imports_and_forgets_the_builders_folders():
    code = snapshot.code()
    compile(code, "<snapshot>", "exec")
    for name in snapshot.IMPORTS:
        assert f"import {name}\n" in code
    assert "path_importer_cache" in code


def test_a_new_build_replaces_the_snapshot_of_the_old_one(pyodide_dir, node):
    old = snapshot.build(pyodide_dir, node=node)
    (pyodide_dir / "pyodide.asm.wasm").write_bytes(b"a new Pyodide")
    assert snapshot.current(pyodide_dir) is None  # the old one does not match: not linked
    new = snapshot.build(pyodide_dir, node=node)
    assert new != old and new.is_file() and not old.exists()


def test_a_failed_build_leaves_no_file_and_says_why(pyodide_dir, node, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_NODE_FAILS", "1")
    with pytest.raises(subprocess.CalledProcessError):
        snapshot.build(pyodide_dir, node=node)
    assert list(pyodide_dir.glob("snapshot-*")) == []
    assert snapshot.current(pyodide_dir) is None

    assert snapshot.build_or_warn(pyodide_dir, node) is None
    err = capsys.readouterr().err
    assert "no Pyodide memory snapshot" in err and "Pyodide could not start" in err


def test_without_node_there_is_no_snapshot_and_a_warning(pyodide_dir, tmp_path, capsys):
    missing = tmp_path / "no-node"
    with pytest.raises(OSError):
        snapshot.build(pyodide_dir, node=missing)
    assert snapshot.build_or_warn(pyodide_dir, missing) is None
    assert "no Pyodide memory snapshot" in capsys.readouterr().err
    assert snapshot.current(pyodide_dir) is None


def test_the_pyodide_page_links_its_snapshot_for_the_loader_only_when_there_is_one(tmp_path):
    name = "snapshot-0123456789abcdef.bin"
    page = pages.pyodide_page(INDEX, name)
    link = (
        f'<link rel="preload" href="./static/runtime/pyodide/{name}" as="fetch" crossorigin '
        "data-pyodide-snapshot>"
    )
    assert link in page
    assert '<link rel="modulepreload" href="./static/pyodide-loader.mjs">' in page
    assert "data-pyodide-snapshot" not in pages.pyodide_page(INDEX)
    # The page server's pyodide.html: linked when static/runtime has the current one.
    (tmp_path / "index.html").write_text(INDEX)
    runtime = tmp_path / "static" / "runtime" / "pyodide"
    runtime.mkdir(parents=True)
    assert "data-pyodide-snapshot" not in pages.write_pyodide_page(tmp_path).read_text()
    for file in snapshot.INPUTS:
        (runtime / file).write_bytes(file.encode())
    current = runtime / (snapshot.NAME % snapshot.stamp(runtime))
    current.write_bytes(b"memory")
    assert f'href="./static/runtime/pyodide/{current.name}"' in (
        pages.write_pyodide_page(tmp_path).read_text()
    )


def test_the_pyodide_build_starts_pyodide_through_the_loader():
    toml = (paths.ROOT / "pyscript.toml").read_text()
    assert re.search(r'^interpreter = "\./static/pyodide-loader\.mjs"$', toml, re.M)
    loader = (paths.ROOT / "static" / "pyodide-loader.mjs").read_text()
    assert 'from "./runtime/pyodide/pyodide.mjs"' in loader
    assert "link[data-pyodide-snapshot]" in loader


def test_dist_copies_the_snapshot(tmp_path):
    """build._runtime_files (what make dist copies) names the current snapshot."""
    runtime = tmp_path / "runtime"
    for folder in ("pyscript", "micropython", "pyodide", "wheels"):
        (runtime / folder).mkdir(parents=True)
    for file in snapshot.INPUTS:
        (runtime / "pyodide" / file).write_bytes(file.encode())
    names = [str(p) for p in build._runtime_files(runtime)]
    assert not [n for n in names if "snapshot-" in n]
    current = runtime / "pyodide" / (snapshot.NAME % snapshot.stamp(runtime / "pyodide"))
    current.write_bytes(b"memory")
    assert f"pyodide/{current.name}" in [str(p) for p in build._runtime_files(runtime)]

"""Copy the browser runtime from stack/runtime/node_modules into static/runtime/ (git-ignored):

    static/runtime/pyscript/   @pyscript/core/dist (no source maps)
    static/runtime/pyodide/    the Pyodide files needed at run time, and its memory snapshot
                               (stack/snapshot.py: made here, with the venv's Node)
    static/runtime/micropython/  MicroPython for PyScript (micropython.mjs + micropython.wasm)
    static/runtime/sdk/        @directus/sdk/dist ES modules (for a reference JS page)
    static/runtime/wheels/     pyodide_http-0.2.2-py3-none-any.whl (from PyPI, pip download)
    static/runtime/versions.json

The new tree is built beside the old one and swapped in, so a failed copy leaves the old one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from . import paths, snapshot

PYODIDE_FILES = [
    "pyodide.mjs",
    "pyodide.js",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
    "package.json",
]
# index.html's interpreter; the version is the one @pyscript/core loads from its CDN by default.
MICROPYTHON_FILES = ["micropython.mjs", "micropython.wasm", "package.json"]
PYODIDE_HTTP = "pyodide-http==0.2.2"
PYODIDE_HTTP_WHEEL = "pyodide_http-0.2.2-py3-none-any.whl"


def _version(package_dir: Path) -> str:
    return json.loads((package_dir / "package.json").read_text())["version"]


def _copy_tree(src: Path, dest: Path, keep) -> int:
    count = 0
    for file in sorted(src.rglob("*")):
        if file.is_file() and keep(file):
            target = dest / file.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)
            count += 1
    return count


def build(dest: Path = paths.STATIC_RUNTIME) -> dict[str, str]:
    nm = paths.RUNTIME_NODE_MODULES
    pyscript = nm / "@pyscript" / "core"
    pyodide = nm / "pyodide"
    sdk = nm / "@directus" / "sdk"
    micropython = nm / "@micropython" / "micropython-webassembly-pyscript"
    for pkg in (pyscript, pyodide, sdk, micropython):
        if not (pkg / "package.json").exists():
            raise SystemExit(f"{pkg} is missing: run `make setup` (npm ci in stack/runtime)")

    tmp = dest.with_name(dest.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    _copy_tree(pyscript / "dist", tmp / "pyscript", lambda f: f.suffix != ".map")
    (tmp / "pyodide").mkdir()
    for name in PYODIDE_FILES:
        shutil.copy2(pyodide / name, tmp / "pyodide" / name)
    snapshot.build_or_warn(tmp / "pyodide")
    (tmp / "micropython").mkdir()
    for name in MICROPYTHON_FILES:
        shutil.copy2(micropython / name, tmp / "micropython" / name)
    _copy_tree(
        sdk / "dist",
        tmp / "sdk",
        lambda f: f.suffix == ".js",
    )

    wheels = tmp / "wheels"
    wheels.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-qq",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(wheels),
            PYODIDE_HTTP,
        ],
        check=True,
    )
    if not (wheels / PYODIDE_HTTP_WHEEL).exists():
        raise SystemExit(f"pip download did not produce {PYODIDE_HTTP_WHEEL}")

    versions = {
        "pyscript": _version(pyscript),
        "pyodide": _version(pyodide),
        "micropython": _version(micropython),
        "directus_sdk": _version(sdk),
        "pyodide_http": PYODIDE_HTTP.split("==")[1],
    }
    (tmp / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")

    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return versions


def main() -> int:
    versions = build()
    size = sum(f.stat().st_size for f in paths.STATIC_RUNTIME.rglob("*") if f.is_file())
    print(
        f"static/runtime/: PyScript {versions['pyscript']}, Pyodide {versions['pyodide']}, "
        f"MicroPython {versions['micropython']}, "
        f"@directus/sdk {versions['directus_sdk']}, pyodide-http {versions['pyodide_http']} "
        f"({size / 1e6:.1f} MB)"
    )
    return 0

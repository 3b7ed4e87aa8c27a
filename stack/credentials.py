"""Random secrets of the local stack, made once and kept in var/secrets.json.

They live beside var/directus.db on purpose: the database holds the admin password and the
static tokens made from them, so the two are only ever created or deleted together.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from . import paths

ADMIN_EMAIL = "admin@example.com"
DEMO_EMAIL = "demo@example.com"
READER_EMAIL = "reader@example.com"
EDITOR_EMAIL = "editor@example.com"


def _new() -> dict[str, str]:
    def token() -> str:
        return secrets.token_urlsafe(32)

    return {
        "secret": token(),
        "admin_email": ADMIN_EMAIL,
        "admin_password": secrets.token_urlsafe(18),
        "demo_email": DEMO_EMAIL,
        "demo_password": secrets.token_urlsafe(18),
        "demo_token": token(),
        "reader_email": READER_EMAIL,
        "reader_password": secrets.token_urlsafe(18),
        "reader_token": token(),
        "editor_email": EDITOR_EMAIL,
        "editor_password": secrets.token_urlsafe(18),
        "editor_token": token(),
    }


def _write(path: Path, data: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def load(path: Path = paths.SECRETS_FILE) -> dict[str, str]:
    """The stack's secrets, created on first use. Missing keys are added, never replaced."""
    data: dict[str, str] = {}
    if path.exists():
        data = json.loads(path.read_text())
    fresh = _new()
    missing = {k: v for k, v in fresh.items() if k not in data}
    if missing:
        data.update(missing)
        _write(path, data)
    return data

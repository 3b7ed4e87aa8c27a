"""Writes: what an error means for a write, and where unconfirmed writes are kept.

``write_outcome`` is the one place that decides what happens to a write after an attempt:
stored, sent again later, or refused. ``RealtimeClient`` keeps every unconfirmed write
(``create``, ``update``, ``delete``) in one outbox whose entries go to a store after every
change, so a write made offline survives a reload; the protocol core paces them under
Directus's rate limit (``send_rate``, ``REQUESTS_EXCEEDED``) and reads a create back by id when
it meets ``RECORD_NOT_UNIQUE`` (stored only if the row is what was written).

A store is any object with ``load() -> list`` and ``save(entries: list) -> None``; the entries
are JSON-serialisable and their format belongs to this module.
"""

import json

from .errors import AuthenticationError, ConnectionFailed, DirectusError, OutboxFull

# typing.TYPE_CHECKING without importing typing at run time (MicroPython has none).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STORED = "stored"
RETRY = "retry"  # send it again (when connected)
KEEP = "keep"  # the client stopped: leave it in the store for the next session, fail the caller
REFUSED = "refused"

# Directus codes that say "not now" rather than "no".
TRANSIENT = ("REQUESTS_EXCEEDED", "SERVICE_UNAVAILABLE", "INTERNAL_SERVER_ERROR", "TOKEN_EXPIRED")

# Directus codes of a refused sign-in: they are about the connection's credentials, not the
# write, so the write waits (in the store) for new credentials instead of being refused.
SIGN_IN_REFUSED = (
    "AUTH_FAILED",
    "INVALID_CREDENTIALS",
    "TOKEN_EXPIRED",
    "INVALID_TOKEN",
    "AUTH_TIMEOUT",
)


def idempotent(message: "dict[str, Any]") -> bool:
    """Whether sending a write twice does no more than sending it once: updates (absolute
    values) and deletes are; creates are when every row carries its id (a second try meets
    ``RECORD_NOT_UNIQUE``, and the core reads the row back)."""
    action = message.get("action")
    if action in ("update", "delete"):
        return True
    data = message.get("data")
    rows = data if isinstance(data, list) else [data]
    return bool(rows) and all(isinstance(r, dict) and r.get("id") is not None for r in rows)


def write_outcome(
    action: str, error: "BaseException | None", sent_before: bool, repeatable: bool = True
) -> str:
    """What an attempt of a write (``action``: create, update or delete) comes to.

    ``sent_before``: an earlier attempt (this session's, or one restored from the store) may
    have reached Directus. No error: stored. Directus's own errors refuse the write, except the
    transient ones; a delete whose item is gone (FORBIDDEN, as Directus answers for an id it
    cannot find) after an earlier attempt counts as done. A lost connection or a timeout: send
    again, if the write is ``repeatable`` (``idempotent``), else refused with that error (it
    may or may not have been stored). ``disconnect()`` or a client that gave up: kept for the
    next session.
    A refused sign-in (``AuthenticationError``, or a code of ``SIGN_IN_REFUSED``) is about the
    credentials, not the write: kept for new credentials, unless the write is not
    ``repeatable`` and may have been carried out already.
    (``RECORD_NOT_UNIQUE`` on a create never gets here as such: the core reads the row back
    and answers with it, or with this error when the row is not what was written.)
    """
    if error is None:
        return STORED
    if isinstance(error, DirectusError):
        if error.code in TRANSIENT and not isinstance(error, AuthenticationError):
            return RETRY
        if isinstance(error, AuthenticationError) or error.code in SIGN_IN_REFUSED:
            return KEEP if repeatable or not sent_before else REFUSED
        if action == "delete" and sent_before and error.code in ("FORBIDDEN", "NOT_FOUND"):
            return STORED
        return REFUSED
    if isinstance(error, OutboxFull):
        return REFUSED
    if isinstance(error, ConnectionFailed):
        return KEEP if repeatable else REFUSED
    # ConnectionLost, RequestTimeout: whether it was carried out is unknown
    return RETRY if repeatable else REFUSED


class MemoryStore:
    """The default store: entries live as long as the process."""

    def __init__(self) -> None:
        self.entries = []  # type: list[Any]

    def load(self) -> "list[Any]":
        return list(self.entries)

    def save(self, entries: "list[Any]") -> None:
        self.entries = list(entries)


class JsonFileStore:
    """Entries in a JSON file (CPython): writes made offline survive a restart."""

    def __init__(self, path: str) -> None:
        self.path = str(path)

    def load(self) -> "list[Any]":
        try:
            with open(self.path) as f:
                entries = json.load(f)
        except (OSError, ValueError):
            return []
        return entries if isinstance(entries, list) else []

    def save(self, entries: "list[Any]") -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(entries, f)
        import os

        os.replace(tmp, self.path)


def entry(seq: int, message: "dict[str, Any]", sent_before: bool) -> "dict[str, Any]":
    """One outbox entry: the ``items`` message, and whether it may have been sent already."""
    return {"seq": seq, "message": message, "sent": sent_before}


def is_write(message: "dict[str, Any]") -> bool:
    return message.get("type") == "items" and message.get("action") in (
        "create",
        "update",
        "delete",
    )

"""Enough messages for the history benchmark: bulk-created over REST as the admin, once."""

from __future__ import annotations

from typing import Any

from stack.api import DirectusAPI

BATCH = 1000


def count_messages(api: DirectusAPI) -> int:
    data = api.get("/items/messages", **{"aggregate[count]": "*"})
    value: Any = data[0]["count"] if data else 0
    if isinstance(value, dict):  # some Directus versions answer {"count": {"*": n}}
        value = next(iter(value.values()), 0)
    return int(value)


def ensure_messages(info: dict[str, Any], wanted: int, say=print) -> int:
    """Create messages until the collection holds at least ``wanted``; return how many it holds."""
    api = DirectusAPI.login(info["directus_url"], info["admin_email"], info["admin_password"])
    have = count_messages(api)
    if have >= wanted:
        return have
    missing = wanted - have
    say(f"seeding {missing} messages ({have} there, the history bench reads {wanted})…")
    made = 0
    while made < missing:
        size = min(BATCH, missing - made)
        batch = [
            {"user": "bench", "text": f"history message {have + made + i + 1}"} for i in range(size)
        ]
        resp = api.request("POST", "/items/messages", batch, params={"fields": "id"})
        if resp.status >= 400:
            raise RuntimeError(f"bulk create failed: {resp.status} {resp.body}")
        made += size
    return count_messages(api)

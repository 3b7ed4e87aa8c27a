"""What ``create_item`` (and the compose form) accepts, and what the page says about writes.

A write goes through the live query (the library's one outbox decides what each answer
means); the page only refuses, before anything is sent, what Directus should never see. Pure
functions of values, tested in CPython.
"""

MAX_TEXT_LENGTH = 10_000  # Directus refuses longer texts too (stack/provision.py)


def check_item(text, user) -> None:
    """Refuse what Directus should never see, before anything is sent (``ValueError``)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("create_item: text must be a non-empty string, got " + repr(text))
    if len(text) > MAX_TEXT_LENGTH:
        raise ValueError(
            "create_item: text is %d characters; the limit is %d." % (len(text), MAX_TEXT_LENGTH)
        )
    if not isinstance(user, str) or not user.strip():
        raise ValueError("create_item: user must be a non-empty string, got " + repr(user))


def delivery_of(items: list):
    """True when Directus stores the ids the page chooses (a UUID key: exactly-once), False
    when it numbers items itself (at-least-once), None when ``items`` do not tell."""
    for item in items:
        item_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(item_id, bool) or item_id is None:
            continue
        if isinstance(item_id, int):
            return False
        if isinstance(item_id, str):
            return True
    return None


def waiting_note(count: int, reason: str) -> str:
    """The line the page shows while writes wait: how many, and why."""
    if not count:
        return ""
    what = "1 message waiting" if count == 1 else "%d messages waiting" % count
    return what + ": " + reason

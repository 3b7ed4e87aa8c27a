"""The page's writes: what ``create_item`` accepts, and what an answer means for a write.

A write is ``{"id", "text", "user"}``: the page chooses the id, so a write sent again after a
lost reply cannot be stored twice. Pure functions of values, tested in CPython.
"""

from directus_realtime import AuthenticationError, DirectusError, OutboxFull

MAX_TEXT_LENGTH = 10_000  # Directus refuses longer texts too (stack/provision.py)

# Directus errors about the connection or the sign-in, not about the write: the write is kept
# and sent again once the connection (or the credentials) work.
NOT_ABOUT_THE_WRITE = (
    "TOKEN_EXPIRED",
    "INVALID_TOKEN",
    "INVALID_CREDENTIALS",
    "AUTH_TIMEOUT",
    "REQUESTS_EXCEEDED",
    "SERVICE_UNAVAILABLE",
    "INTERNAL_SERVER_ERROR",
)

STORED, KEPT, REFUSED, WITHOUT_ID, CHECK_DUPLICATE = (
    "stored",
    "kept",
    "refused",
    "without-id",
    "check-duplicate",
)


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


def is_write(data) -> bool:
    """Whether ``data`` (a saved value, say) has the shape of a write."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        return False
    try:
        check_item(data.get("text"), data.get("user"))
    except ValueError:
        return False
    return True


def without_id(data: dict) -> dict:
    return {name: value for name, value in data.items() if name != "id"}


def verdict(error, first_try: bool, exactly_once) -> str:
    """What an answer means for the write it answers.

    - STORED: no error.
    - WITHOUT_ID: FORBIDDEN before the page knows whether Directus takes chosen ids: send it
      once more without its id to tell the id from the create itself.
    - CHECK_DUPLICATE: RECORD_NOT_UNIQUE: stored already, by an earlier try or another tab,
      if the row with this id is this write (``is_same_write``).
    - REFUSED: Directus said no to this write (FORBIDDEN, INVALID_PAYLOAD...), or the page's
      outbox is full: sending it again would not help; it is dropped.
    - KEPT: no answer, or an error about the connection or the sign-in: the write stays in
      the outbox (saved) and is sent once they work again.
    """
    if error is None:
        return STORED
    if isinstance(error, OutboxFull):
        return REFUSED
    if isinstance(error, AuthenticationError) or not isinstance(error, DirectusError):
        return KEPT
    if error.code in NOT_ABOUT_THE_WRITE:
        return KEPT
    if error.code == "RECORD_NOT_UNIQUE" and exactly_once is not False:
        return CHECK_DUPLICATE
    if error.code == "FORBIDDEN" and first_try and exactly_once is None:
        return WITHOUT_ID
    return REFUSED


def is_same_write(data: dict, row) -> bool:
    """Whether ``row`` (read back by id) is the write ``data``, and not another item that
    happens to hold its id."""
    return (
        isinstance(row, dict)
        and str(row.get("id")) == data["id"]
        and row.get("text") == data["text"]
        and row.get("user") == data["user"]
    )


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

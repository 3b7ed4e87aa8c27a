"""The one query the page shows: the latest messages, in ``date_created`` order.

The page is a view of one live query (the library's ``client.live``) of ``messages``: the
latest ``limit`` rows; "Load older" grows the window. The library reads, catches up and checks
it; the page only says what it is. Pure values, tested in CPython.
"""

# Every field the user may read: id, user, text, date_created, and date_updated where the
# collection has it (the live query's checks then compare it instead of re-reading the window;
# naming it would make Directus refuse the query of a collection without it).
FIELDS = ["*"]


def window_query(limit: int) -> dict:
    """The latest ``limit`` messages (the live query answers them newest first; the page shows
    them oldest first, by ``date_created``)."""
    return {"fields": FIELDS, "sort": ["-date_created"], "limit": limit}


def created(item: dict) -> str:
    return item.get("date_created") or ""


def in_date_order(items: list) -> list:
    """``items`` oldest first. They come sorted one way or the other, so they are only checked
    and turned (MicroPython's sort calls the key in every comparison: too slow for 1,000)."""
    keys = [created(item) for item in items]
    steps = range(len(keys) - 1)
    if all(keys[i] <= keys[i + 1] for i in steps):
        return items
    if all(keys[i] >= keys[i + 1] for i in steps):
        return items[::-1]
    return sorted(items, key=created)

"""Reading messages back: the latest on load, older ones on demand, and everything missed
while the page was not listening.

The page reads in pages of ``PAGE`` messages: each frame stays small (MicroPython runs out of
memory on one frame of 10,000 messages) and the first rows show while older ones are on their
way. Each page starts at the previous one's last ``date_created`` inclusive (two messages may
share it); what is shown already is skipped. Pure functions of values, tested in CPython.
"""

FIELDS = ["id", "user", "text", "date_created"]
PAGE = 1000  # messages per read
EVERYTHING = None  # ``wanted`` for a catch-up: read until nothing newer is left


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


def page_query(bound, wanted, newest_first: bool, again: int = 1) -> dict:
    """The query of one page of at most ``wanted`` messages (None: a full page) from ``bound``
    (a ``date_created``, inclusive) on, newest or oldest first; ``again``: the rows read
    already that have the bound's date, which come again first."""
    limit = PAGE if wanted is None else min(PAGE, wanted)
    query = {
        "fields": FIELDS,
        "limit": limit + (again if bound else 0),
        "sort": ["-date_created" if newest_first else "date_created"],
    }
    if bound:
        query["filter"] = {"date_created": {"_lte" if newest_first else "_gte": bound}}
    return query


class Reading:
    """One read of up to ``wanted`` messages not shown yet (``EVERYTHING``: until caught up),
    page after page. ``query()`` is the next page's; ``arrived(items, shown)`` takes a page
    and the ids on screen, returns the messages to show, and says whether another page
    follows (``more``), whose query it has ready."""

    def __init__(self, wanted, newest_first: bool, bound=None) -> None:
        self.wanted = wanted
        self.newest_first = newest_first
        self.bound = bound
        self.shown = 0
        self.more = True
        self.next_query = page_query(bound, wanted, newest_first)

    def query(self) -> dict:
        return self.next_query

    def arrived(self, items: list, shown) -> list:
        asked = self.next_query["limit"]
        fresh = [item for item in items if str(item.get("id")) not in shown]
        if self.wanted is not None:
            fresh = fresh[: self.wanted - self.shown]
        self.shown += len(fresh)
        left = None if self.wanted is None else self.wanted - self.shown
        # A full page of rows shown already is no reason to stop: many rows may share the
        # bound's date, so the next page asks for those again plus ``left`` more.
        self.more = len(items) >= asked and (left is None or left > 0)
        if self.more:
            self.bound = created(items[-1])
            again = len([item for item in items if created(item) == self.bound])
            self.next_query = page_query(self.bound, left, self.newest_first, again)
        return fresh

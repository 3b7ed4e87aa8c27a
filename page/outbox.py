"""The page's writes that Directus has not acknowledged yet, kept across a reload.

Saved in ``localStorage`` so that a reload or a closed tab loses nothing: the next visit sends
them again, and their ids make a second copy impossible. Saved behind, not on every write: a
write answered within ``SAVE_DELAY_MS`` (the usual case) never touches storage. It is saved at
once when it cannot go out now, when the connection drops before its answer, when
``SAVE_DELAY_MS`` pass without one, and when the page goes away.

Each saved write records the tab that owns it; another tab takes over only the writes of tabs
that are gone (``take_over(live_tabs)``), so two open tabs never send each other's writes.
Storage, the tab's id, the timer and the console are inputs: tested in CPython.
"""

import json

from directus_realtime import OutboxFull

from .writes import is_write

KEY = "directus-realtime:outbox"
SAVE_DELAY_MS = 1000
LIMIT = 1000  # writes waiting at most; create_item rejects more with OUTBOX_FULL


class Outbox:
    """``storage``: getItem/setItem/removeItem (``localStorage``); ``tab``: this tab's id;
    ``timer(callback)``: a one-shot timer with ``start(ms)``; ``warn(text)``: the console."""

    def __init__(self, storage, tab: str, timer, warn, limit: int = LIMIT) -> None:
        self.storage = storage
        self.tab = tab
        self.warn = warn
        self.limit = limit
        self.pending = {}  # id -> the write, in the order sent
        self.saved = set()  # ids of this tab's writes in storage
        self.timer = timer(self.on_timer)
        self.armed = False

    def add(self, data: dict, connected: bool) -> None:
        """A write about to be sent; ``OutboxFull`` (and nothing kept) past ``limit``."""
        if len(self.pending) >= self.limit:
            raise OutboxFull(
                "%d messages are waiting for the connection already; wait for them to be "
                "sent before sending more." % len(self.pending)
            )
        self.pending[data["id"]] = data
        if not connected:
            self.save()
        elif not self.armed:
            self.armed = True
            self.timer.start(SAVE_DELAY_MS)

    def done(self, item_id: str) -> None:
        """Stored, or refused for good: nothing left to send."""
        self.pending.pop(item_id, None)
        if item_id in self.saved:
            self.write(self.saved - {item_id})  # (not the newer writes: they are not due yet)

    def take_over(self, live_tabs) -> list:
        """The writes saved by tabs that are gone (a previous visit, a closed tab), claimed
        for this tab at once; the caller sends them. At most ``limit``: the rest wait for the
        next visit. Saved values of the wrong shape are dropped with a console note."""
        entries = self.read()
        room = self.limit - len(self.pending)
        claimed = [
            without_owner(entry)
            for entry in entries
            if (entry.get("tab") not in live_tabs or entry.get("tab") == self.tab)
            and entry["id"] not in self.pending  # (being sent by this tab already)
        ][: max(room, 0)]
        if claimed:
            ids = {data["id"] for data in claimed}
            others = [entry for entry in entries if entry.get("id") not in ids]
            if self.store(others + [owned(data, self.tab) for data in claimed], len(ids)):
                self.saved.update(ids)
        return claimed

    def save(self) -> None:
        """Every pending write into storage (the connection dropped, the page goes away...)."""
        if self.pending:
            self.write(set(self.pending))

    def on_timer(self) -> None:
        self.armed = False
        self.save()

    def read(self) -> list:
        """The saved writes, each as saved (with its ``tab``), of the right shape only."""
        try:
            raw = self.storage.getItem(KEY)
        except Exception as error:
            self.warn("The saved messages cannot be read: " + str(error))
            return []
        if not raw:
            return []
        try:
            entries = json.loads(raw)
        except Exception:  # not only ValueError: deep nesting raises RecursionError
            entries = None
        if not isinstance(entries, list):
            self.warn("Saved messages of the wrong shape were dropped: " + repr(raw[:80]))
            self.remove_all()
            return []
        good = [entry for entry in entries if is_entry(entry)]
        if len(good) != len(entries):
            self.store(good, len(good))  # dropped for good: warned about once
            self.warn(
                "%d saved message(s) of the wrong shape were dropped." % (len(entries) - len(good))
            )
        return good

    def write(self, ids) -> bool:
        """Have exactly this tab's pending writes in ``ids`` in storage, beside other tabs'
        own."""
        mine = self.saved | set(self.pending)
        others = [entry for entry in self.read() if entry.get("id") not in mine]
        ours = [owned(data, self.tab) for key, data in self.pending.items() if key in ids]
        if not self.store(others + ours, len(ours)):
            return False
        self.saved = {key for key in self.pending if key in ids}
        return True

    def store(self, entries: list, count: int) -> bool:
        """``entries`` into storage; False (with a console note) when storage refuses, e.g.
        when it is full."""
        try:
            if entries:
                self.storage.setItem(KEY, json.dumps(entries))
            else:
                self.storage.removeItem(KEY)
        except Exception as error:
            self.warn("%d waiting message(s) could not be saved for a reload: %s" % (count, error))
            return False
        return True

    def remove_all(self) -> None:
        try:
            self.storage.removeItem(KEY)
        except Exception:
            pass


def is_entry(entry) -> bool:
    """A saved write, and its owner tab's id if it has one (a list would not hash)."""
    tab = entry.get("tab") if isinstance(entry, dict) else None
    return is_write(without_owner(entry)) and (tab is None or isinstance(tab, str))


def owned(data: dict, tab: str) -> dict:
    entry = dict(data)
    entry["tab"] = tab
    return entry


def without_owner(entry) -> dict:
    if not isinstance(entry, dict):
        return entry
    return {name: value for name, value in entry.items() if name != "tab"}

"""Where the library's outbox (writes not confirmed yet) lives in the page: ``localStorage``,
shared by the tabs of one origin, so that a reload or a closed tab loses no write.

The library owns the writes and their format (each entry is JSON it made); this store only
keeps them, each under the id of the tab that owns it: ``[{"tab": <id>, "write": <entry>}]``.
A tab loads only its own entries, and takes over (``claim``) the entries of tabs that are gone
(their Web Lock is released: a previous visit, a closed or crashed tab), so two open tabs never
send each other's writes. The library calls ``save(entries)`` after every change of its outbox;
the store writes behind: a write answered within ``SAVE_DELAY_MS`` (the usual case) never
touches storage. It writes at once while the page is not connected (``connected = False``) and
when the page goes away (``flush``). Storage, the tab's id, the timer and the console are
inputs: tested in CPython. Secrets are never written here (an entry is a write's data).
"""

import json

KEY = "directus-realtime:outbox"
SAVE_DELAY_MS = 1000


class OutboxStore:
    """``storage``: getItem/setItem/removeItem (``localStorage``, or None where the browser
    refuses it); ``tab``: this tab's id; ``timer(callback)``: a one-shot timer with
    ``start(ms)``; ``warn(text)``: the console."""

    def __init__(self, storage, tab: str, timer, warn) -> None:
        self.storage = storage
        self.tab = tab
        self.warn = warn
        self.entries = []  # what the library last asked to keep
        self.written = []  # this tab's entries as they are in storage
        self.connected = False  # while False, every save is written at once
        self.timer = timer(self.flush)
        self.armed = False
        self.on_save = None  # called after each save: the library's outbox changed

    # ----- the library's side (load, save) -----

    def load(self) -> list:
        """This tab's entries in storage (those it claimed from gone tabs included)."""
        self.written = [record["write"] for record in self.read() if record["tab"] == self.tab]
        self.entries = list(self.written)
        return list(self.written)

    def save(self, entries: list) -> None:
        self.entries = list(entries)
        if not self.connected:
            self.flush()
        elif not self.armed and self.entries != self.written:
            self.armed = True
            self.timer.start(SAVE_DELAY_MS)
        if self.on_save is not None:
            self.on_save()

    # ----- the page's side -----

    def flush(self) -> None:
        """Have exactly the library's latest entries in storage, beside other tabs' own."""
        self.armed = False
        if self.entries == self.written:
            return  # (an answered write: it never touched storage)
        others = [record for record in self.read() if record["tab"] != self.tab]
        ours = [{"tab": self.tab, "write": entry} for entry in self.entries]
        if self.store(others + ours, len(ours)):
            self.written = list(self.entries)

    def claim(self, live_tabs) -> int:
        """Take over the entries of the tabs not in ``live_tabs`` (ids of the tabs alive);
        returns how many were taken (the library then ``load()``s again)."""
        records = self.read()
        taken = 0
        for record in records:
            if record["tab"] != self.tab and record["tab"] not in live_tabs:
                record["tab"] = self.tab
                taken += 1
        if taken and self.store(records, taken):
            return taken
        return 0

    def others_waiting(self) -> bool:
        """Whether other tabs' entries are in storage (an open tab's, or one still closing)."""
        return any(record["tab"] != self.tab for record in self.read())

    # ----- storage -----

    def read(self) -> list:
        """The records in storage, of the right shape only (the rest dropped, with a note)."""
        try:
            raw = self.storage.getItem(KEY) if self.storage else None
        except Exception as error:
            self.warn("The saved messages cannot be read: " + str(error))
            return []
        if not isinstance(raw, str) or not raw:
            return []
        try:
            records = json.loads(raw)
        except Exception:  # not only ValueError: deep nesting raises RecursionError
            records = None
        if not isinstance(records, list):
            self.warn("Saved messages of the wrong shape were dropped: " + repr(raw[:80]))
            self.store([], 0)
            return []
        good = [record for record in records if is_record(record)]
        if len(good) != len(records):
            self.store(good, len(good))  # dropped for good: warned about once
            self.warn(
                "%d saved message(s) of the wrong shape were dropped." % (len(records) - len(good))
            )
        return good

    def store(self, records: list, count: int) -> bool:
        """``records`` into storage; False (with a console note) when storage refuses, e.g.
        when it is full."""
        if not self.storage:
            return False
        try:
            if records:
                self.storage.setItem(KEY, json.dumps(records))
            else:
                self.storage.removeItem(KEY)
        except Exception as error:
            self.warn("%d waiting message(s) could not be saved for a reload: %s" % (count, error))
            return False
        return True


def is_record(record) -> bool:
    """``{"tab": <str>, "write": <an entry>}``: the entry's own shape is the library's to check."""
    return (
        isinstance(record, dict)
        and isinstance(record.get("tab"), str)
        and record.get("write") is not None
    )

"""``#messages`` as a view of one live query: what the query's changes do to the rows.

The live query (the library's ``client.live``) owns the truth: which rows are in the window,
which are pending (written here, not confirmed), and whether the view is current. This view
only applies each change batch to the list by id (added rows shown in ``date_created`` order,
changed rows updated in place, removed rows taken out), marks the pending rows
(``data-pending``), and says whether what is shown is current (``#messages[data-current]``
and ``body[data-current]``). Batches are applied in the order they came; a large one (a first
load of thousands of rows) is shown a chunk at a time, and the batches after it wait their
turn. ``rows`` (page/rows.py's ``MessageList``), ``marks`` (a dataset-like object, the body's)
and ``spawn`` are inputs: tested in CPython with fakes.

The rows of a restored snapshot wait for the server's (the next change, usually the socket's
first rows, a few tens of milliseconds later) up to ``SAVED_WAIT_MS``, and are then drawn once
with it: drawn at once, they and the layout they bring kept the page from answering the socket
while it opened, and they were often drawn twice. ``timer`` (``timer(callback)`` with
``start(ms)`` and ``cancel()``) makes the wait; without one they are drawn at once.
"""

LARGE = 100  # added rows shown a chunk at a time, with the browser's turn in between
SAVED_WAIT_MS = 100  # the rows of a snapshot wait this long for the server's, at most


class Shown:
    """A batch made by the view: what the live query holds, drawn on an empty list."""

    reason = "initial"
    changed = ()
    removed = ()

    def __init__(self, added: list, current: bool) -> None:
        self.added = added
        self.current = current


class LiveView:
    def __init__(self, live, rows, marks, spawn, after=None, timer=None) -> None:
        self.live = live
        self.rows = rows
        self.marks = marks
        self.spawn = spawn
        self.after = after  # called once each batch is on screen (the guide's console lines)
        self.queue = []  # changes not applied yet, in order
        self.draining = False
        self.pending = set()  # ids marked pending on screen
        self.shown_current = None
        self.saved_wait = timer(self.show_saved) if timer is not None else None
        self.holding = False  # the snapshot's rows wait (saved_wait)
        self.remove_listener = live.listen(self.on_change)

    def on_change(self, change) -> None:
        self.queue.append(change)
        if self.holding:
            if change.reason != "restore":
                self.show_saved(True)
        elif not self.draining:
            self.drain()

    def show_saved(self, with_later=False) -> None:
        """The snapshot's rows wait no longer (the wait is over, or the page says the server's
        rows are not coming soon): drawn alone, or ``with_later`` changes as one batch of
        what the live query holds now (nothing is on screen yet)."""
        if not self.holding:
            return
        self.holding = False
        self.saved_wait.cancel()
        self.saved_wait = None  # (once: the first rows only)
        if with_later:
            self.queue = [Shown(list(self.live.rows), self.queue[-1].current)]
        self.drain()

    def drain(self) -> None:
        """Apply the queued changes now, until one is large or restores a snapshot: that one
        (and what follows it) is shown by ``drain_slowly``, in later tasks (the rows of a
        snapshot are shown after the socket is opened: drawn before, they held it back), or
        waits for the server's rows (``show_saved``)."""
        while self.queue:
            first = self.queue[0]
            if first.reason == "restore" and self.saved_wait is not None:
                self.holding = True
                self.saved_wait.start(SAVED_WAIT_MS)
                return
            if (
                first.reason == "restore"
                or isinstance(first, Shown)
                or len(first.added or ()) > LARGE
            ):
                self.draining = True
                self.spawn(self.drain_slowly())
                return
            change = self.queue.pop(0)
            self.apply(change)
            self.applied(change)

    async def drain_slowly(self) -> None:
        try:
            while self.queue:
                change = self.queue.pop(0)
                for item_id in change.removed or ():
                    self.rows.remove(item_id)
                for item in change.changed or ():
                    self.rows.update(item)
                if change.added:
                    await self.rows.show_many(list(change.added))
                self.applied(change)
        finally:
            self.draining = False

    def apply(self, change) -> None:
        shows = bool(change.added or change.changed)
        if shows:
            self.rows.begin()  # (the reader's place, read before the list changes)
        try:
            for item_id in change.removed or ():
                self.rows.remove(item_id)
            for item in change.changed or ():
                self.rows.update(item)
            for item in change.added or ():
                self.rows.show(item)
        finally:
            if shows:
                self.rows.end()

    def applied(self, change) -> None:
        """``change`` is on screen: what is shown is current if the live query was when it
        made that change (a later one may still wait its turn)."""
        self.mark_pending()
        self.show_current(change.current)
        if self.after is not None:
            self.after()

    def mark_pending(self) -> None:
        now = set(str(item_id) for item_id in self.live.pending)
        for item_id in self.pending - now:
            self.rows.set_pending(item_id, False)
        for item_id in now:  # (a row rolled back and shown again is marked again)
            self.rows.set_pending(item_id, True)
        self.pending = now

    def show_current(self, current: bool) -> None:
        """Whether nothing may be missing from what is shown (also called when the connection
        drops: the live query then says False)."""
        current = bool(current)
        if current == self.shown_current:
            return
        self.shown_current = current
        value = "true" if current else "false"
        self.marks.current = value
        self.rows.list.dataset.current = value

    def close(self) -> None:
        self.remove_listener()

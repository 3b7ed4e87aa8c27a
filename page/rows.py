"""``#messages``: one row per message, in ``date_created`` order, each shown once; the rows are
the live query's window (page/view.py applies its changes here).

``#messages`` holds its rows in chunks (``ol.chunk``) of up to ``CHUNK_ROWS``, and the browser
skips the chunks out of view (``content-visibility: auto``, app.css): over one flat list of
10,000 rows every frame would lay them all out. The chunks are presentational and the rows
are list items, so assistive technology sees one list. Text goes in as text, never as HTML.
The DOM edge of the page: ``document``, ``window``, ``to_js`` and ``next_task`` are inputs.
"""

from .history import created, in_date_order

CHUNK_ROWS = 100  # rows per chunk
SLICE_MS = 8  # rendering time per browser task when a batch is shown, about
CLOCK_EVERY = 8  # rows built between two looks at the clock (each look is a call into JS)
ROW_REM = 3.2  # a row's height, about (app.css)
# Where a row not stored yet sorts when the library gave it no date_created: with the newest.
NOT_STORED_YET = "9999-12-31T23:59:59.999Z"


class MessageList:
    def __init__(self, document, window, to_js, next_task) -> None:
        self.window = window
        self.next_task = next_task
        self.list = document.getElementById("messages")
        # The ids shown, mapped to nothing: a Python reference to each row would keep a JS
        # reference alive per row (10,000 for a long history); rows are found in the DOM.
        self.rows = {}
        self.clock = window.performance
        self.scroll_frame = 0
        self.at_bottom = None  # during a batch: whether the reader was at the newest row
        self.nearest = to_js({"block": "nearest"})
        # (looked up once: each lookup is a call into JS, and every row with a time makes both)
        self.format_time = window.Intl.DateTimeFormat.new(
            to_js([]), to_js({"timeStyle": "medium"})
        ).format
        self.parse_time = window.Date.parse
        # Every row is a clone of this one, filled in first: Python then holds no JS object of
        # the new row but the row itself. (A JS object Python holds lives until MicroPython's
        # next collection: long enough for the browser to keep its wrapper as long as the row,
        # tens of bytes each, 10,000 rows for a long history.)
        self.row = document.createElement("li")
        self.row.className = "message"
        self.row.setAttribute("role", "listitem")  # in #messages (role list), not in its chunk
        self.cells = []
        for name in ("user", "text"):
            cell = document.createElement("span")
            cell.className = name
            self.row.append(cell)
            self.cells.append(cell)
        self.cells.append(document.createElement("time"))
        self.row.append(self.cells[-1])
        self.row_timed = False  # whether the time cell holds a time
        self.chunk = document.createElement("ol")
        self.chunk.className = "chunk"
        self.chunk.setAttribute("role", "none")

    def __contains__(self, item_id) -> bool:
        return str(item_id) in self.rows

    def find(self, item_id):
        """The row of ``item_id`` (a string), or None."""
        if item_id not in self.rows:
            return None
        return self.list.querySelector('li[data-id="%s"]' % self.window.CSS.escape(item_id))

    def make_row(self, item: dict):
        """An ``li.message[data-id]`` for ``item``: li > span.user + span.text + time."""
        user, text, when = self.cells
        user.textContent = str(item.get("user") or "")
        text.textContent = str(item.get("text") or "")
        stamp = item.get("date_created")
        if stamp:
            when.dateTime = stamp
            when.textContent = self.format_time(self.parse_time(stamp))
            self.row_timed = True
        elif self.row_timed:
            when.removeAttribute("datetime")
            when.textContent = ""
            self.row_timed = False
        row = self.row.cloneNode(True)
        # (attributes, not dataset: a dataset is one more JS object per row)
        row.setAttribute("data-id", str(item.get("id")))
        row.setAttribute("data-created", created(item) or NOT_STORED_YET)
        return row

    def make_chunk(self, size: int):
        """An empty ``ol.chunk`` for about ``size`` rows."""
        chunk = self.chunk.cloneNode(False)
        if size < CHUNK_ROWS:  # the size it is taken for before it was ever laid out
            chunk.style.containIntrinsicBlockSize = "auto %.1frem" % (ROW_REM * size)
        return chunk

    def first_row(self):
        chunk = self.list.firstElementChild
        return chunk.firstElementChild if chunk else None

    def last_row(self):
        chunk = self.list.lastElementChild
        return chunk.lastElementChild if chunk else None

    def oldest_created(self):
        row = self.first_row()
        return row.getAttribute("data-created") if row else None

    def newest_created(self):
        row = self.last_row()
        return row.getAttribute("data-created") if row else None

    def set_pending(self, item_id, pending: bool) -> None:
        """Mark the row of a write not confirmed yet (``data-pending``), or unmark it."""
        row = self.find(str(item_id))
        if not row:  # (None, or a JS null)
            return
        if pending:
            row.setAttribute("data-pending", "true")
            # (its time comes with the server's row)
            if row.getAttribute("data-created") == NOT_STORED_YET:
                row.lastChild.textContent = "sending…"
        else:
            row.removeAttribute("data-pending")

    def begin(self) -> None:
        """A batch of changes begins: whether the reader is at the newest row is read now,
        while the list is as the browser last laid it out (read after a change, it makes the
        browser lay the page out again at once), and kept until ``end()``."""
        self.at_bottom = None
        self.at_bottom = self.reader_at_bottom()

    def end(self) -> None:
        self.at_bottom = None

    def reader_at_bottom(self) -> bool:
        """New messages are followed only when the reader is at the newest one already."""
        if self.at_bottom is not None:
            return self.at_bottom
        return self.list.getBoundingClientRect().bottom <= self.window.innerHeight + 60

    def follow_newest(self, row) -> None:
        """Scroll ``row`` into view at the next frame (when the browser lays out anyway), with
        a bound JS function so the frame does not call into Python; a newer row replaces an
        older one's pending scroll."""
        self.window.cancelAnimationFrame(self.scroll_frame)
        self.scroll_frame = self.window.requestAnimationFrame(
            row.scrollIntoView.bind(row, self.nearest)
        )

    def remove_row(self, row) -> None:
        chunk = row.parentElement
        row.remove()
        if not chunk.firstElementChild:
            chunk.remove()

    def show(self, item: dict) -> None:
        """Show one item once, in ``date_created`` order (a live event)."""
        item_id = str(item.get("id"))
        if item_id in self.rows:
            return  # already shown (history and a live event overlap, or a replay)
        row = self.make_row(item)
        self.rows[item_id] = None
        follow = self.reader_at_bottom()
        newest_chunk = self.list.lastElementChild
        after = newest_chunk.lastElementChild if newest_chunk else None
        stamp = created(item) or NOT_STORED_YET
        newest = not after or after.getAttribute("data-created") <= stamp
        if not newest_chunk or (newest and newest_chunk.childElementCount >= CHUNK_ROWS):
            newest_chunk = self.make_chunk(1)
            self.list.append(newest_chunk)
        if newest:  # the usual case
            newest_chunk.append(row)
        else:  # walk back to its place
            while after and after.getAttribute("data-created") > stamp:
                after = previous_row(after)
            if after:
                after.after(row)
            else:  # (a JS null, which is not None in Pyodide)
                self.list.firstElementChild.prepend(row)
        if follow and newest:
            self.follow_newest(row)

    async def show_many(self, items: list) -> None:
        """Show a batch (history, catch-up, older messages) without blocking the page: rows
        built for about ``SLICE_MS`` at a time, then the browser's turn; a chunk goes into the
        DOM in one call when it is full, or when the slice ends in its middle (it is filled on
        in place); layout read once, not per row."""
        fresh = in_date_order([i for i in items if str(i.get("id")) not in self.rows])
        if not fresh:
            return
        if len(fresh) > CLOCK_EVERY:
            # Not in the task that decoded the batch: that one has had its share.
            await self.next_task()
        oldest, newest = self.oldest_created(), self.newest_created()
        older = oldest is not None and created(fresh[-1]) <= oldest
        newer = newest is None or created(fresh[0]) >= newest
        if not (older or newer):  # interleaved with what is shown: each in its place
            for item in fresh:
                self.show(item)
            return
        follow = newer and self.reader_at_bottom()
        parts = [fresh[i : i + CHUNK_ROWS] for i in range(0, len(fresh), CHUNK_ROWS)]
        if older:
            parts.reverse()  # chunks go in at the top, the newest first
        slice_ends = self.clock.now() + SLICE_MS
        for n, part in enumerate(parts):
            chunk = self.make_chunk(len(part))
            placed = False
            for i, item in enumerate(part):
                item_id = str(item.get("id"))
                if item_id in self.rows:
                    continue  # shown meanwhile, by a live event during a pause
                self.rows[item_id] = None
                chunk.append(self.make_row(item))
                if i % CLOCK_EVERY == CLOCK_EVERY - 1 and self.clock.now() >= slice_ends:
                    if not placed:
                        self.place(chunk, older)
                        placed = True
                    await self.next_task()
                    slice_ends = self.clock.now() + SLICE_MS
            if not placed and chunk.firstElementChild:
                self.place(chunk, older)
            if n + 1 < len(parts) and self.clock.now() >= slice_ends:
                await self.next_task()
                slice_ends = self.clock.now() + SLICE_MS
        if newer and follow:
            self.follow_newest(self.last_row())

    def place(self, chunk, older: bool) -> None:
        if older:
            self.list.prepend(chunk)
        else:
            self.list.append(chunk)

    def update(self, item: dict) -> None:
        """Change a row in place; one whose ``date_created`` changed (a write just stored)
        moves to its place."""
        row = self.find(str(item.get("id")))
        if not row:  # (None, or a JS null)
            self.show(item)
            return
        stamp = item.get("date_created")
        if stamp and stamp != row.getAttribute("data-created") and self.fits(row, stamp):
            row.setAttribute("data-created", stamp)  # (a write just stored, in its place)
            when = row.lastChild
            when.dateTime = stamp
            when.textContent = self.format_time(self.parse_time(stamp))
        elif stamp and stamp != row.getAttribute("data-created"):
            pending = row.hasAttribute("data-pending")
            self.remove(item.get("id"))
            self.show(item)
            if pending:
                self.set_pending(item.get("id"), True)
            return
        if "user" in item:
            row.querySelector(".user").textContent = str(item.get("user") or "")
        if "text" in item:
            row.querySelector(".text").textContent = str(item.get("text") or "")

    def fits(self, row, stamp: str) -> bool:
        """Whether ``row`` stays in ``date_created`` order with ``stamp`` as its time (the usual
        case of a write just stored: the newest row): then it changes in place."""
        before = previous_row(row)
        if before and before.getAttribute("data-created") > stamp:
            return False
        after = row.nextElementSibling
        if not after:
            chunk = row.parentElement.nextElementSibling
            after = chunk.firstElementChild if chunk else None
        return not after or stamp <= after.getAttribute("data-created")

    def remove(self, item_id) -> None:
        row = self.find(str(item_id))
        self.rows.pop(str(item_id), None)
        if row:
            self.remove_row(row)


def previous_row(row):
    """The row before ``row``, across chunks; None (or a JS null) before the first."""
    before = row.previousElementSibling
    if before:
        return before
    chunk = row.parentElement.previousElementSibling
    return chunk.lastElementChild if chunk else None

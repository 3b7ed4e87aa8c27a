"""``#messages``: one row per message, in ``date_created`` order, each shown once; the rows are
the live query's window (page/view.py applies its changes here).

``#messages`` holds its rows in chunks (``ol.chunk``) of up to ``CHUNK_ROWS``, and the browser
skips the chunks out of view (``content-visibility: auto``, app.css): over one flat list of
10,000 rows every frame would lay them all out. The chunks are presentational and the rows
are list items, so assistive technology sees one list. Text goes in as text, never as HTML.
The DOM edge of the page: ``document``, ``window``, ``to_js`` and ``next_task`` are inputs.
"""

from .history import created, in_date_order

CHUNK_ROWS = 100  # rows per chunk, and per browser task when a batch is shown
ROW_REM = 3.2  # a row's height, about (app.css)
# Where a row not stored yet sorts when the library gave it no date_created: with the newest.
NOT_STORED_YET = "9999-12-31T23:59:59.999Z"


class MessageList:
    def __init__(self, document, window, to_js, next_task) -> None:
        self.window = window
        self.next_task = next_task
        self.list = document.getElementById("messages")
        self.rows = {}  # id -> li.message, in the DOM
        self.scroll_frame = 0
        self.nearest = to_js({"block": "nearest"})
        self.time = window.Intl.DateTimeFormat.new(to_js([]), to_js({"timeStyle": "medium"}))
        self.row = document.createElement("li")  # cloned for every row (fewer calls into JS)
        self.row.className = "message"
        self.row.setAttribute("role", "listitem")  # in #messages (role list), not in its chunk
        for name in ("user", "text"):
            cell = document.createElement("span")
            cell.className = name
            self.row.append(cell)
        self.row.append(document.createElement("time"))
        self.chunk = document.createElement("ol")
        self.chunk.className = "chunk"
        self.chunk.setAttribute("role", "none")

    def __contains__(self, item_id) -> bool:
        return str(item_id) in self.rows

    def make_row(self, item: dict):
        """An ``li.message[data-id]`` for ``item``: li > span.user + span.text + time."""
        row = self.row.cloneNode(True)
        data = row.dataset
        data.id = str(item.get("id"))
        data.created = created(item) or NOT_STORED_YET
        user = row.firstChild
        user.textContent = str(item.get("user") or "")
        text = user.nextSibling
        text.textContent = str(item.get("text") or "")
        if item.get("date_created"):
            when = text.nextSibling
            when.dateTime = item["date_created"]
            when.textContent = self.time.format(self.window.Date.new(item["date_created"]))
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
        return row.dataset.created if row else None

    def newest_created(self):
        row = self.last_row()
        return row.dataset.created if row else None

    def set_pending(self, item_id, pending: bool) -> None:
        """Mark the row of a write not confirmed yet (``data-pending``), or unmark it."""
        row = self.rows.get(str(item_id))
        if row is None:
            return
        if pending:
            row.dataset.pending = "true"
            if row.dataset.created == NOT_STORED_YET:  # (its time comes with the server's row)
                row.lastChild.textContent = "sending…"
        else:
            row.removeAttribute("data-pending")

    def reader_at_bottom(self) -> bool:
        """New messages are followed only when the reader is at the newest one already."""
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
        row = self.rows[item_id] = self.make_row(item)
        follow = self.reader_at_bottom()
        newest_chunk = self.list.lastElementChild
        after = newest_chunk.lastElementChild if newest_chunk else None
        newest = not after or after.dataset.created <= row.dataset.created
        if not newest_chunk or (newest and newest_chunk.childElementCount >= CHUNK_ROWS):
            newest_chunk = self.make_chunk(1)
            self.list.append(newest_chunk)
        if newest:  # the usual case
            newest_chunk.append(row)
        else:  # walk back to its place
            while after and after.dataset.created > row.dataset.created:
                after = previous_row(after)
            if after:
                after.after(row)
            else:  # (a JS null, which is not None in Pyodide)
                self.list.firstElementChild.prepend(row)
        if follow and newest:
            self.follow_newest(row)

    async def show_many(self, items: list) -> None:
        """Show a batch (history, catch-up, older messages) without blocking the page: rows
        built a chunk at a time, one DOM call per chunk, the browser's turn in between, and
        layout read once, not per row."""
        fresh = in_date_order([i for i in items if str(i.get("id")) not in self.rows])
        if not fresh:
            return
        oldest, newest = self.oldest_created(), self.newest_created()
        older = oldest is not None and created(fresh[-1]) <= oldest
        newer = newest is None or created(fresh[0]) >= newest
        if not (older or newer):  # interleaved with what is shown: each in its place
            for item in fresh:
                self.show(item)
            return
        follow = newer and self.reader_at_bottom()
        slices = [fresh[i : i + CHUNK_ROWS] for i in range(0, len(fresh), CHUNK_ROWS)]
        for n, part in enumerate(reversed(slices) if older else slices):
            chunk = self.make_chunk(len(part))
            for item in part:
                row = self.rows[str(item.get("id"))] = self.make_row(item)
                chunk.append(row)
            if older:
                self.list.prepend(chunk)
            else:
                self.list.append(chunk)
            if n + 1 < len(slices):
                await self.next_task()
        if newer and follow:
            self.follow_newest(self.last_row())

    def update(self, item: dict) -> None:
        """Change a row in place; one whose ``date_created`` changed (a write just stored)
        moves to its place."""
        row = self.rows.get(str(item.get("id")))
        if row is None:
            self.show(item)
            return
        if item.get("date_created") and item["date_created"] != row.dataset.created:
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

    def remove(self, item_id) -> None:
        row = self.rows.pop(str(item_id), None)
        if row is not None:
            self.remove_row(row)


def previous_row(row):
    """The row before ``row``, across chunks; None (or a JS null) before the first."""
    before = row.previousElementSibling
    if before:
        return before
    chunk = row.parentElement.previousElementSibling
    return chunk.lastElementChild if chunk else None

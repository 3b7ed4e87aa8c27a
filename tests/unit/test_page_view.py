"""Unit tests of page/view.py: the live query's changes applied to the rows by id, pending rows
marked, and whether the view is current said; large batches shown a chunk at a time, in order.

The live query and the list are fakes with the interfaces the view uses (the library's
``LiveQuery``: ``listen``, ``pending``, ``current``; page/rows.py's ``MessageList``: ``show``,
``show_many``, ``update``, ``remove``, ``set_pending``, ``list.dataset``).
"""

import asyncio

from page.view import LARGE, SAVED_WAIT_MS, LiveView


class Data:
    """A DOM dataset: attributes set by name."""


class Change:
    def __init__(self, reason="event", added=(), changed=(), removed=(), current=True) -> None:
        self.reason = reason
        self.added = list(added)
        self.changed = list(changed)
        self.removed = list(removed)
        self.current = current


class Live:
    def __init__(self) -> None:
        self.listeners = []
        self.pending = set()
        self.current = False

    def listen(self, callback):
        self.listeners.append(callback)
        return lambda: self.listeners.remove(callback)

    def emit(self, change) -> None:
        self.current = change.current
        for callback in list(self.listeners):
            callback(change)


class Rows:
    """The list on screen as a dict id -> row, and every call made, in order."""

    def __init__(self) -> None:
        self.shown = {}
        self.pending = set()
        self.calls = []
        self.batches = []  # len(calls) at each begin() and end()
        self.list = type("List", (), {"dataset": Data()})()

    def begin(self) -> None:
        self.batches.append(len(self.calls))

    def end(self) -> None:
        self.batches.append(len(self.calls))

    def show(self, item) -> None:
        self.calls.append(("show", item["id"]))
        self.shown.setdefault(item["id"], dict(item))

    async def show_many(self, items) -> None:
        self.calls.append(("show_many", len(items)))
        for item in items:
            self.shown.setdefault(item["id"], dict(item))
            await asyncio.sleep(0)

    def update(self, item) -> None:
        self.calls.append(("update", item["id"]))
        self.shown.setdefault(item["id"], {}).update(item)

    def remove(self, item_id) -> None:
        self.calls.append(("remove", item_id))
        self.shown.pop(item_id, None)

    def set_pending(self, item_id, pending) -> None:
        (self.pending.add if pending else self.pending.discard)(item_id)


def row(n, text=None) -> dict:
    return {"id": "id-%d" % n, "user": "u", "text": text or "m%d" % n}


def make(spawned=None):
    live, rows, marks = Live(), Rows(), Data()
    after = []
    view = LiveView(
        live, rows, marks, (spawned if spawned is not None else []).append, lambda: after.append(1)
    )
    return view, live, rows, marks, after


def test_added_changed_and_removed_rows_are_applied_by_id():
    view, live, rows, _, after = make()
    live.emit(Change("initial", added=[row(1), row(2), row(3)]))
    live.emit(Change("catch-up", changed=[row(2, "edited")], removed=["id-3"], added=[row(4)]))
    assert rows.shown == {"id-1": row(1), "id-2": row(2, "edited"), "id-4": row(4)}
    assert after == [1, 1]  # once per batch, after it is on screen
    # removals first, then edits, then additions: an id removed and added again in one batch
    # ends shown
    assert rows.calls[3:] == [("remove", "id-3"), ("update", "id-2"), ("show", "id-4")]


def test_the_readers_place_is_read_once_per_batch_before_the_list_changes():
    view, live, rows, _, _ = make()
    live.emit(Change("initial", added=[row(1), row(2)]))
    live.emit(Change("event", removed=["id-1"], added=[row(3)]))
    # begin() before the batch's first call, end() after its last
    assert rows.batches == [0, 2, 2, 4]
    live.emit(Change("event", removed=["id-2"]))  # nothing shown: nothing to follow
    assert rows.batches == [0, 2, 2, 4] and rows.calls[-1] == ("remove", "id-2")


def test_pending_rows_are_marked_and_unmarked_when_confirmed():
    view, live, rows, _, _ = make()
    live.pending = {"id-9"}
    live.emit(Change("write", added=[row(9)], current=True))
    assert rows.pending == {"id-9"}
    live.pending = set()
    live.emit(Change("confirm", changed=[row(9)]))
    assert rows.pending == set()


def test_whether_the_view_is_current_is_said_on_the_list_and_the_body():
    view, live, rows, marks, _ = make()
    live.emit(Change("event", added=[row(1)], current=False))
    assert marks.current == "false" and rows.list.dataset.current == "false"
    live.emit(Change("catch-up", current=True))
    assert marks.current == "true" and rows.list.dataset.current == "true"
    view.show_current(False)  # the connection dropped
    assert marks.current == "false"


def test_a_large_batch_is_shown_a_chunk_at_a_time_and_later_batches_wait_their_turn():
    spawned = []
    view, live, rows, _, after = make(spawned)
    many = [row(n) for n in range(LARGE + 50)]
    live.emit(Change("initial", added=many))
    live.emit(Change("event", removed=["id-0"], changed=[row(1, "edited")]))
    assert rows.calls == [] and len(spawned) == 1  # nothing applied before the large batch

    asyncio.run(spawned[0])
    assert rows.calls[0] == ("show_many", LARGE + 50)
    assert rows.calls[1:] == [("remove", "id-0"), ("update", "id-1")]
    assert "id-0" not in rows.shown and rows.shown["id-1"]["text"] == "edited"
    assert after == [1, 1] and not view.draining

    live.emit(Change("event", added=[row(999)]))  # small again: applied at once
    assert "id-999" in rows.shown


def test_current_is_said_when_the_change_that_made_it_current_is_on_screen():
    spawned, said = [], []
    live, rows, marks = Live(), Rows(), Data()
    view = LiveView(live, rows, marks, spawned.append, lambda: said.append(marks.current))
    live.emit(Change("check", added=[row(n) for n in range(LARGE + 1)], current=False))
    live.emit(Change("check", current=True))  # the live query is current; the screen is not
    assert live.current and said == []
    asyncio.run(spawned[0])
    assert said == ["false", "true"] and view.shown_current


def test_the_rows_of_a_snapshot_are_shown_in_a_later_task():
    spawned = []
    view, live, rows, marks, _ = make(spawned)
    live.emit(Change("restore", added=[row(1), row(2)], current=False))
    live.emit(Change("initial", added=[row(3)], current=True))
    assert rows.calls == [] and len(spawned) == 1  # (the page opens its socket meanwhile)
    asyncio.run(spawned[0])
    assert rows.calls == [("show_many", 2), ("show_many", 1)] and marks.current == "true"


class Timer:
    """A one-shot timer that fires when the test says so."""

    def __init__(self, callback) -> None:
        self.callback = callback
        self.started = []
        self.cancelled = 0

    def start(self, ms) -> None:
        self.started.append(ms)

    def cancel(self) -> None:
        self.cancelled += 1


def make_waiting():
    """A view with a timer, and the live query holding a restored snapshot of two rows."""
    spawned, timers = [], []
    live, rows, marks = Live(), Rows(), Data()
    live.rows = [row(1), row(2)]

    def timer(callback):
        timers.append(Timer(callback))
        return timers[-1]

    view = LiveView(live, rows, marks, spawned.append, None, timer)
    live.emit(Change("restore", added=[row(1), row(2)], current=False))
    return view, live, rows, marks, spawned, timers[0]


def test_the_rows_of_a_snapshot_wait_for_the_servers_and_are_drawn_once_with_them():
    view, live, rows, marks, spawned, timer = make_waiting()
    assert rows.calls == [] and spawned == [] and timer.started == [SAVED_WAIT_MS]

    live.rows = [row(2), row(3)]  # the server's rows: one gone, one new
    live.emit(Change("catch-up", added=[row(3)], removed=["id-1"], current=True))
    assert timer.cancelled == 1 and len(spawned) == 1
    asyncio.run(spawned[0])
    # one batch, what the live query holds now: nothing drawn and taken out again
    assert rows.calls == [("show_many", 2)] and set(rows.shown) == {"id-2", "id-3"}
    assert marks.current == "true"


def test_the_rows_of_a_snapshot_are_drawn_alone_when_the_servers_are_late():
    view, live, rows, marks, spawned, timer = make_waiting()
    timer.callback()  # the wait is over
    assert len(spawned) == 1
    asyncio.run(spawned[0])
    assert rows.calls == [("show_many", 2)] and marks.current == "false"

    live.emit(Change("catch-up", added=[row(3)], removed=["id-1"], current=True))
    assert rows.calls[1:] == [("remove", "id-1"), ("show", "id-3")]
    assert marks.current == "true"


def test_the_page_can_have_the_rows_of_a_snapshot_drawn_at_once():
    view, live, rows, _, spawned, timer = make_waiting()
    view.show_saved()  # e.g. the socket is authenticated, or down
    assert timer.cancelled == 1 and len(spawned) == 1
    asyncio.run(spawned[0])
    assert rows.calls == [("show_many", 2)]
    view.show_saved()  # (once)
    assert len(spawned) == 1


def test_close_stops_listening():
    view, live, rows, _, _ = make()
    view.close()
    live.emit(Change("event", added=[row(1)]))
    assert rows.shown == {}

"""``client.live(collection, query=...)``: the asyncio driver of one ``LiveWindow``.

The rules are in ``window.py`` (sans-I/O, tested without a server); this module only wires
them to a ``RealtimeClient`` through its public API: one subscription (without ``event``, so
that every ``init`` carries the window), ``request()`` for the checks' reads, ``create`` /
``update`` / ``delete`` for writes, ``on_state`` to learn that the subscription is gone, and
one timer for the next check.
"""

from .client import DeadlineTimer, Waiter, _call_later, _data_of, _now, _safely, _then
from .window import CHECK_EVERY, Change, LiveWindow, Read, new_id

# typing.TYPE_CHECKING without importing typing at run time (MicroPython has none).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .client import RealtimeClient, Subscription


# A read's reply with more rows than this is applied in a task of its own: on MicroPython,
# decoding a page of rows and applying it in the socket's message task made one long task.
APPLY_LATER_ROWS = 100

# Collections whose key Directus numbers itself (it refused a client-chosen id): creates are
# sent without an id.
_NUMBERED = set()  # type: set[str]


class LiveQuery:
    """The rows of one query, kept equal to what the server would answer now.

    ``rows`` (in the query's order, pending writes included), ``current``, ``pending``,
    ``is_pending(id)``, ``listen(callback)``; ``create`` / ``update`` / ``delete`` (optimistic:
    pending at once, then confirmed or rolled back); ``check()``; ``extend(n)``; ``close()``.
    Made by ``RealtimeClient.live()``.
    """

    def __init__(
        self,
        client: "RealtimeClient",
        collection: str,
        query: "dict[str, Any] | None" = None,
        store: "Any" = None,
        check_every: "float | None" = CHECK_EVERY,
        updated_field: "str | None" = "date_updated",
    ) -> None:
        self._client = client
        self._window = LiveWindow(collection, query, check_every, updated_field)
        self._store = store
        self._listeners: list[Callable[[Change], object]] = []
        self._timer = DeadlineTimer(self._on_timer)  # calls the window's tick()
        self._closed = False
        self._sub: Subscription | None = None
        self._remove_state = client.on_state(self._on_state)
        if store is not None:
            try:
                self._window.restore(store.load())
            except Exception as error:  # an unreadable snapshot is no snapshot
                print("directus_realtime: the snapshot store failed to load: " + repr(error))
        for message, waiter in client.pending_writes():  # e.g. restored from the store
            if message.get("collection") == collection:
                self._adopt(message, waiter)
        self._subscribe()
        self._drain()

    # ----- reading -----

    @property
    def collection(self) -> str:
        return self._window.collection

    @property
    def query(self) -> "dict[str, Any]":
        return dict(self._window.query)

    @property
    def rows(self) -> "list[dict[str, Any]]":
        return self._window.rows

    @property
    def current(self) -> bool:
        return self._window.current

    @property
    def pending(self) -> "set[Any]":
        return self._window.pending

    def is_pending(self, item_id: "Any") -> bool:
        return self._window.is_pending(item_id)

    @property
    def checks(self) -> int:
        """How many checks ran (fingerprints, and reads when one was needed)."""
        return self._window.checks

    def listen(self, callback: "Callable[[Change], object]") -> "Callable[[], None]":
        """Call ``callback(change)`` with each batch of changes; returns a remover.

        When the window already holds rows, the callback gets them at once as one batch
        (``reason`` "initial" once subscribed, else "restore").
        """
        self._listeners.append(callback)
        rows = self._window.rows
        if rows:
            reason = "initial" if self._window.subscribed else "restore"
            _safely(callback, Change(reason, rows, [], [], self.current))

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    # ----- acting -----

    def check(self) -> None:
        """Check now that the window is what the server has (the page calls it when the tab
        comes back: ``visibilitychange``, ``pageshow``, ``online``)."""
        self._window.check(_now())
        self._drain()

    def extend(self, n: int) -> None:
        """Grow the window by ``n`` rows (a page's "Load older")."""
        self._window.extend(n, _now())
        self._subscribe()
        self._drain()

    def create(self, data: "dict[str, Any]") -> Waiter:
        """Create a row (with a client id when ``data`` has none); shown at once as pending.
        The Waiter gives the stored row, or raises what made Directus refuse it."""
        data = dict(data)
        own_id = data.get("id") is None
        if own_id:
            data["id"] = new_id()
        wid = self._window.write("create", data["id"], data, _now())
        if own_id and self.collection in _NUMBERED:
            return self._track(wid, self._create_numbered(data), "create", data["id"])
        waiter = self._client.create(self.collection, data)
        if own_id:
            waiter = self._unless_numbered(waiter, data)
        return self._track(wid, waiter, "create", data["id"])

    def _create_numbered(self, data: "dict[str, Any]") -> Waiter:
        """Send without the local id (the collection numbers its rows); the pending row keeps
        the local id until the stored row replaces it. A repeat could store it twice: Directus
        numbering its rows makes such creates at-least-once."""
        sent = dict(data)
        sent.pop("id", None)
        return self._client.create(self.collection, sent)

    def _unless_numbered(self, waiter: Waiter, data: "dict[str, Any]") -> Waiter:
        """A collection whose key Directus numbers refuses a client-chosen id (FORBIDDEN, or
        INVALID_PAYLOAD): learn it for the collection and send again without one."""
        out = Waiter()

        def settle(done: Waiter) -> None:
            error = done.exception()
            code = getattr(error, "code", None)
            if error is not None and code in ("FORBIDDEN", "INVALID_PAYLOAD"):
                again = self._create_numbered(data)
                again.add_done_callback(settle_again)
            elif error is not None:
                out.set_exception(error)
            else:
                out.set_result(done.result())

        def settle_again(done: Waiter) -> None:
            error = done.exception()
            if error is not None:
                out.set_exception(error)
            else:
                _NUMBERED.add(self.collection)  # stored without an id: the key is numbered
                out.set_result(done.result())

        waiter.add_done_callback(settle)
        return out

    def update(self, item_id: "Any", data: "dict[str, Any]") -> Waiter:
        wid = self._window.write("update", item_id, dict(data), _now())
        waiter = self._client.update(self.collection, dict(data), id=item_id)
        return self._track(wid, waiter, "update", item_id)

    def delete(self, item_id: "Any") -> Waiter:
        wid = self._window.write("delete", item_id, None, _now())
        return self._track(wid, self._client.delete(self.collection, id=item_id), "delete", item_id)

    def _adopt(self, message: "dict[str, Any]", waiter: Waiter) -> None:
        """Show a write made before this live query (restored from the outbox store)."""
        action, data = message.get("action"), message.get("data")
        item_id = message.get("id")
        if action == "create" and isinstance(data, dict):
            item_id = data.get("id")
        if action not in ("create", "update", "delete") or item_id is None:
            return
        wid = self._window.write(
            str(action), item_id, data if isinstance(data, dict) else None, _now()
        )
        self._track(wid, _then(waiter, _data_of), str(action), item_id)

    def close(self) -> None:
        """Stop following the query (the rows stay as they are)."""
        self._closed = True
        self._remove_state()
        if self._sub is not None:
            self._sub.unsubscribe()
            self._sub = None
        self._timer.cancel()

    def __repr__(self) -> str:
        return "<LiveQuery %s: %d rows%s%s>" % (
            self.collection,
            len(self._window.rows),
            ", current" if self.current else "",
            ", %d pending" % len(self.pending) if self.pending else "",
        )

    # ----- internals -----

    def _subscribe(self) -> None:
        old = self._sub
        message = self._window.subscribe_message()
        self._sub = self._client._subscribe_now(message["collection"], query=message.get("query"))
        sub = self._sub
        sub.listen(lambda m: self._on_message(sub, m))
        if old is not None:
            old.unsubscribe()

    def _on_message(self, sub: "Subscription", message: "dict[str, Any]") -> None:
        if sub is not self._sub or self._closed:
            return
        self._window.subscribed_message(message, _now())
        self._drain()

    def _on_state(self, state: str, _client: object) -> None:
        if state != "open" and self._window.subscribed:
            self._window.disconnected(_now())
            self._drain()

    def _track(self, wid: int, waiter: Waiter, action: str, item_id: "Any") -> Waiter:
        out = Waiter()

        def settle(done: Waiter) -> None:
            error = done.exception()
            if error is None:
                row = done.result()
                self._window.write_done(wid, row, _now())
                out.set_result(row)
                self._drain()
                return
            out.set_exception(error)
            kept = self._kept_write(action, item_id)
            if kept is not None:  # the outbox keeps it (stopped, or sign-in refused): pending
                _then(kept, _data_of).add_done_callback(later)
                return
            self._window.write_failed(wid, error, _now())
            self._drain()

        def later(done: Waiter) -> None:
            error = done.exception()
            if error is None:
                self._window.write_done(wid, done.result(), _now())
            else:
                kept = self._kept_write(action, item_id)
                if kept is not None:
                    _then(kept, _data_of).add_done_callback(later)
                    return
                self._window.write_failed(wid, error, _now())
            self._drain()

        waiter.add_done_callback(settle)
        self._drain()
        return out

    def _kept_write(self, action: str, item_id: "Any") -> "Waiter | None":
        """The waiter of this write when the client's outbox still keeps it, unsettled."""
        for message, waiter in self._client.pending_writes():
            if message.get("collection") != self.collection or message.get("action") != action:
                continue
            data = message.get("data")
            key = data.get("id") if action == "create" and isinstance(data, dict) else None
            key = key if key is not None else message.get("id")
            if key is not None and str(key) == str(item_id) and not waiter.done():
                return waiter
        return None

    def _drain(self) -> None:
        if self._closed:
            return
        for action in self._window.actions():
            if isinstance(action, Read):
                self._read(action)
            else:
                self._report(action)
        self._schedule()

    def _read(self, read: Read) -> None:
        waiter = self._client.request(read.message)

        def settle(done: Waiter) -> None:
            error = done.exception()
            if error is None:
                reply = done.result()
                data = reply.get("data") if isinstance(reply, dict) else None
                if isinstance(data, list) and len(data) > APPLY_LATER_ROWS:
                    _call_later(0, lambda: answer(data))
                    return
                self._window.answered(read.tag, data, _now())
            else:
                self._window.failed(read.tag, error, _now())
            self._drain()

        def answer(data: "Any") -> None:
            if not self._closed:  # (the window ignores the answer of a read it gave up)
                self._window.answered(read.tag, data, _now())
                self._drain()

        waiter.add_done_callback(settle)

    def _report(self, change: Change) -> None:
        if self._store is not None and change.reason not in ("restore", "write"):
            try:
                self._store.save(self._window.snapshot())
            except Exception as error:  # a full disk must not stop the live query
                print("directus_realtime: the snapshot store failed to save: " + repr(error))
        for callback in list(self._listeners):
            _safely(callback, change)

    def _schedule(self) -> None:
        self._timer.schedule(self._window.next_deadline())

    def _on_timer(self) -> None:
        if not self._closed:
            self._window.tick(_now())
            self._drain()

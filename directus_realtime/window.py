"""The live query's engine, sans-I/O: a window of rows kept equal to the server's answer.

``LiveWindow`` owns one query's rows (fields, filter, sort, limit) and every rule that keeps
them true: live events, the catch-up after each (re)subscription, the periodic check that finds
what the bus between Directus instances lost, and the optimistic writes made here. It does no
I/O and reads no clock: a driver (``live.py``) feeds it what happened, with the time::

    window.subscribed_message(message, now)   # init / create / update / delete
    window.disconnected(now)                  # the subscription is gone until the next init
    window.answered(tag, data, now)           # the reply to a read it asked for
    window.failed(tag, error, now)            # ... or its error
    window.tick(now)                          # the time from next_deadline() has come
    window.check(now)                         # check now (the tab came back, e.g.)
    window.write(op, item_id, data, now)      # an optimistic write; then write_done/_failed

and drains ``window.actions()``: ``Read(tag, message)`` (send this ``items`` read; report back
with answered/failed) and ``Change`` (what to tell listeners). Every row goes through one
id-keyed map (``_base``), so no row shows twice and each change is reported once.

How the window converges after a gap (creates, edits and deletes alike):

* A subscription made without ``event`` makes Directus send ``init`` with the query's rows:
  after every (re)subscription the window becomes exactly that answer.
* Directus reads ``init`` before it registers the subscription, and its bus (Redis between
  instances) can lose events while the socket stays open. So a *check* runs at once after each
  ``init`` and then every ``check_every`` seconds: a fingerprint of the filtered collection
  (``aggregate``: count, newest ``updated_field`` and newest sort field) decides whether to
  look closer; if it changed (or after an ``init``, an event or a write: the window then no
  longer matches the last fingerprint) a light read of the window (ids and
  ``updated_field`` only) shows which rows are new, changed or gone; only those are read in
  full. A collection without ``updated_field`` makes each check re-read the window: slower,
  still correct.
* A delete that empties a place in a full window, or ``extend()``, makes the window stale: a
  light read comes at once (the row that moves into the window is one no event announces).
* A row an event touched after a check's read began keeps the event's version: the event is
  at least as new as what the read saw.
* A write made here whose event has not come ``EVENT_GRACE`` seconds after Directus answered it
  makes a check read the window: the cheapest witness that the bus lost something, and the way
  a row the filter rejects leaves the window (Directus sends no event for it).
"""

import json
import os
import random

# typing.TYPE_CHECKING without importing typing at run time (MicroPython has none).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

CHECK_EVERY = 30.0  # seconds between two checks while subscribed
# After Directus answered a write made here, its event is overdue this long after: a check then
# reads the window (the event was lost, or the row is outside the filter and none will come).
EVENT_GRACE = 3.0
# No frame the live query asks for carries more rows than this: the subscription's ``init``
# carries the newest part of a bigger window, reads come in pages (a 10,000-row ``init`` is a
# 1.3 MB frame, more than MicroPython can decode).
PAGE_ROWS = 1000
REASONS = ("restore", "initial", "event", "catch-up", "check", "write", "confirm", "rollback")


class Read:
    """Send ``message`` (an ``items`` read) and report its reply with ``answered(tag, ...)``."""

    def __init__(self, tag: int, message: "dict[str, Any]") -> None:
        self.tag = tag
        self.message = message

    def __repr__(self) -> str:
        return "Read(%r, %s)" % (self.tag, json.dumps(self.message.get("query")))


class Change:
    """One batch of changes to the window, as listeners get it.

    ``added`` and ``changed`` are rows, ``removed`` ids; ``reason`` is one of ``REASONS``;
    ``current`` whether the window may be missing nothing; ``error`` the error of a rollback.
    """

    def __init__(
        self,
        reason: str,
        added: "list[dict[str, Any]]",
        changed: "list[dict[str, Any]]",
        removed: "list[Any]",
        current: bool,
        error: "BaseException | None" = None,
    ) -> None:
        self.reason = reason
        self.added = added
        self.changed = changed
        self.removed = removed
        self.current = current
        self.error = error

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def __repr__(self) -> str:
        return "Change(%s: +%d ~%d -%d%s%s)" % (
            self.reason,
            len(self.added),
            len(self.changed),
            len(self.removed),
            ", current" if self.current else "",
            ", error=%r" % (self.error,) if self.error is not None else "",
        )


def new_id() -> str:
    """A random UUID (version 4) for a row created here: MicroPython has no ``uuid`` module."""
    try:
        raw = bytearray(os.urandom(16))
    except Exception:  # a port without os.urandom
        raw = bytearray(random.getrandbits(8) for _ in range(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = "".join("%02x" % b for b in raw)
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def _sort_fields(query: "dict[str, Any]", key: str) -> "list[tuple[str, bool]]":
    """``[(field, descending)]`` of a Directus ``sort`` (a list or a comma-separated string);
    the primary key when there is none, as Directus does for a collection without a sort
    field."""
    sort = query.get("sort") or [key]
    if isinstance(sort, str):
        sort = sort.split(",")
    out = []
    for name in sort:
        name = str(name).strip()
        if name.startswith("-"):
            out.append((name[1:], True))
        elif name:
            out.append((name, False))
    return out


_MISSING = object()  # a sort value a pending row does not have yet: it sorts as the newest


def _rank(value: object) -> "tuple[int, Any]":
    """An order over what JSON holds: null first (as SQLite), numbers, strings, the rest."""
    if value is _MISSING:
        return (4, 0)
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, json.dumps(value))


def _compare(a: "Any", b: "Any") -> int:
    kind = type(a)
    if kind is type(b) and (kind is str or kind is int or kind is float):  # (most of them)
        return -1 if a < b else (1 if a > b else 0)
    ra, rb = _rank(a), _rank(b)
    return -1 if ra < rb else (1 if ra > rb else 0)


def row_order(fields: "list[tuple[str, bool]]", key: str = "id") -> "Callable[[Any, Any], int]":
    """The comparison of two rows in the order of ``fields`` (``_sort_fields``), ties broken
    by primary key: a total order over the rows of one collection."""

    def cmp(a: "dict[str, Any]", b: "dict[str, Any]") -> int:
        for name, descending in fields:
            x, y = a.get(name, _MISSING), b.get(name, _MISSING)
            if x == y:  # (equal values rank equal)
                continue
            kind = type(x)
            if kind is type(y) and (kind is str or kind is int or kind is float):
                c = -1 if x < y else 1  # (most of them: no ranking needed)
            else:
                c = _compare(x, y)
                if not c:
                    continue
            return -c if descending else c
        x, y = str(a.get(key)), str(b.get(key))
        return -1 if x < y else (1 if x > y else 0)

    return cmp


def sort_rows(
    rows: "list[dict[str, Any]]", fields: "list[tuple[str, bool]]", key: str = "id"
) -> "list[dict[str, Any]]":
    """``rows`` in the order of ``fields``, ties broken by primary key."""
    return _sorted(list(rows), row_order(fields, key), fields[0] if fields else None)


def _sorted(
    items: "list[Any]", cmp: "Callable[[Any, Any], int]", first: "tuple[str, bool] | None" = None
) -> "list[Any]":
    """``items`` in ``cmp``'s order. Rows usually come from Directus already in the query's
    order (or reversed): checked first (``_direction``), as a sort with a Python comparison of
    a long window holds the page on MicroPython. Otherwise a merge sort: MicroPython's
    ``list.sort`` is not stable, and descending strings have no key that negates them."""
    return _in_direction(items, _direction(items, cmp, first), cmp)


def _direction(
    items: "list[Any]", cmp: "Callable[[Any, Any], int]", first: "tuple[str, bool] | None" = None
) -> int:
    """1 if ``items`` are in ``cmp``'s order, -1 if each comes strictly after the next, else 0.
    ``first`` (the first sort field, and whether it is descending) decides the pairs whose
    values of it are two different strings without calling ``cmp``, a Python call per pair
    that dominated checking a page of rows on MicroPython."""
    if len(items) <= 1:
        return 1
    up = down = True
    name, descending = first if first is not None else ("", False)
    prev: Any = items[0]
    before: Any = prev.get(name) if first is not None and type(prev) is dict else None
    for row in items[1:]:
        value = row.get(name) if first is not None and type(row) is dict else None
        if type(value) is str and type(before) is str and value != before:
            c = 1 if before > value else -1
            if descending:
                c = -c
        else:
            c = cmp(prev, row)
        if c > 0:
            up = False
        else:
            down = False
        if not (up or down):
            return 0
        prev, before = row, value
    return 1 if up else -1


def _in_direction(
    items: "list[Any]", direction: int, cmp: "Callable[[Any, Any], int]"
) -> "list[Any]":
    """``items`` in ``cmp``'s order, given what ``_direction`` said of them (or of a list they
    are a part of, in the same order)."""
    if direction > 0 or len(items) <= 1:
        return items
    if direction < 0:
        items.reverse()
        return items
    return _merge_sort(items, cmp)


def _merge_sort(items: "list[Any]", cmp: "Callable[[Any, Any], int]") -> "list[Any]":
    if len(items) <= 1:
        return items
    mid = len(items) // 2
    return _merge(_merge_sort(items[:mid], cmp), _merge_sort(items[mid:], cmp), cmp)


def _merge(left: "list[Any]", right: "list[Any]", cmp: "Callable[[Any, Any], int]") -> "list[Any]":
    """Two sorted lists as one (``left`` first among equals)."""
    if not left or not right:
        return left + right
    if cmp(left[-1], right[0]) <= 0:  # (a page of older rows after the newer ones)
        return left + right
    if cmp(right[-1], left[0]) < 0:
        return right + left
    if len(right) * 8 < len(left):  # a few new rows into many: find each one's place
        out = list(left)
        for row in right:
            out.insert(_place(out, row, cmp), row)
        return out
    out = []
    i = j = 0
    while i < len(left) and j < len(right):
        if cmp(right[j], left[i]) < 0:
            out.append(right[j])
            j += 1
        else:
            out.append(left[i])
            i += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out


def _place(order: "list[Any]", row: "Any", cmp: "Callable[[Any, Any], int]") -> int:
    """Where ``row`` goes in ``order``: after the rows before or equal to it."""
    lo, hi = 0, len(order)
    while lo < hi:
        mid = (lo + hi) // 2
        if cmp(row, order[mid]) < 0:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _drop(order: "list[Any]", row: "Any", cmp: "Callable[[Any, Any], int]") -> bool:
    """Take ``row`` (this very object) out of ``order``; False if it is not there."""
    i = _place(order, row, cmp) - 1
    while i >= 0 and order[i] is not row and cmp(order[i], row) == 0:
        i -= 1
    if i >= 0 and order[i] is row:
        del order[i]
        return True
    for i in range(len(order)):  # (not where the order puts it)
        if order[i] is row:
            del order[i]
            return True
    return False


class _Rows:
    """The server's rows of the window, by id and in the query's order. The order is kept as
    rows come and go (a sort with a Python comparison is slow on MicroPython); the ids changed
    since ``take_changes()`` are noted for the next report."""

    def __init__(
        self, cmp: "Callable[[Any, Any], int]", first: "tuple[str, bool] | None" = None
    ) -> None:
        self.cmp = cmp
        self.first = first  # the first sort field (``_direction``)
        self.by_id: dict[str, dict[str, Any]] = {}
        self.order: list[dict[str, Any]] = []
        self.changed: list[str] = []  # in the order they changed (rows come in order)
        self._changed: set[str] = set()
        self.all_changed = False

    def __len__(self) -> int:
        return len(self.by_id)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.by_id

    def __getitem__(self, item_id: str) -> "dict[str, Any]":
        return self.by_id[item_id]

    def get(self, item_id: str) -> "dict[str, Any] | None":
        return self.by_id.get(item_id)

    def values(self) -> "list[dict[str, Any]]":
        return self.order

    def reset(self, pairs: "list[tuple[str, dict[str, Any]]]") -> None:
        """Become these rows (``(id, row)``, best in the query's order: then no sort)."""
        by_id: dict[str, dict[str, Any]] = {}
        for item_id, row in pairs:
            by_id[item_id] = row
        order, placed = [], set()
        for item_id, row in pairs:
            if by_id[item_id] is row and item_id not in placed:  # (the last of an id, once)
                placed.add(item_id)
                order.append(row)
        self.by_id = by_id
        self.order = _sorted(order, self.cmp, self.first)
        self.all_changed = True

    def put(self, item_id: str, row: "dict[str, Any]") -> None:
        self.put_many([(item_id, row)])

    def put_many(self, pairs: "list[tuple[str, dict[str, Any]]]") -> None:
        """Add or replace rows (``(id, row)``, best in the query's order)."""
        by_id, cmp = self.by_id, self.cmp
        noted, changed = self._changed, self.changed  # (``_note``, inline: a call per row)
        replaced, new = [], {}
        for item_id, row in pairs:
            old = by_id.get(item_id)
            if old is row:
                continue
            if old is not None and item_id not in new:  # (a row not placed yet is not)
                replaced.append(old)
            by_id[item_id] = row
            new[item_id] = row
            if item_id not in noted:
                noted.add(item_id)
                changed.append(item_id)
        self._take_out(replaced)
        fresh = []
        for item_id, row in pairs:
            if new.get(item_id) is row:
                fresh.append(row)
                del new[item_id]  # (placed once)
        if fresh:
            self.order = _merge(self.order, _sorted(fresh, cmp, self.first), cmp)

    def pop(self, item_id: str) -> "dict[str, Any] | None":
        row = self.by_id.pop(item_id, None)
        if row is not None:
            self._note(item_id)
            self._take_out([row])
        return row

    def truncate(self, limit: int, key: str) -> None:
        """Keep the first ``limit`` rows."""
        for row in self.order[limit:]:
            item_id = str(row[key])
            del self.by_id[item_id]
            self._note(item_id)
        del self.order[limit:]

    def take_changes(self) -> "list[str] | None":
        """The ids changed since the last call, in order (None: all of them)."""
        changed = None if self.all_changed else self.changed
        self.changed, self._changed, self.all_changed = [], set(), False
        return changed

    def _note(self, item_id: str) -> None:
        if item_id not in self._changed:
            self._changed.add(item_id)
            self.changed.append(item_id)

    def _take_out(self, rows: "list[dict[str, Any]]") -> None:
        if len(rows) * 8 < len(self.order):
            for row in rows:
                _drop(self.order, row, self.cmp)
        elif rows:
            gone = set(map(id, rows))
            self.order = [row for row in self.order if id(row) not in gone]


class _Write:
    def __init__(self, wid: int, op: str, item_id: "Any", data: "dict[str, Any] | None") -> None:
        self.wid = wid
        self.op = op  # create | update | delete
        self.id = item_id
        self.data = data
        self.seen = False  # its event came


class _Checks:
    """How ``LiveWindow`` checks its rows against the server (a mixin: the state is the
    window's): fingerprint, light read of ids and ``updated_field``, rows read by id, or the
    whole window when there is no ``updated_field``; events that raced a read win."""

    if TYPE_CHECKING:  # the window's state and helpers this part uses (see LiveWindow)
        collection: str
        query: dict[str, Any]
        key: str
        updated_field: str | None
        check_every: float | None
        subscribed: bool
        stale: bool
        _sort: list[tuple[str, bool]]
        _base: _Rows
        _touched: dict[str, tuple[str, int]]
        _seq: int
        _sent: dict[str, int]
        _actions: list[Read | Change]
        _tag: int
        _check_at: float | None
        _running: tuple[str, int] | None
        _baseline: str | None
        _fingerprint: str | None
        _seen: set[str]
        _wanted: list[Any]
        _versions: dict[str, Any]
        _asked_ids: int
        _fetched: int
        _complete: bool
        _must_read: bool
        _pages: list[Any]
        _read: int
        _asked: int

        def _capped(self) -> bool: ...

        _chunks: list[list[Any]]

        def _keyed(self, row: Any) -> bool: ...
        def _id(self, row: dict[str, Any]) -> str: ...
        def _trim(self) -> None: ...
        def _publish(self, reason: str, error: BaseException | None = None) -> None: ...

    def _fingerprintable(self) -> bool:
        field = self.updated_field
        if field is None or not self._base:
            return False
        return all(field in row for row in self._base.values())

    def _filter(self) -> "Any":
        return self.query.get("filter")

    def _fingerprint_query(self) -> "dict[str, Any]":
        newest = [self.updated_field]
        for name, _ in self._sort:
            if name not in newest and "." not in name:
                newest.append(name)
        query: dict[str, Any] = {"aggregate": {"count": ["*"], "max": newest}}
        if self._filter():
            query["filter"] = self._filter()
        return query

    def _read_window(self, now: float) -> None:
        self._pages = []
        self._read = 0
        self._asked = 0
        self._seen, self._wanted, self._versions = set(), [], {}
        self._complete, self._fetched, self._asked_ids = True, 0, 0
        self._ask_page("ids" if self._fingerprintable() else "window", True)

    def _page_query(self, phase: str) -> "dict[str, Any] | None":
        """The read of the window's next page (None: the window is read), at most
        ``PAGE_ROWS`` rows; a query without ``limit`` is read in one (Directus's default)."""
        query = dict(self.query)
        if phase == "ids":
            query["fields"] = [self.key, self.updated_field]
        limit = query.get("limit")
        asked, self._asked = self._asked, self._asked + 1
        done = self._read
        if asked and (not self._capped() or done < asked * PAGE_ROWS):
            return None  # one read was the window; or a short page is the end of the rows
        if not self._capped():
            return query
        if not isinstance(limit, int) or (limit >= 0 and done >= limit):
            return None  # the window is full
        query["limit"] = PAGE_ROWS if limit < 0 else min(PAGE_ROWS, limit - done)
        offset = query.get("offset")
        query["offset"] = (offset if isinstance(offset, int) else 0) + done
        query.pop("page", None)
        return query

    def _ask_page(self, phase: str, first: bool) -> bool:
        query = self._page_query(phase)
        if query is None:
            return False
        self._ask(phase, query, first)
        return True

    def _ask(self, phase: str, query: "dict[str, Any]", first: bool = True) -> None:
        self._tag += 1
        self._running = (phase, self._tag)
        if first:  # events counted after this may be newer than the read
            self._sent[phase] = self._seq
        message: dict[str, Any] = {"type": "items", "collection": self.collection}
        message["action"] = "read"
        message["query"] = query
        self._actions.append(Read(self._tag, message))

    def _light_page(self, data: "list[Any]") -> None:
        """A page of the light read (ids and ``updated_field``): the ids the window holds, and
        those to read in full (new here, or of another version). Done page by page, as the
        pages come: a window of 10,000 rows compared at once holds the page on MicroPython."""
        field, key, wanted, versions = self.updated_field, self.key, self._wanted, self._versions
        for item_id, row, old in self._read_rows(data, self._sent.get("ids", 0)):
            version = row.get(field)
            if old is None or field not in old or old.get(field) != version:
                wanted.append(row[key])
                versions[item_id] = version

    def _read_rows(self, data: "list[Any]", since: int) -> "Iterator[tuple[str, Any, Any]]":
        """``(id, row, the row held now)`` for each row of a read, its id seen in the server's
        window; not the rows an event since the read began is newer than."""
        key, touched, rows, seen = self.key, self._touched, self._base.by_id, self._seen
        for row in data:
            value = row.get(key) if isinstance(row, dict) else None
            if value is None:
                continue
            item_id = str(value)
            seen.add(item_id)
            if item_id in touched and self._event_wins(item_id, since):
                continue  # (the event's version stays)
            yield item_id, row, rows.get(item_id)

    def _light_done(self, now: float) -> None:
        """The light read is complete: read the rows it wants, or settle the window."""
        wanted, self._wanted = self._wanted, []
        if not wanted:
            self._settle(now)
            return
        self._pages = []
        self._chunks = [wanted[i : i + PAGE_ROWS] for i in range(0, len(wanted), PAGE_ROWS)]
        self._ask_rows(True)

    def _ask_rows(self, first: bool) -> None:
        """Read the next chunk of the changed rows by id (at most ``PAGE_ROWS``)."""
        wanted = self._chunks.pop(0)
        self._asked_ids += len(wanted)
        query = dict(self.query)  # (sorted as the window: the rows come in its order)
        query.pop("offset", None)
        query.pop("page", None)
        query["limit"] = len(wanted)
        own = self._filter()
        by_id = {self.key: {"_in": wanted}}
        query["filter"] = {"_and": [own, by_id]} if own else by_id
        self._ask("rows", query, first)

    def _put_read(self, data: "list[Any]", since: int) -> None:
        """Rows read by id: the server's, unless an event since then is newer. A row of
        another version than the light read saw changed between the two reads: it is shown,
        and the next check comes soon."""
        key, touched, rows = self.key, self._touched, self._base.by_id
        field, versions = self.updated_field, self._versions
        pairs = []
        for row in data:
            value = row.get(key) if isinstance(row, dict) else None
            if value is None:
                continue
            item_id = str(value)
            self._fetched += 1
            if field is not None and versions.get(item_id, row.get(field)) != row.get(field):
                self._complete = False
            if item_id in touched and self._event_wins(item_id, since):
                continue
            old = rows.get(item_id)
            if old is None or old != row:
                pairs.append((item_id, row))
        if pairs:
            self._base.put_many(pairs)
            self._publish("check")

    def _apply_window(self, order: "Any", now: float) -> None:
        """The server's window read in full rows (a collection without ``updated_field``).
        Rows events touched since the read began keep the events' version."""
        if not isinstance(order, list):
            self._finished(now)
            return
        arrived = []  # (id, row) of the rows new or changed, in the server's order
        since = self._sent.get("window", 0)
        for item_id, row, old in self._read_rows(order, since):
            if old is None or old != row:
                arrived.append((item_id, row))
        self._base.put_many(arrived)
        self._settle(now, since)

    def _settle(self, now: float, since: "int | None" = None) -> None:
        """The check is read: rows the server's window no longer holds go (unless an event
        since the read began says otherwise), and the window is as the server's."""
        if since is None:
            since = self._sent.get("ids", 0)
        touched, seen = self._touched, self._seen
        if self._fetched < self._asked_ids:
            self._complete = False  # (a row read by id was gone by then: read again soon)
        for item_id in [i for i in self._base.by_id if i not in seen]:
            how, seq = touched.get(item_id, ("", 0))
            if not (how == "row" and seq > since):
                self._base.pop(item_id)
        complete = self._complete
        self._seen, self._versions = set(), {}
        self._trim()
        self.stale = False
        self._must_read = not complete
        # The fingerprint describes the window only if no event came since it was asked for.
        quiet = self._sent.get("fingerprint") == self._seq
        if self._fingerprint is not None and complete and quiet:
            self._baseline = self._fingerprint
        self._fingerprint = None
        if not complete and self._check_at is not None:
            self._check_at = min(self._check_at, now + EVENT_GRACE)
        self._finished(now)
        self._publish("check")

    def _finished(self, now: float) -> None:
        self._running = None
        self._fingerprint = None
        if self.subscribed and self.check_every is not None and self._check_at is None:
            self._check_at = now + self.check_every
        if self.stale and self.subscribed:
            self._check_at = now

    def _event_wins(self, item_id: str, since: int) -> bool:
        """Whether an event that came after a read was sent (``since``: the event count then)
        may be newer than what the read saw: a delete, or a row we hold (a row trimmed out
        of the window is read again). Events that came before the read was sent are older."""
        how, seq = self._touched.get(item_id, ("", 0))
        if seq <= since:
            return False
        return how == "delete" or (how == "row" and item_id in self._base)


class LiveWindow(_Checks):
    """The rows of one query, kept equal to the server's answer (see the module docstring).

    Args:
        collection: the collection.
        query: Directus query (``fields``, ``filter``, ``sort``, ``limit``).
        check_every: seconds between two checks while subscribed (None: only after ``init``
            and when ``check()`` is called).
        updated_field: the collection's ``date-updated`` field; None, or rows that lack it,
            make checks re-read the window instead of comparing fingerprints.
        key: the primary key field.
    """

    def __init__(
        self,
        collection: str,
        query: "dict[str, Any] | None" = None,
        check_every: "float | None" = CHECK_EVERY,
        updated_field: "str | None" = "date_updated",
        key: str = "id",
    ) -> None:
        self.collection = collection
        self.query = dict(query or {})
        self.check_every = check_every
        self.updated_field = updated_field
        self.key = key
        self.subscribed = False  # an init came on the current subscription
        self.stale = False  # a place in the window may be missing its row
        self.checks = 0  # checks run (for figures)
        self._sort = _sort_fields(self.query, key)
        self._cmp = row_order(self._sort, key)
        self._first = self._sort[0] if self._sort else None
        self._base = _Rows(self._cmp, self._first)  # the server's rows, by id and in order
        self._written: set[str] = set()  # ids whose pending writes changed since the report
        self._writes: list[_Write] = []  # pending, oldest first
        self._shown: dict[str, dict[str, Any]] = {}  # id -> row as last reported
        self._shown_current = False  # ``current`` as last reported
        self._order: list[dict[str, Any]] = []  # the rows shown, in order
        self._actions = []
        self._tag = 0
        self._wid = 0
        self._check_at = None
        self._running = None  # (phase, tag) of the check
        self._baseline = None  # the last fingerprint
        # ids events (or answers to writes) changed since the check began: ("row" | "delete",
        # the event count then)
        self._touched = {}
        self._seq = 0  # events and answered writes counted so far
        self._sent: dict[str, int] = {}  # read phase -> the event count when it was sent
        self._fingerprint = None  # the one this check got
        # the check's read so far: ids the server's window holds, ids to read in full and the
        # version the light read saw of each, rows asked for and read by id, no surprise yet
        self._seen: set[str] = set()
        self._wanted: list[Any] = []
        self._versions: dict[str, Any] = {}
        self._asked_ids = 0
        self._fetched = 0
        self._complete = True
        self._pages = []  # the rows of the read's pages so far (a read of full rows)
        self._read = 0  # rows the read's pages brought so far
        self._asked = 0  # pages of the read asked for
        self._chunks = []  # ids still to read by id, in chunks of PAGE_ROWS
        self._overdue: dict[str, float] = {}  # id of an answered write -> event due
        self._must_read = False  # the next check reads the window, whatever the fingerprint

    # ----- what the driver reads -----

    @property
    def rows(self) -> "list[dict[str, Any]]":
        """The window, in the query's order, pending writes included."""
        return list(self._order)

    @property
    def current(self) -> bool:
        """True only when nothing may be missing: subscribed, caught up, not stale."""
        return self.subscribed and not self.stale

    @property
    def pending(self) -> "set[Any]":
        return {w.id for w in self._writes}

    def is_pending(self, item_id: "Any") -> bool:
        item_id = str(item_id)
        return any(str(w.id) == item_id for w in self._writes)

    def subscribe_message(self) -> "dict[str, Any]":
        """What to subscribe with: no ``event``, so that ``init`` carries the rows (at most
        ``PAGE_ROWS``: the newest part of a bigger window; a read brings the rest)."""
        query = dict(self.query)
        if self._capped():
            query["limit"] = PAGE_ROWS
        return {"type": "subscribe", "collection": self.collection, "query": query}

    def _capped(self) -> bool:
        limit = self.query.get("limit")
        return isinstance(limit, int) and (limit < 0 or limit > PAGE_ROWS)

    def actions(self) -> "list[Read | Change]":
        """Drain what to do and what to report, in order."""
        out, self._actions = self._actions, []
        return out

    def next_deadline(self) -> "float | None":
        if not self.subscribed or self._running is not None:
            return None
        times = list(self._overdue.values())
        if self._check_at is not None:
            times.append(self._check_at)
        return min(times) if times else None

    def snapshot(self) -> "dict[str, Any]":
        """What a snapshot store keeps: the server's rows (not the pending writes)."""
        rows = list(self._base.order)
        return {"collection": self.collection, "query": self.query, "rows": rows}

    # ----- inputs -----

    def restore(self, snapshot: "dict[str, Any] | None") -> None:
        """Show the rows of an earlier snapshot (not current) until the first ``init``."""
        if not isinstance(snapshot, dict) or self.subscribed:
            return
        if snapshot.get("collection") != self.collection or snapshot.get("query") != self.query:
            return  # the rows of another query
        rows = snapshot.get("rows")
        if isinstance(rows, list):
            self._base.reset([(self._id(r), r) for r in rows if self._keyed(r)])
            self._trim()
            self._publish("restore")

    def subscribed_message(self, message: "dict[str, Any]", now: float) -> None:
        event = message.get("event")
        data = message.get("data")
        if event == "init":
            first = not self._shown and not self._base
            rows = data if isinstance(data, list) else []
            self._base.reset([(self._id(r), r) for r in rows if self._keyed(r)])
            self._trim()
            self.subscribed = True
            # An init cut at PAGE_ROWS holds the newest part of the window: read the rest.
            self.stale = self._capped() and isinstance(data, list) and len(data) >= PAGE_ROWS
            self._running = None
            self._baseline = None  # the next check compares the rows themselves
            self._check_at = now  # init is read before Directus registers the subscription
            self._publish("initial" if first else "catch-up")
            return
        if not self.subscribed:
            return
        rows = data if isinstance(data, list) else [data]
        if event in ("create", "update"):
            for row in rows:
                if isinstance(row, dict) and self._keyed(row):
                    item_id = self._id(row)
                    self._touch(item_id, "row")
                    self._saw_event(item_id)
                    old = self._base.get(item_id)
                    if old is not None and event == "update":
                        merged = dict(old)
                        merged.update(row)
                        row = merged
                    self._base.put(item_id, row)
                    self._stored(item_id, row)
            self._trim()
        elif event == "delete":
            # Raw ids, sent for every deleted row, in the window or not.
            full = self._full()
            gone = False
            for gone_id in rows:
                if isinstance(gone_id, dict):
                    gone_id = gone_id.get(self.key)
                if gone_id is None:
                    continue
                item_id = str(gone_id)
                self._touch(item_id, "delete")
                self._saw_event(item_id)
                self._stored(item_id, None)
                if self._base.pop(item_id) is not None:
                    gone = True
            if gone and full:
                self._make_stale(now)
        else:
            return
        # The window moved away from the last fingerprint: a later fingerprint equal to it
        # would prove nothing (a lost delete can undo a create's count), so the next check reads.
        self._baseline = None
        self._publish("event")

    def disconnected(self, now: float) -> None:
        """The subscription is gone (socket closed); the next ``init`` catches up."""
        was = self.current
        self.subscribed = False
        self._running = None
        self._check_at = None
        if was:
            self._actions.append(Change("event", [], [], [], False))

    def check(self, now: float) -> None:
        """Run a check now (when subscribed and none is running)."""
        if self.subscribed and self._running is None:
            self._check_at = now
            self.tick(now)

    def extend(self, n: int, now: float) -> "dict[str, Any]":
        """Grow the window by ``n`` rows; returns the new subscribe message (the driver
        subscribes again with it, so that each ``init`` carries the whole window)."""
        limit = self.query.get("limit")
        if isinstance(limit, int) and limit >= 0:
            self.query["limit"] = limit + int(n)
        self._make_stale(now)
        return self.subscribe_message()

    def tick(self, now: float) -> None:
        if not self.subscribed or self._running is not None:
            return
        overdue = [i for i, t in self._overdue.items() if t <= now]
        if overdue:
            for item_id in overdue:
                self._overdue.pop(item_id)
            self._must_read = True
        elif self._check_at is None or now < self._check_at:
            return
        self._check_at = None
        self.checks += 1
        self._touched = {}
        if self.stale or self._must_read or not self._fingerprintable():
            self._read_window(now)
        else:
            self._ask("fingerprint", self._fingerprint_query())

    def answered(self, tag: int, data: "Any", now: float) -> None:
        if self._running is None or self._running[1] != tag:
            return  # a read of an earlier subscription, or of a check given up
        phase = self._running[0]
        self._running = None
        if phase == "fingerprint":
            fingerprint = json.dumps(data)
            if fingerprint == self._baseline and not self.stale:
                self._finished(now)
                return
            self._fingerprint = fingerprint
            self._read_window(now)
        elif phase in ("window", "ids"):
            if not isinstance(data, list):
                self._finished(now)
                return
            self._read += len(data)
            if phase == "ids":
                self._light_page(data)  # (page by page)
            else:
                self._pages.extend(data)
            if self._ask_page(phase, False):
                return
            pages, self._pages = self._pages, []
            if phase == "window":
                self._apply_window(pages, now)
            else:
                self._light_done(now)
        elif phase == "rows":
            # Each chunk is shown as it comes (a window of 10,000 rows applied at once would
            # hold the page for a few hundred milliseconds on MicroPython); the last one
            # settles the window against the light read.
            if isinstance(data, list):
                self._put_read(data, self._sent.get("ids", 0))
            if self._chunks:
                self._ask_rows(False)
                return
            self._settle(now)

    def failed(self, tag: int, error: "BaseException", now: float) -> None:
        if self._running is None or self._running[1] != tag:
            return
        self._running = None
        if self.subscribed:  # try again at the next period
            self._check_at = now + (self.check_every or CHECK_EVERY)

    # ----- writes -----

    def write(self, op: str, item_id: "Any", data: "dict[str, Any] | None", now: float) -> int:
        """Apply a write made here at once, as pending; returns its write id."""
        if op not in ("create", "update", "delete"):
            raise ValueError("op must be create, update or delete")
        self._wid += 1
        self._writes.append(_Write(self._wid, op, item_id, data))
        self._written.add(str(item_id))
        self._publish("write")
        return self._wid

    def write_done(self, wid: int, row: "Any", now: float) -> None:
        """Directus stored the write (``row``: what it answered, for create and update)."""
        write = self._take(wid)
        if write is None:
            return
        item_id = str(write.id)
        if write.op == "create" and self._keyed(row):
            item_id = self._id(row)  # Directus numbered it: the stored row replaces the local id
        if not write.seen and self.subscribed:
            self._overdue[item_id] = now + EVENT_GRACE
        if write.op == "delete":
            if self._base.pop(item_id) is not None and self._full():
                self._make_stale(now)
        elif isinstance(row, dict) and self._keyed(row):
            old = self._base.get(item_id)
            if old is not None:
                merged = dict(old)
                merged.update(row)
                self._base.put(item_id, merged)
            elif write.op == "create":
                self._base.put(item_id, row)  # its event may come later, or be lost
            self._touch(item_id, "row")
            self._trim()
        self._baseline = None  # (as after an event)
        self._publish("confirm")

    def write_failed(self, wid: int, error: "BaseException", now: float) -> None:
        if self._take(wid) is not None:
            self._publish("rollback", error)

    # ----- internals -----

    def _touch(self, item_id: str, how: str) -> None:
        self._seq += 1
        self._touched[item_id] = (how, self._seq)

    def _saw_event(self, item_id: str) -> None:
        self._overdue.pop(item_id, None)
        for write in self._writes:
            if str(write.id) == item_id:
                write.seen = True

    def _stored(self, item_id: str, row: "dict[str, Any] | None") -> None:
        """The writes made here that an event shows stored are no longer pending: a create or
        update whose every written field the event's row holds, a delete of a deleted row.
        Directus sends the event before its reply to the write, and a page shows it as stored
        then; the reply finds nothing left to confirm."""
        for write in list(self._writes):
            if str(write.id) != item_id:
                continue
            if row is None:
                done = write.op == "delete"
            else:
                data = write.data or {}
                done = write.op != "delete" and all(
                    name in row and row[name] == value for name, value in data.items()
                )
            if done:
                self._writes.remove(write)
                self._written.add(item_id)

    def _take(self, wid: int) -> "_Write | None":
        for i, write in enumerate(self._writes):
            if write.wid == wid:
                self._written.add(str(write.id))
                return self._writes.pop(i)
        return None

    def _keyed(self, row: "Any") -> bool:
        return isinstance(row, dict) and row.get(self.key) is not None

    def _id(self, row: "dict[str, Any]") -> str:
        return str(row[self.key])

    def _limit(self) -> "int | None":
        limit = self.query.get("limit")
        return limit if isinstance(limit, int) and limit >= 0 else None

    def _full(self) -> bool:
        limit = self._limit()
        return limit is not None and len(self._base) >= limit

    def _trim(self) -> None:
        """Keep the rows the server's window holds: the first ``limit`` in the query's order."""
        limit = self._limit()
        if limit is not None and len(self._base) > limit:
            self._base.truncate(limit, self.key)

    def _make_stale(self, now: float) -> None:
        self.stale = True
        if self.subscribed and self._running is None:
            self._check_at = now

    def _view_row(self, item_id: str) -> "dict[str, Any] | None":
        """The row ``item_id`` shows: the server's with the pending writes over it, or None."""
        row = self._base.get(item_id)
        for write in self._writes:
            if str(write.id) != item_id:
                continue
            if write.op == "delete":
                row = None
            elif write.op == "create":
                merged = dict(row or {})
                merged.update(write.data or {})
                merged[self.key] = write.id
                row = merged
            elif row is not None:
                merged = dict(row)
                merged.update(write.data or {})
                row = merged
        return row

    def _view(self) -> "list[dict[str, Any]]":
        """The rows shown: the server's, with the pending writes over them, in order."""
        ordered = self._base.order
        if self._writes:
            ids = set(str(write.id) for write in self._writes)
            made = [row for row in (self._view_row(i) for i in ids) if row is not None]
            over = set(id(self._base[i]) for i in ids if i in self._base)
            kept = [row for row in ordered if id(row) not in over] if over else ordered
            ordered = _merge(kept, _sorted(made, self._cmp, self._first), self._cmp)
        limit = self._limit()
        return ordered[:limit] if limit is not None else list(ordered)

    def _view_size(self) -> int:
        """How many rows the view would hold without ``limit``."""
        size = len(self._base)
        for item_id in set(str(write.id) for write in self._writes):
            held, shows = item_id in self._base, self._view_row(item_id) is not None
            size += (1 if shows and not held else 0) - (1 if held and not shows else 0)
        return size

    def _diff_all(self) -> "tuple[list[Any], list[Any], list[Any]]":
        order = self._view()
        shown = {}
        added, changed = [], []
        key = self.key
        for row in order:
            item_id = str(row[key])
            shown[item_id] = row
            old = self._shown.get(item_id)
            if old is None:
                added.append(row)
            elif old is not row and old != row:
                changed.append(row)
        removed = [self._shown[i][self.key] for i in self._shown if i not in shown]
        self._shown = shown
        self._order = order
        return added, changed, removed

    def _diff_some(self, ids: "list[str]") -> "tuple[list[Any], list[Any], list[Any]] | None":
        """The diff when only ``ids`` may have changed: their old rows taken out of the view,
        their new ones merged in (None: diff it all instead)."""
        order, shown, cmp, key = self._order, self._shown, self._cmp, self.key
        if len(ids) > len(order):  # (a first answer, or most of the window)
            return None
        if self._writes:
            news = [(item_id, self._view_row(item_id)) for item_id in ids]
        else:  # (the server's rows as they are: most of the time)
            held = self._base.by_id
            news = [(item_id, held.get(item_id)) for item_id in ids]
        olds = [shown[i] for i, new in news if i in shown and shown[i] is not new]
        if len(olds) * 8 < len(order):
            for row in olds:
                if not _drop(order, row, cmp):
                    return None  # (not where it was shown: build the view again)
        elif olds:
            gone = set(map(id, olds))
            order = [row for row in order if id(row) not in gone]
        fresh = [new for i, new in news if new is not None and shown.get(i) is not new]
        # In the order they came: usually the query's, so merged without a sort; the rows
        # added and changed below come in the same order, so its direction holds for them too.
        direction = _direction(fresh, cmp, self._first)
        if fresh:
            order = _merge(order, _in_direction(fresh, direction, cmp), cmp)
        limit = self._limit()
        evicted = []
        if limit is not None:
            evicted = order[limit:]
            del order[limit:]
            if len(order) < limit and len(order) < self._view_size():
                return None  # a row beyond the limit moves in: build the view again
        self._order = order
        out = set(map(id, evicted))
        added, changed, removed = [], [], []
        for item_id, new in news:
            if new is not None and id(new) in out:
                new = None
            old = shown.get(item_id)
            if new is None:
                if old is not None:
                    del shown[item_id]
                    removed.append(old[key])
            elif old is None:
                shown[item_id] = new
                added.append(new)
            elif old is not new:
                shown[item_id] = new
                if old != new:
                    changed.append(new)
        in_news = set(ids)
        for row in evicted:
            item_id = str(row[key])
            if item_id not in in_news and shown.get(item_id) is row:
                del shown[item_id]
                removed.append(row[key])
        return _in_direction(added, direction, cmp), _in_direction(changed, direction, cmp), removed

    def _publish(self, reason: str, error: "BaseException | None" = None) -> None:
        """Diff the view against what was last reported, by id, and report it once: only the
        rows whose ids changed since, when they are few (a long window compared row by row at
        every event would hold the page on MicroPython)."""
        dirty = self._base.take_changes()
        written, self._written = self._written, set()
        if dirty is not None:
            dirty += [item_id for item_id in written if item_id not in set(dirty)]
        diff = None if dirty is None else self._diff_some(dirty)
        added, changed, removed = diff if diff is not None else self._diff_all()
        change = Change(reason, added, changed, removed, self.current, error)
        # A change of ``current`` alone is reported too: a view waits for it (the last page of
        # a long window can bring nothing new when a check read those rows first).
        current_moved = self.current != self._shown_current
        self._shown_current = self.current
        if change or current_moved or reason in ("initial", "catch-up", "rollback", "restore"):
            self._actions.append(change)

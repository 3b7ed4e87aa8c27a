"""A simulated Directus for the live query's unit tests: one collection in memory that answers
``items`` reads (filter, sort, limit, fields, aggregate) and makes the subscription messages
Directus would send (create/update rows re-read with the subscriber's query, delete as raw
ids, events whose rows the filter rejects not sent), and ``LiveClient``, a ``LiveWindow``
driven against it: reads answered at once (or held), events delivered or dropped, the
subscription cut and made again.
"""

from __future__ import annotations

import json
from typing import Any

from directus_realtime.window import Change, LiveWindow, Read, sort_rows

WINDOW_QUERY = {
    "fields": ["id", "text", "user", "date_created", "date_updated"],
    "sort": ["-date_created"],
    "limit": 5,
    "filter": {"user": {"_neq": "hidden"}},
}


def matches(row: dict[str, Any], flt: Any) -> bool:
    """The part of Directus's filter language the tests use."""
    if not flt:
        return True
    for name, cond in flt.items():
        if name == "_and":
            if not all(matches(row, f) for f in cond):
                return False
            continue
        if name == "_or":
            if not any(matches(row, f) for f in cond):
                return False
            continue
        value = row.get(name)
        for op, arg in cond.items():
            if op == "_eq" and value != arg:
                return False
            if op == "_neq" and value == arg:
                return False
            if op == "_in" and value not in arg and str(value) not in [str(a) for a in arg]:
                return False
            if op == "_gte" and (value is None or value < arg):
                return False
            if op == "_null" and (value is None) != bool(arg):
                return False
    return True


class SimDirectus:
    def __init__(self, has_updated: bool = True) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.clock = 0
        self.has_updated = has_updated
        self.reads: list[dict[str, Any]] = []  # every read asked, for the cost figures
        self.bytes_out = 0
        self.most_rows = 0  # the most rows one answer (init or read) carried

    def _stamp(self) -> str:
        self.clock += 1
        return "2026-01-01T%08dZ" % self.clock  # grows as text, as ISO dates do

    # --- writes (each returns the event Directus publishes) ---

    def create(self, row: dict[str, Any]) -> dict[str, Any]:
        row = dict(row)
        if str(row["id"]) in self.rows:
            raise KeyError("RECORD_NOT_UNIQUE")
        row["date_created"] = self._stamp()
        if self.has_updated:
            row["date_updated"] = None
        self.rows[str(row["id"])] = row
        return {"action": "create", "keys": [row["id"]]}

    def update(self, item_id: Any, data: dict[str, Any]) -> dict[str, Any]:
        row = self.rows[str(item_id)]
        row.update(data)
        if self.has_updated:
            row["date_updated"] = self._stamp()
        return {"action": "update", "keys": [item_id]}

    def delete(self, item_id: Any) -> dict[str, Any]:
        self.rows.pop(str(item_id), None)
        return {"action": "delete", "keys": [item_id]}

    # --- reads ---

    def _fields(self, row: dict[str, Any], fields: Any) -> dict[str, Any]:
        if not fields or "*" in fields:
            return dict(row)
        if "date_updated" in fields and not self.has_updated:
            raise ValueError("INVALID_QUERY: no field date_updated")
        return {name: row.get(name) for name in fields}

    def read(self, query: dict[str, Any], count: bool = True) -> Any:
        if count:
            self.reads.append(query)
        rows = [r for r in self.rows.values() if matches(r, query.get("filter"))]
        if "aggregate" in query:
            agg = query["aggregate"]
            out: dict[str, Any] = {}
            if "count" in agg:
                out["count"] = len(rows)
            if "max" in agg:
                maxes = {}
                for name in agg["max"]:
                    if name == "date_updated" and not self.has_updated:
                        raise ValueError("INVALID_QUERY")
                    values = [r.get(name) for r in rows if r.get(name) is not None]
                    maxes[name] = max(values) if values else None
                out["max"] = maxes
            answer: Any = [out]
        else:
            sort = query.get("sort") or ["id"]
            fields = [(s[1:], True) if s.startswith("-") else (s, False) for s in sort]
            rows = sort_rows(rows, fields)
            offset = query.get("offset")
            if isinstance(offset, int) and offset > 0:
                rows = rows[offset:]
            limit = query.get("limit")
            if isinstance(limit, int) and limit >= 0:
                rows = rows[:limit]
            answer = [self._fields(r, query.get("fields")) for r in rows]
            if count:
                self.most_rows = max(self.most_rows, len(answer))
        if count:
            self.bytes_out += len(json.dumps({"type": "items", "data": answer, "uid": "1"}))
        return answer

    def event_message(self, event: dict[str, Any], query: dict[str, Any]) -> dict[str, Any] | None:
        """The subscription message a subscriber with ``query`` gets (None: not sent)."""
        if event["action"] == "delete":
            return {"type": "subscription", "event": "delete", "data": list(event["keys"])}
        rows = [
            self._fields(self.rows[str(k)], query.get("fields"))
            for k in event["keys"]
            if str(k) in self.rows and matches(self.rows[str(k)], query.get("filter"))
        ]
        if not rows:
            return None
        return {"type": "subscription", "event": event["action"], "data": rows}

    def answer(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """The window the server would show now (the truth the live query must equal)."""
        return self.read(dict(query), count=False)


class LiveClient:
    """A ``LiveWindow`` and the driver's part, played against a ``SimDirectus``."""

    def __init__(self, sim: SimDirectus, query: dict[str, Any] | None = None, **options: Any):
        self.sim = sim
        self.query = dict(WINDOW_QUERY if query is None else query)
        self.window = LiveWindow("messages", self.query, **options)
        self.changes: list[Change] = []
        self.view: dict[str, dict[str, Any]] = {}  # the rows the changes reported, by id
        self.held: list[Read] = []
        self.hold_reads = False
        self.connected = False
        self.now = 0.0
        self.reads = 0

    def pump(self) -> None:
        """Carry out what the window asks, as the driver does; its timer fires at once for a
        deadline that has come."""
        while True:
            actions = self.window.actions()
            if not actions:
                deadline = self.window.next_deadline()
                if deadline is None or deadline > self.now:
                    return
                self.window.tick(self.now)
                continue
            for action in actions:
                if isinstance(action, Read):
                    self.reads += 1
                    if self.hold_reads or not self.connected:
                        self.held.append(action)
                    else:
                        self._answer(action)
                else:
                    self.changes.append(action)
                    self._follow(action)

    def _follow(self, change: Change) -> None:
        """Apply a change by id, as a listener does (page/view.py)."""
        for item_id in change.removed or ():
            self.view.pop(str(item_id), None)
        for row in list(change.changed or ()) + list(change.added or ()):
            self.view[str(row["id"])] = dict(row)

    def followed(self) -> dict[str, dict[str, Any]]:
        """The window's rows by id: what a listener that applied every change must hold."""
        return {str(r["id"]): dict(r) for r in self.window.rows}

    def _answer(self, read: Read) -> None:
        try:
            data = self.sim.read(read.message["query"])
        except ValueError as error:
            self.window.failed(read.tag, error, self.now)
            return
        self.window.answered(read.tag, data, self.now)

    def release(self) -> None:
        held, self.held = self.held, []
        for read in held:
            self._answer(read)
        self.pump()

    def subscribe(self) -> None:
        """A (re)subscription: Directus's init carries the window."""
        self.connected = True
        self.held = []
        query = self.window.subscribe_message()["query"]
        data = self.sim.answer(query)
        self.sim.most_rows = max(self.sim.most_rows, len(data))
        message = {"type": "subscription", "event": "init", "data": data}
        self.window.subscribed_message(message, self.now)
        self.pump()

    def cut(self) -> None:
        self.connected = False
        self.held = []
        self.window.disconnected(self.now)
        self.pump()

    def deliver(self, event: dict[str, Any]) -> None:
        if not self.connected:
            return
        message = self.sim.event_message(event, self.window.query)
        if message is not None:
            self.window.subscribed_message(message, self.now)
            self.pump()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.window.tick(self.now)
        self.pump()

    def settle(self) -> None:
        """Let every due check run (a minute of quiet)."""
        for _ in range(5):
            self.window.check(self.now)
            self.pump()
            self.advance(61)

    def shown(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.window.rows]

    def truth(self) -> list[dict[str, Any]]:
        return self.sim.answer(self.window.query)

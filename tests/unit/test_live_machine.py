"""Property-based test of the live query's engine (window.py): Hypothesis plays a simulated
Directus (tests/unit/sim_directus.py) and a client through random sequences of other clients'
creates, edits and deletes (each event delivered or lost), socket cuts and reconnects, checks
answered late or early, and writes made here that are stored, refused, or whose answer comes
after their event. After every step the window holds each id once and no more than the
limit, and the changes it reported, applied by id, give its rows; once things settle
(connected, writes answered, a check or two) the window equals the server's answer to the
query, and each write made here was stored at most once."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from directus_realtime import window
from directus_realtime.errors import DirectusError
from directus_realtime.window import new_id
from tests.unit.sim_directus import WINDOW_QUERY, LiveClient, SimDirectus

USERS = st.sampled_from(["ann", "bob", "hidden"])  # "hidden" rows are outside the filter


class LiveMachine(RuleBasedStateMachine):
    LIMIT = 4
    PAGE_ROWS = window.PAGE_ROWS  # no frame brings more rows than this

    def __init__(self) -> None:
        super().__init__()
        self.page_rows, window.PAGE_ROWS = window.PAGE_ROWS, self.PAGE_ROWS
        self.sim = SimDirectus()
        for i in range(4):
            self.sim.create({"id": "s%d" % i, "text": "seed", "user": "ann"})
        self.client = LiveClient(self.sim, dict(WINDOW_QUERY, limit=self.LIMIT), check_every=30.0)
        self.client.subscribe()
        self.writes: dict[int, tuple[str, str, dict | None]] = {}  # wid -> (op, id, data)
        self.stored: dict[str, int] = {}  # id of a create made here -> times stored
        self.n = 0

    def teardown(self) -> None:
        window.PAGE_ROWS = self.page_rows

    def _ids(self) -> list[str]:
        return sorted(self.sim.rows)

    # --- other clients, over REST ---

    @rule(user=USERS, deliver=st.booleans())
    def other_creates(self, user: str, deliver: bool) -> None:
        self.n += 1
        event = self.sim.create({"id": "o%d" % self.n, "text": "other", "user": user})
        if deliver:
            self.client.deliver(event)

    @precondition(lambda self: self.sim.rows)
    @rule(data=st.data(), user=USERS, deliver=st.booleans())
    def other_edits(self, data: st.DataObject, user: str, deliver: bool) -> None:
        item_id = data.draw(st.sampled_from(self._ids()))
        self.n += 1
        event = self.sim.update(item_id, {"text": "edit %d" % self.n, "user": user})
        if deliver:
            self.client.deliver(event)

    @precondition(lambda self: self.sim.rows)
    @rule(data=st.data(), deliver=st.booleans())
    def other_deletes(self, data: st.DataObject, deliver: bool) -> None:
        event = self.sim.delete(data.draw(st.sampled_from(self._ids())))
        if deliver:
            self.client.deliver(event)

    # --- the network and the clock ---

    @precondition(lambda self: self.client.connected)
    @rule()
    def cut(self) -> None:
        self.client.cut()

    @precondition(lambda self: not self.client.connected)
    @rule()
    def reconnect(self) -> None:
        self.client.subscribe()

    @rule(seconds=st.sampled_from([1.0, 10.0, 31.0]))
    def time_passes(self, seconds: float) -> None:
        self.client.advance(seconds)

    @rule()
    def check_now(self) -> None:
        self.client.window.check(self.client.now)
        self.client.pump()

    @rule(hold=st.booleans())
    def reads_late(self, hold: bool) -> None:
        self.client.hold_reads = hold
        if not hold:
            self.client.release()

    # --- writes made here ---

    @rule(user=st.sampled_from(["me", "hidden"]))
    def write_create(self, user: str) -> None:
        row = {"id": new_id(), "text": "mine", "user": user}
        wid = self.client.window.write("create", row["id"], row, self.client.now)
        self.writes[wid] = ("create", row["id"], row)
        self.client.pump()

    @precondition(lambda self: self.sim.rows)
    @rule(data=st.data())
    def write_update(self, data: st.DataObject) -> None:
        item_id = data.draw(st.sampled_from(self._ids()))
        self.n += 1
        change = {"text": "mine %d" % self.n}
        wid = self.client.window.write("update", item_id, change, self.client.now)
        self.writes[wid] = ("update", item_id, change)
        self.client.pump()

    @precondition(lambda self: self.sim.rows)
    @rule(data=st.data())
    def write_delete(self, data: st.DataObject) -> None:
        item_id = data.draw(st.sampled_from(self._ids()))
        wid = self.client.window.write("delete", item_id, None, self.client.now)
        self.writes[wid] = ("delete", item_id, None)
        self.client.pump()

    @precondition(lambda self: self.writes)
    @rule(data=st.data(), refused=st.booleans(), event_first=st.booleans())
    def write_answered(self, data: st.DataObject, refused: bool, event_first: bool) -> None:
        wid = data.draw(st.sampled_from(sorted(self.writes)))
        self._answer(wid, refused, event_first)

    def _answer(self, wid: int, refused: bool, event_first: bool) -> None:
        op, item_id, change = self.writes.pop(wid)
        window = self.client.window
        exists = item_id in self.sim.rows
        if refused or (op != "create" and not exists):
            window.write_failed(wid, DirectusError("FORBIDDEN", "no"), self.client.now)
            self.client.pump()
            return
        if op == "create":
            event = self.sim.create(change or {})
            self.stored[item_id] = self.stored.get(item_id, 0) + 1
        elif op == "update":
            event = self.sim.update(item_id, change or {})
        else:
            event = self.sim.delete(item_id)
        row = dict(self.sim.rows[item_id]) if item_id in self.sim.rows else None
        if event_first:
            self.client.deliver(event)
        window.write_done(wid, row, self.client.now)
        self.client.pump()
        if not event_first:
            self.client.deliver(event)

    # --- what must hold ---

    @invariant()
    def the_changes_reported_add_up_to_the_window(self) -> None:
        self.client.pump()
        assert self.client.view == self.client.followed()

    @invariant()
    def each_id_once_within_the_limit(self) -> None:
        ids = [str(r["id"]) for r in self.client.window.rows]
        assert len(ids) == len(set(ids))
        assert len(ids) <= self.LIMIT

    @rule()
    def settle_and_compare(self) -> None:
        """Connected, every write answered, reads on time, a check: the window is the truth."""
        for wid in sorted(self.writes):
            self._answer(wid, False, True)
        self.client.hold_reads = False
        self.client.release()
        if not self.client.connected:
            self.client.subscribe()
        self.client.settle()
        assert self.client.shown() == self.client.truth()
        assert self.client.window.current and not self.client.window.pending
        assert all(times == 1 for times in self.stored.values())


LiveMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("LIVE_MACHINE_EXAMPLES", "150")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_live_window_equals_the_server_after_any_history = LiveMachine.TestCase


class PagedLiveMachine(LiveMachine):
    """The same, with a window read in pages of two rows (inits cut, reads paged, rows read
    by id in chunks): what a window of thousands of rows does with pages of 1,000."""

    LIMIT = 5
    PAGE_ROWS = 2


PagedLiveMachine.TestCase.settings = LiveMachine.TestCase.settings
test_a_paged_window_equals_the_server_after_any_history = PagedLiveMachine.TestCase

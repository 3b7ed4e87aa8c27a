"""Unit tests of the live query's engine (directus_realtime/window.py) against a simulated
Directus (tests/unit/sim_directus.py): the window equals the server's answer after events,
gaps, lost events and writes; each change is reported once; what a check costs."""

from __future__ import annotations

from directus_realtime.errors import DirectusError
from directus_realtime.window import PAGE_ROWS, Change, LiveWindow, new_id, sort_rows
from tests.unit.sim_directus import WINDOW_QUERY, LiveClient, SimDirectus


def seeded(n: int = 8, **sim_options) -> SimDirectus:
    sim = SimDirectus(**sim_options)
    for i in range(n):
        sim.create(
            {"id": "r%02d" % i if n <= 100 else "r%05d" % i, "text": "t%d" % i, "user": "ann"}
        )
    return sim


def subscribed(sim: SimDirectus, **options) -> LiveClient:
    client = LiveClient(sim, **options)
    client.subscribe()
    return client


def ids(rows) -> list[str]:
    return [r["id"] for r in rows]


def test_init_gives_the_servers_window_in_the_querys_order():
    sim = seeded()
    client = subscribed(sim)
    assert client.shown() == client.truth()
    assert ids(client.shown()) == ["r07", "r06", "r05", "r04", "r03"]
    assert client.window.current
    first = client.changes[0]
    assert first.reason == "initial" and ids(first.added) == ids(client.truth())


def test_events_for_creates_edits_and_deletes_keep_the_window_equal_to_the_server():
    sim = seeded()
    client = subscribed(sim)
    client.deliver(sim.create({"id": "new", "text": "hello", "user": "bob"}))
    assert ids(client.shown())[0] == "new" and len(client.shown()) == 5  # r03 fell out
    client.deliver(sim.update("r05", {"text": "edited"}))
    assert client.shown() == client.truth()
    change = client.changes[-1]
    assert change.reason == "event" and ids(change.changed) == ["r05"]
    client.deliver(sim.delete("r06"))
    client.pump()
    assert client.shown() == client.truth()  # r03 read back into the freed place
    assert client.window.current


def test_a_delete_of_a_row_outside_the_window_changes_nothing():
    sim = seeded()
    client = subscribed(sim)
    before = len(client.changes)
    reads = len(sim.reads)
    client.deliver(sim.delete("r00"))  # raw ids come for every deleted row
    assert client.shown() == client.truth()
    assert len(client.changes) == before and len(sim.reads) == reads


def test_an_event_the_filter_rejects_is_not_shown():
    sim = seeded()
    client = subscribed(sim)
    client.deliver(sim.create({"id": "h", "text": "x", "user": "hidden"}))
    assert "h" not in ids(client.shown())


def test_a_gap_with_edits_deletes_and_creates_converges_at_the_next_init():
    sim = seeded()
    client = subscribed(sim)
    client.cut()
    assert not client.window.current
    assert client.changes[-1].current is False
    sim.update("r07", {"text": "edited while away"})
    sim.delete("r06")
    sim.create({"id": "c1", "text": "made while away", "user": "bob"})
    client.subscribe()
    assert client.shown() == client.truth()
    (change,) = [c for c in client.changes if c.reason == "catch-up"]
    assert ids(change.added) == ["c1"] and ids(change.changed) == ["r07"]
    assert change.removed == ["r06"] and change.current


def test_each_change_is_reported_once():
    sim = seeded()
    client = subscribed(sim)
    event = sim.create({"id": "once", "text": "x", "user": "a"})
    client.deliver(event)
    client.deliver(event)  # the same event twice (e.g. a check found it first)
    client.settle()
    added = [r["id"] for c in client.changes for r in c.added if r["id"] == "once"]
    assert added == ["once"]


def test_lost_events_are_found_by_the_periodic_check():
    sim = seeded()
    client = subscribed(sim, check_every=30.0)
    client.advance(1)  # the check right after init
    sim.update("r07", {"text": "lost edit"})  # the bus lost all three events
    sim.delete("r05")
    sim.create({"id": "lost", "text": "lost create", "user": "bob"})
    assert client.shown() != client.truth()
    client.advance(30)
    assert client.shown() == client.truth()
    assert client.changes[-1].reason == "check"


def test_a_check_that_finds_nothing_costs_one_small_read():
    sim = seeded(50)
    client = subscribed(sim, check_every=30.0)
    client.advance(1)
    reads, size = len(sim.reads), sim.bytes_out
    client.advance(30)
    assert len(sim.reads) == reads + 1
    assert "aggregate" in sim.reads[-1]
    assert sim.bytes_out - size < 200


def test_check_now_runs_a_check_at_once():
    sim = seeded()
    client = subscribed(sim, check_every=None)
    client.advance(1)
    sim.update("r07", {"text": "lost"})
    client.window.check(client.now)
    client.pump()
    assert client.shown() == client.truth()


def test_a_collection_without_date_updated_falls_back_to_reading_the_window():
    sim = seeded(has_updated=False)
    query = dict(WINDOW_QUERY, fields=["id", "text", "user", "date_created"])
    client = subscribed(sim, query=query, check_every=30.0)
    client.advance(1)
    sim.update("r07", {"text": "lost"})
    sim.delete("r06")
    client.advance(30)
    assert client.shown() == client.truth()
    assert all("aggregate" not in q for q in sim.reads)


def test_an_update_that_moves_a_row_out_of_the_filter_is_found_by_a_check():
    sim = seeded()
    client = subscribed(sim, check_every=30.0)
    client.advance(1)
    client.deliver(sim.update("r07", {"user": "hidden"}))  # Directus sends no event for it
    client.advance(30)
    assert client.shown() == client.truth()
    assert "r07" not in ids(client.shown())


def test_an_event_during_a_check_keeps_the_events_version():
    sim = seeded()
    client = subscribed(sim, check_every=30.0)
    client.advance(1)
    sim.update("r06", {"text": "lost"})
    client.hold_reads = True
    client.advance(30)  # the fingerprint read is held
    client.hold_reads = False
    stale_answer = sim.read(dict(WINDOW_QUERY, fields=["id", "date_updated"]), count=False)
    client.release()  # fingerprint answered; the light read goes out and is answered
    client.deliver(sim.update("r07", {"text": "newer"}))
    assert client.shown() == client.truth()
    assert stale_answer  # (the read that raced the event)


def test_a_read_of_an_earlier_subscription_is_ignored():
    sim = seeded()
    client = subscribed(sim, check_every=30.0)
    client.hold_reads = True
    client.advance(1)
    old = list(client.held)
    client.cut()
    sim.delete("r07")
    client.hold_reads = False
    client.subscribe()
    for read in old:
        client.window.answered(read.tag, [], client.now)
    client.pump()
    assert client.shown() == client.truth()


def test_extend_grows_the_window_and_reads_the_rows_it_gains():
    sim = seeded(12)
    client = subscribed(sim)
    client.window.extend(4, client.now)
    client.pump()
    assert not client.window.current or len(client.shown()) == 9
    client.subscribe()  # the driver subscribes again with the new limit
    assert len(client.shown()) == 9 and client.shown() == client.truth()


def test_a_write_is_pending_at_once_and_confirmed_by_its_answer():
    sim = seeded()
    client = subscribed(sim)
    row = {"id": new_id(), "text": "mine", "user": "me"}
    wid = client.window.write("create", row["id"], row, client.now)
    client.pump()
    assert client.window.is_pending(row["id"]) and ids(client.shown())[0] == row["id"]
    assert client.changes[-1].reason == "write"
    event = sim.create(row)
    client.window.write_done(wid, sim.rows[row["id"]], client.now)
    client.pump()
    assert not client.window.pending
    client.deliver(event)  # the event after the answer: nothing new
    assert client.shown() == client.truth()
    assert [c.reason for c in client.changes[-2:]] != ["confirm", "event"] or not client.changes[-1]


def test_a_write_whose_event_comes_before_its_answer_is_confirmed_by_the_event():
    sim = seeded()
    client = subscribed(sim)
    row = {"id": new_id(), "text": "mine", "user": "me"}
    wid = client.window.write("create", row["id"], row, client.now)
    edit = client.window.write("update", "r07", {"text": "edited"}, client.now)
    client.pump()
    assert client.window.pending == {row["id"], "r07"}
    client.deliver(sim.create(row))  # (Directus sends the event first)
    assert client.window.pending == {"r07"}
    assert client.changes[-1].reason == "event" and not client.window.is_pending(row["id"])
    client.deliver(sim.update("r07", {"text": "someone else's"}))
    assert client.window.is_pending("r07")  # not what was written: still pending
    assert client.shown()[1]["text"] == "edited"
    client.deliver(sim.update("r07", {"text": "edited"}))
    assert not client.window.pending
    reported = len(client.changes)
    client.window.write_done(wid, sim.rows[row["id"]], client.now)  # the answers: nothing new
    client.window.write_done(edit, sim.rows["r07"], client.now)
    client.pump()
    assert len(client.changes) == reported and client.shown() == client.truth()


def test_a_refused_write_is_rolled_back_with_its_error():
    sim = seeded()
    client = subscribed(sim)
    before = client.shown()
    wid = client.window.write("update", "r07", {"text": "no"}, client.now)
    client.pump()
    assert client.shown()[0]["text"] == "no"
    error = DirectusError("FORBIDDEN", "no")
    client.window.write_failed(wid, error, client.now)
    client.pump()
    assert client.shown() == before
    last = client.changes[-1]
    assert last.reason == "rollback" and last.error is error and ids(last.changed) == ["r07"]


def test_a_pending_delete_hides_the_row_and_its_confirmation_keeps_it_gone():
    sim = seeded()
    client = subscribed(sim)
    wid = client.window.write("delete", "r07", None, client.now)
    client.pump()
    assert "r07" not in ids(client.shown())
    event = sim.delete("r07")
    client.window.write_done(wid, None, client.now)
    client.pump()
    client.deliver(event)
    client.settle()
    assert client.shown() == client.truth()


def test_a_snapshot_shows_the_last_rows_until_the_first_init():
    sim = seeded()
    first = subscribed(sim)
    snapshot = first.window.snapshot()
    window = LiveWindow("messages", WINDOW_QUERY)
    window.restore(snapshot)
    change = window.actions()[-1]
    assert isinstance(change, Change) and change.reason == "restore" and not change.current
    assert window.rows == first.window.rows
    other = LiveWindow("messages", dict(WINDOW_QUERY, limit=3))
    other.restore(snapshot)  # another query's rows are not shown
    assert other.rows == []


def test_sort_rows_orders_by_several_fields_with_nulls_first_and_missing_last():
    rows = [
        {"id": "a", "k": 2, "t": "x"},
        {"id": "b", "k": None, "t": "y"},
        {"id": "c", "k": 2, "t": "z"},
        {"id": "d", "t": "w"},
    ]
    assert ids(sort_rows(rows, [("k", False), ("t", True)])) == ["b", "c", "a", "d"]


def test_new_id_is_a_version_4_uuid():
    value = new_id()
    assert len(value) == 36 and value[14] == "4" and value[19] in "89ab"
    assert new_id() != value


def test_a_window_bigger_than_a_page_is_read_in_pages_and_equals_the_server():
    sim = seeded(2500)
    query = {"fields": ["id", "text", "user", "date_updated"], "sort": ["-id"], "limit": 2300}
    client = subscribed(sim, query=query)
    assert client.window.subscribe_message()["query"]["limit"] == PAGE_ROWS
    assert ids(client.shown()) == ids(client.truth()) and len(client.shown()) == 2300
    assert client.window.current
    assert sim.most_rows <= PAGE_ROWS
    # A lost delete and a lost edit deep in the window are found by the paged check.
    sim.delete("r00300")
    sim.update("r00100", {"text": "edited"})
    client.advance(61)
    client.settle()
    assert client.shown() == client.truth() and len(client.shown()) == 2300
    assert sim.most_rows <= PAGE_ROWS


def test_an_unbounded_window_reads_pages_until_a_short_one():
    sim = seeded(1500)
    query = {"fields": ["id", "text", "user", "date_updated"], "sort": ["id"], "limit": 99999999}
    client = subscribed(sim, query=query)
    assert client.shown() == client.truth() and len(client.shown()) == 1500
    assert client.window.current and sim.most_rows <= PAGE_ROWS


def test_the_last_change_reported_always_carries_the_windows_current():
    """A view renders ``current`` from the changes it gets: a move of ``current`` alone (the
    last page of a long window bringing nothing new) is reported too."""
    sim = seeded(PAGE_ROWS + 300)
    client = subscribed(sim, query=dict(WINDOW_QUERY, limit=PAGE_ROWS + 300))
    client.settle()
    assert client.window.current and client.changes[-1].current is True
    client.cut()
    assert client.changes[-1].current is False
    client.subscribe()
    client.settle()
    assert client.shown() == client.truth()
    assert client.window.current and client.changes[-1].current is True

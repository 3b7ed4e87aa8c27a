"""Unit tests of page/outbox.py: the writes Directus has not acknowledged, kept across a reload.

Storage is a dict behind getItem/setItem/removeItem, the timer records ``start(ms)`` and
``cancel()`` and fires when the test says so, the console is a list.
"""

import json

import pytest

from directus_realtime import OutboxFull
from page.outbox import KEY, SAVE_DELAY_MS, Outbox
from tests.fakes import Timer


class Storage:
    """``localStorage``, as far as the outbox uses it; counts the writes."""

    def __init__(self, items=None) -> None:
        self.items = dict(items or {})
        self.writes = 0

    def getItem(self, key):
        return self.items.get(key)

    def setItem(self, key, value):
        assert isinstance(value, str)
        self.writes += 1
        self.items[key] = value

    def removeItem(self, key):
        self.writes += 1
        self.items.pop(key, None)

    def saved(self) -> list:
        raw = self.items.get(KEY)
        return json.loads(raw) if raw else []


class FullStorage(Storage):
    def setItem(self, key, value):
        raise RuntimeError("QuotaExceededError: the quota has been exceeded")


class UnreadableStorage(Storage):
    def getItem(self, key):
        raise RuntimeError("SecurityError: the operation is insecure")


def write(n, text=None, user="ada") -> dict:
    return {"id": "id-%d" % n, "text": text or "message %d" % n, "user": user}


def entry(n, tab, **fields) -> dict:
    data = write(n, **fields)
    if tab is not None:
        data["tab"] = tab
    return data


def make(storage=None, tab="me", limit=1000):
    storage = storage if storage is not None else Storage()
    warnings = []
    outbox = Outbox(storage, tab, Timer, warnings.append, limit=limit)
    return outbox, storage, warnings


def ids(entries) -> list:
    return [item["id"] for item in entries]


# --- saving behind ----------------------------------------------------------------------------


def test_writes_answered_in_time_never_touch_storage():
    outbox, storage, warnings = make()
    for n in range(3):
        outbox.add(write(n), connected=True)
    for n in range(3):
        outbox.done("id-%d" % n)
    outbox.timer.fire()
    assert storage.writes == 0
    assert storage.items == {}
    assert warnings == []


def test_the_timer_is_started_once_for_writes_in_flight():
    outbox, _, _ = make()
    outbox.add(write(1), connected=True)
    outbox.add(write(2), connected=True)
    assert outbox.timer.calls == [("start", SAVE_DELAY_MS)]
    outbox.timer.fire()
    outbox.add(write(3), connected=True)
    assert outbox.timer.calls == [("start", SAVE_DELAY_MS)] * 2


def test_unanswered_writes_are_saved_when_the_timer_fires():
    outbox, storage, _ = make()
    outbox.add(write(1), connected=True)
    outbox.add(write(2), connected=True)
    outbox.done("id-1")
    assert storage.writes == 0
    outbox.timer.fire()
    assert storage.saved() == [entry(2, "me")]


def test_a_write_added_while_disconnected_is_saved_at_once():
    outbox, storage, _ = make()
    outbox.add(write(1), connected=False)
    assert storage.saved() == [entry(1, "me")]
    assert outbox.timer.calls == []


def test_save_keeps_every_pending_write_in_order():
    outbox, storage, _ = make()
    for n in range(5):
        outbox.add(write(n), connected=True)
    outbox.save()
    assert ids(storage.saved()) == ["id-%d" % n for n in range(5)]


def test_save_with_nothing_pending_writes_nothing():
    outbox, storage, _ = make()
    outbox.save()
    assert storage.writes == 0


def test_done_removes_only_that_write():
    outbox, storage, _ = make()
    for n in range(3):
        outbox.add(write(n), connected=False)
    outbox.done("id-1")
    assert ids(storage.saved()) == ["id-0", "id-2"]
    assert list(outbox.pending) == ["id-0", "id-2"]
    outbox.done("id-0")
    outbox.done("id-2")
    assert KEY not in storage.items
    outbox.done("id-unknown")  # (nothing to do, and no error)


def test_done_does_not_save_newer_writes_that_are_not_due():
    outbox, storage, _ = make()
    outbox.add(write(1), connected=False)
    outbox.add(write(2), connected=True)
    outbox.done("id-1")
    assert storage.saved() == []


def test_other_tabs_entries_are_left_untouched():
    theirs = [entry(7, "other"), entry(8, None)]
    outbox, storage, _ = make(Storage({KEY: json.dumps(theirs)}))
    outbox.add(write(1), connected=False)
    outbox.add(write(2), connected=True)
    outbox.save()
    outbox.done("id-1")
    outbox.done("id-2")
    assert storage.saved() == theirs


# --- full (issue 14, item 8) ------------------------------------------------------------------


def test_add_past_the_limit_raises_and_keeps_nothing():
    outbox, storage, _ = make(limit=3)
    for n in range(3):
        outbox.add(write(n), connected=False)
    with pytest.raises(OutboxFull) as caught:
        outbox.add(write(3), connected=False)
    assert "3 messages are waiting" in str(caught.value)
    assert list(outbox.pending) == ["id-0", "id-1", "id-2"]
    assert ids(storage.saved()) == ["id-0", "id-1", "id-2"]
    outbox.done("id-0")
    outbox.add(write(3), connected=False)  # room again
    assert "id-3" in outbox.pending


# --- taking over other tabs' writes (issue 14, item 9) ------------------------------------------


def test_take_over_claims_writes_of_tabs_that_are_gone_and_entries_with_no_tab():
    stored = [entry(1, "gone"), entry(2, "alive"), entry(3, None), entry(4, "alive")]
    outbox, storage, warnings = make(Storage({KEY: json.dumps(stored)}))
    claimed = outbox.take_over({"alive", "me"})
    assert claimed == [write(1), write(3)]  # without their owner, in the saved order
    by_id = {item["id"]: item.get("tab") for item in storage.saved()}
    assert by_id == {"id-1": "me", "id-2": "alive", "id-3": "me", "id-4": "alive"}
    assert warnings == []


def test_take_over_leaves_live_tabs_writes_alone():
    stored = [entry(1, "alive")]
    outbox, storage, _ = make(Storage({KEY: json.dumps(stored)}))
    assert outbox.take_over({"alive"}) == []
    assert storage.saved() == stored


def test_take_over_with_no_live_tabs_known_claims_everything():
    stored = [entry(1, "a"), entry(2, "b")]
    outbox, storage, _ = make(Storage({KEY: json.dumps(stored)}))
    assert ids(outbox.take_over(set())) == ["id-1", "id-2"]
    assert {item["tab"] for item in storage.saved()} == {"me"}


def test_claimed_writes_are_removed_once_done():
    outbox, storage, _ = make(Storage({KEY: json.dumps([entry(1, "gone"), entry(2, "x")])}))
    for data in outbox.take_over({"x"}):
        outbox.add(data, connected=True)
    outbox.done("id-1")
    assert storage.saved() == [entry(2, "x")]


def test_take_over_again_does_not_claim_writes_this_tab_is_sending():
    # The page looks again a few seconds later (a tab still closing): its own writes, saved
    # while disconnected, must not be sent a second time.
    outbox, storage, _ = make(Storage({KEY: json.dumps([entry(1, "gone")])}))
    for data in outbox.take_over(set()):
        outbox.add(data, connected=False)
    outbox.add(write(2), connected=False)
    assert outbox.take_over(set()) == []
    assert sorted(ids(storage.saved())) == ["id-1", "id-2"]


def test_take_over_never_claims_more_than_the_limit():
    stored = [entry(n, "gone") for n in range(10)]
    outbox, storage, _ = make(Storage({KEY: json.dumps(stored)}), limit=4)
    outbox.add(write(100), connected=True)
    claimed = outbox.take_over(set())
    assert ids(claimed) == ["id-0", "id-1", "id-2"]  # room for 3 beside the pending one
    tabs = {item["id"]: item["tab"] for item in storage.saved()}
    assert [tabs["id-%d" % n] for n in range(10)] == ["me"] * 3 + ["gone"] * 7
    for data in claimed:
        outbox.add(data, connected=True)
    assert outbox.take_over(set()) == []  # full: the rest wait for the next visit


def test_take_over_with_nothing_saved():
    outbox, storage, warnings = make()
    assert outbox.take_over(set()) == []
    assert storage.writes == 0
    assert warnings == []


# --- corrupt storage (issue 14, item 3) ---------------------------------------------------------


@pytest.mark.parametrize("raw", ['{"a":1}', '"text"', "not json", "null", "5", "[" * 5000])
def test_a_saved_value_of_the_wrong_shape_is_dropped_with_a_warning(raw):
    outbox, storage, warnings = make(Storage({KEY: raw}))
    assert outbox.take_over(set()) == []
    assert len(warnings) == 1
    assert "wrong shape" in warnings[0]
    assert KEY not in storage.items
    outbox.add(write(1), connected=False)  # and the outbox works on
    assert storage.saved() == [entry(1, "me")]


@pytest.mark.parametrize(
    "bad",
    [
        1,
        "id-x",
        None,
        [1, 2],
        {"a": 1},
        {"id": "", "text": "t", "user": "u"},
        {"id": 5, "text": "t", "user": "u"},
        {"text": "t", "user": "u"},
        {"id": "x", "text": "", "user": "u"},
        {"id": "x", "text": "   ", "user": "u"},
        {"id": "x", "text": 5, "user": "u"},
        {"id": "x", "text": "t"},
        {"id": "x", "text": "t", "user": ""},
        {"id": "x", "text": "t", "user": ["u"]},
        {"id": "x", "text": "x" * 10_001, "user": "u"},
        {"id": "x", "text": "t", "user": "u", "tab": ["a"]},
        {"id": "x", "text": "t", "user": "u", "tab": {"a": 1}},
        {"id": "x", "text": "t", "user": "u", "tab": 5},
    ],
)
def test_entries_of_the_wrong_shape_are_dropped_with_a_warning(bad):
    stored = [entry(1, "gone"), bad, entry(2, None)]
    outbox, storage, warnings = make(Storage({KEY: json.dumps(stored)}))
    assert ids(outbox.take_over({"alive"})) == ["id-1", "id-2"]
    assert warnings == ["1 saved message(s) of the wrong shape were dropped."]
    assert ids(storage.saved()) == ["id-1", "id-2"]  # rewritten without it


def test_a_list_of_numbers_is_dropped_entry_by_entry():
    outbox, storage, warnings = make(Storage({KEY: "[1,2,3]"}))
    assert outbox.take_over(set()) == []
    assert warnings == ["3 saved message(s) of the wrong shape were dropped."]


def test_a_text_of_exactly_the_limit_is_kept():
    stored = [entry(1, None, text="x" * 10_000)]
    outbox, _, warnings = make(Storage({KEY: json.dumps(stored)}))
    assert len(outbox.take_over(set())) == 1
    assert warnings == []


def test_unreadable_storage_reads_as_empty_with_a_warning():
    outbox, _, warnings = make(UnreadableStorage())
    assert outbox.read() == []
    assert outbox.take_over(set()) == []
    assert len(warnings) == 2
    assert "cannot be read" in warnings[0] and "SecurityError" in warnings[0]


def test_a_full_storage_is_a_warning_not_an_exception():
    outbox, storage, warnings = make(FullStorage())
    outbox.add(write(1), connected=False)  # saves at once: refused
    assert outbox.write({"id-1"}) is False
    assert "id-1" in outbox.pending  # still sent, only not kept for a reload
    assert outbox.saved == set()
    assert len(warnings) == 2
    assert "could not be saved" in warnings[0] and "QuotaExceededError" in warnings[0]
    outbox.timer.fire()
    outbox.done("id-1")


def test_a_full_storage_during_take_over_claims_the_writes_without_marking_them_saved():
    class Refusing(Storage):
        def setItem(self, key, value):
            raise RuntimeError("QuotaExceededError")

    storage = Refusing({KEY: json.dumps([entry(1, "gone")])})
    outbox, _, warnings = make(storage)
    assert ids(outbox.take_over(set())) == ["id-1"]
    assert outbox.saved == set()
    assert len(warnings) == 1


def test_write_returns_true_when_stored():
    outbox, storage, warnings = make()
    outbox.add(write(1), connected=True)
    assert outbox.write({"id-1"}) is True
    assert outbox.saved == {"id-1"}
    assert warnings == []

"""Unit tests of page/outbox.py: the store the library keeps its outbox in (``localStorage``),
each entry owned by one tab, written behind while connected, at once otherwise.

Storage is a dict behind getItem/setItem/removeItem, the timer records ``start(ms)`` and
``cancel()`` and fires when the test says so, the console is a list. Entries are opaque to the
store (the library's format): any JSON value.
"""

import json

import pytest

from page.outbox import KEY, SAVE_DELAY_MS, OutboxStore
from tests.fakes import Timer


class Storage:
    """``localStorage``, as far as the store uses it; counts the writes."""

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


def entry(n) -> dict:
    """A write as the library might keep it (the store never looks inside)."""
    return {"op": "create", "collection": "messages", "data": {"id": "id-%d" % n, "text": "m"}}


def record(n, tab) -> dict:
    return {"tab": tab, "write": entry(n)}


def make(storage=None, tab="me", connected=False):
    storage = storage if storage is not None else Storage()
    warnings = []
    store = OutboxStore(storage, tab, Timer, warnings.append)
    store.connected = connected
    return store, storage, warnings


# --- saving behind ------------------------------------------------------------------------------


def test_writes_answered_in_time_never_touch_storage():
    store, storage, _ = make(connected=True)
    store.save([entry(1)])
    store.save([entry(1), entry(2)])
    store.save([entry(2)])
    store.save([])  # every write answered before the timer
    store.timer.fire()
    assert storage.writes == 0
    assert store.timer.calls == [("start", SAVE_DELAY_MS)]  # armed once


def test_unanswered_writes_are_saved_when_the_timer_fires():
    store, storage, _ = make(connected=True)
    store.save([entry(1), entry(2)])
    assert storage.writes == 0
    store.timer.fire()
    assert storage.saved() == [record(1, "me"), record(2, "me")]
    store.save([entry(2)])  # the first answered later: written behind again
    store.timer.fire()
    assert storage.saved() == [record(2, "me")]
    store.save([])
    store.timer.fire()
    assert KEY not in storage.items


def test_while_not_connected_every_save_is_written_at_once():
    store, storage, _ = make(connected=False)
    store.save([entry(1)])
    assert storage.saved() == [record(1, "me")]
    assert store.timer.calls == []


def test_flush_writes_what_waits_at_once():
    store, storage, _ = make(connected=True)
    store.save([entry(1)])
    store.flush()  # the page goes away, or the connection drops
    assert storage.saved() == [record(1, "me")]
    writes = storage.writes
    store.flush()
    assert storage.writes == writes  # nothing new: nothing written


def test_other_tabs_entries_are_left_untouched():
    storage = Storage({KEY: json.dumps([record(7, "other"), record(8, "me")])})
    store, _, _ = make(storage)
    assert store.load() == [entry(8)]
    store.save([entry(8), entry(9)])
    assert storage.saved() == [record(7, "other"), record(8, "me"), record(9, "me")]
    store.save([])
    assert storage.saved() == [record(7, "other")]


# --- tabs ---------------------------------------------------------------------------------------


def test_a_tab_loads_only_its_own_entries_until_it_claims_those_of_gone_tabs():
    stored = [record(1, "gone"), record(2, "alive"), record(3, "gone-too")]
    store, storage, _ = make(Storage({KEY: json.dumps(stored)}))
    assert store.load() == []
    assert store.claim({"alive", "me"}) == 2
    assert store.load() == [entry(1), entry(3)]
    assert [r["tab"] for r in storage.saved()] == ["me", "alive", "me"]


def test_claim_leaves_live_tabs_entries_alone_and_says_when_others_wait():
    store, storage, _ = make(Storage({KEY: json.dumps([record(1, "alive")])}))
    assert store.claim({"alive"}) == 0
    assert store.load() == []
    assert store.others_waiting()
    assert store.claim(set()) == 1  # (no Web Locks: every saved write is taken over)
    assert not store.others_waiting()
    assert store.load() == [entry(1)]


def test_claimed_entries_go_once_the_library_saves_without_them():
    store, storage, _ = make(Storage({KEY: json.dumps([record(1, "gone")])}))
    store.claim(set())
    assert store.load() == [entry(1)]
    store.save([])
    assert KEY not in storage.items


def test_claim_with_nothing_saved():
    store, storage, warnings = make()
    assert store.claim(set()) == 0
    assert store.load() == []
    assert storage.writes == 0 and warnings == []


# --- corrupt or refusing storage ----------------------------------------------------------------


@pytest.mark.parametrize("raw", ['{"a":1}', '"text"', "not json", "null", "5", "[" * 5000])
def test_a_saved_value_of_the_wrong_shape_is_dropped_with_a_warning(raw):
    store, storage, warnings = make(Storage({KEY: raw}))
    assert store.claim(set()) == 0
    assert store.load() == []
    assert len(warnings) == 1
    assert "wrong shape" in warnings[0]
    assert KEY not in storage.items
    store.save([entry(1)])  # and the store works on
    assert storage.saved() == [record(1, "me")]


@pytest.mark.parametrize(
    "bad",
    [
        1,
        "id-x",
        None,
        [1, 2],
        {"a": 1},
        {"tab": "x"},
        {"tab": "x", "write": None},
        {"tab": ["a"], "write": 1},
        {"tab": 5, "write": 1},
        {"id": "x", "text": "t", "user": "u", "tab": "x"},  # a write of an older page
    ],
)
def test_records_of_the_wrong_shape_are_dropped_with_a_warning(bad):
    stored = [record(1, "gone"), bad, record(2, "me")]
    store, storage, warnings = make(Storage({KEY: json.dumps(stored)}))
    assert store.claim({"alive"}) == 1
    assert warnings == ["1 saved message(s) of the wrong shape were dropped."]
    assert store.load() == [entry(1), entry(2)]
    assert storage.saved() == [record(1, "me"), record(2, "me")]  # rewritten without it


def test_unreadable_storage_reads_as_empty_with_a_warning():
    store, _, warnings = make(UnreadableStorage())
    assert store.load() == []
    assert store.claim(set()) == 0
    assert len(warnings) == 2
    assert "cannot be read" in warnings[0] and "SecurityError" in warnings[0]


def test_a_full_storage_is_a_warning_not_an_exception():
    store, _, warnings = make(FullStorage())
    store.save([entry(1)])  # written at once: refused
    assert len(warnings) == 1
    assert "1 waiting message(s) could not be saved" in warnings[0]
    assert "QuotaExceededError" in warnings[0]
    store.save([entry(1)])  # tried again: what is on disk is not what was asked
    assert len(warnings) == 2


def test_no_storage_at_all_keeps_nothing_and_raises_nothing():
    store = OutboxStore(None, "me", Timer, [].append)
    store.save([entry(1)])
    assert store.load() == []
    assert store.claim(set()) == 0


def test_each_save_tells_the_page_the_outbox_changed():
    store, _, _ = make(connected=True)
    told = []
    store.on_save = lambda: told.append(1)
    store.save([entry(1)])
    store.save([])
    assert told == [1, 1]

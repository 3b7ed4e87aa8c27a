"""Unit tests of page/snapshot.py: the live query's last rows in ``localStorage``, one per
Directus, written behind, never with a credential in them."""

import json

from page.snapshot import MAX_ROWS, PREFIX, SAVE_DELAY_MS, SLICE_ROWS, SnapshotStore, dumps
from tests.fakes import Timer
from tests.unit.test_page_outbox import FullStorage, Storage, UnreadableStorage

URL = "http://127.0.0.1:8055"
TOKEN = "secret-token-123"
SNAPSHOT = {"rows": [{"id": "a", "text": "hi", "user": "ada"}], "mark": "2026-12-06T00:00:00Z"}


def make(storage=None):
    storage = storage if storage is not None else Storage()
    warnings = []
    return SnapshotStore(storage, URL, Timer, warnings.append, (TOKEN, None)), storage, warnings


def test_a_snapshot_is_written_behind_once_per_delay_and_read_back():
    store, storage, _ = make()
    assert store.load() is None
    store.save(SNAPSHOT)
    store.save(dict(SNAPSHOT, mark="later"))
    assert storage.writes == 0
    assert store.timer.calls == [("start", SAVE_DELAY_MS)]
    store.timer.fire()
    assert storage.writes == 1
    assert store.load() == dict(SNAPSHOT, mark="later")  # the latest one
    store.flush()
    assert storage.writes == 1  # nothing new


def test_flush_writes_at_once():
    store, storage, _ = make()
    store.save(SNAPSHOT)
    store.flush()
    assert json.loads(storage.items[PREFIX + URL]) == SNAPSHOT


def test_each_directus_has_its_own_snapshot():
    storage = Storage()
    one = SnapshotStore(storage, URL, Timer, [].append)
    other = SnapshotStore(storage, "https://other.example", Timer, [].append)
    one.save(SNAPSHOT)
    one.flush()
    assert other.load() is None
    assert one.load() == SNAPSHOT


def test_a_snapshot_holding_a_credential_is_never_written():
    store, storage, warnings = make()
    store.save({"rows": [], "auth": TOKEN})
    store.flush()
    assert storage.writes == 0
    assert warnings == ["The list of messages was not saved: it held a credential."]


def test_a_snapshot_of_the_wrong_shape_is_dropped_with_a_warning():
    for raw in ("[1, 2]", "not json", "[" * 5000, "5"):
        store, storage, warnings = make(Storage({PREFIX + URL: raw}))
        assert store.load() is None
        assert PREFIX + URL not in storage.items
        assert len(warnings) == 1, raw


def test_a_full_or_unreadable_storage_is_a_warning_not_an_exception():
    store, _, warnings = make(FullStorage())
    store.save(SNAPSHOT)
    store.flush()
    assert len(warnings) == 1 and "QuotaExceededError" in warnings[0]
    store, _, warnings = make(UnreadableStorage())
    assert store.load() is None
    store = SnapshotStore(None, URL, Timer, [].append)
    store.save(SNAPSHOT)
    store.flush()
    assert store.load() is None


def test_a_long_window_is_kept_to_its_first_rows():
    rows = [{"id": str(i), "text": "m %d" % i, "user": "u"} for i in range(MAX_ROWS + 5)]
    store, storage, _ = make()
    store.save({"collection": "messages", "query": {"limit": 2000}, "rows": rows})
    store.flush()
    kept = json.loads(storage.items[PREFIX + URL])
    assert kept == {"collection": "messages", "query": {"limit": 2000}, "rows": rows[:MAX_ROWS]}


def test_dumps_is_json_of_the_snapshot_whatever_its_shape():
    for snapshot in ({"rows": []}, {"rows": [{"a": [1, "é"]}]}, {"x": 1}, {"rows": "?", "y": None}):
        assert json.loads(dumps(snapshot)) == snapshot


def test_a_long_snapshot_is_written_behind_a_slice_of_rows_per_task():
    store, storage, _ = make()
    rows = [{"id": str(i), "text": "m%d" % i} for i in range(SLICE_ROWS * 2 + 1)]
    store.save({"rows": rows})
    store.timer.fire()
    store.timer.fire()
    assert storage.writes == 0
    assert store.timer.calls == [("start", SAVE_DELAY_MS), ("start", 0), ("start", 0)]
    newer = {"rows": rows[1:]}
    store.save(newer)  # a newer snapshot meanwhile: its rows are serialised from the start
    for _ in range(3):
        store.timer.fire()
    assert storage.writes == 1
    assert json.loads(storage.items[PREFIX + URL]) == newer

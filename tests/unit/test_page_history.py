"""Unit tests of page/history.py: the reads of messages, page by page, and their order.

``Server`` stands for Directus: a list of items with ``date_created``, and each query answered
by applying its filter, sort and limit. Items that share a ``date_created`` come back in an
order of the server's choosing (``ties``), as SQL gives no order among equal keys.
"""

import random

import pytest

from page.history import EVERYTHING, FIELDS, PAGE, Reading, in_date_order, page_query


def date(n: int) -> str:
    return "2024-05-01T%08d" % n  # (fixed width: compares as the dates do)


def make_items(n: int, same_date=()) -> list:
    """``n`` items, oldest first; the positions in ``same_date`` share one date_created."""
    dates = [date(i) for i in range(n)]
    same = sorted(same_date)
    for i in same:
        dates[i] = dates[same[0]]
    return [
        {"id": "m%05d" % i, "text": "t", "user": "u", "date_created": dates[i]} for i in range(n)
    ]


class Server:
    def __init__(self, items: list, ties: str = "stable", seed: int = 0) -> None:
        self.items = items
        self.ties = ties
        self.rng = random.Random(seed)
        self.queries = []

    def answer(self, query: dict) -> list:
        self.queries.append(query)
        assert query["fields"] == FIELDS
        assert 0 < query["limit"]
        found = list(self.items)
        for field, ops in (query.get("filter") or {}).items():
            for op, value in ops.items():
                if op == "_lte":
                    found = [item for item in found if item[field] <= value]
                elif op == "_gte":
                    found = [item for item in found if item[field] >= value]
                else:
                    raise AssertionError("unexpected filter " + op)
        if self.ties == "shuffled":
            self.rng.shuffle(found)
        (sort,) = query["sort"]
        descending = sort.startswith("-")
        found.sort(key=lambda item: item[sort.lstrip("-")], reverse=descending)
        return found[: query["limit"]]


def read(server: Server, reading: Reading, shown=None) -> list:
    """What ``page.app.read`` shows, in the order shown; ``shown`` is the ids on screen."""
    shown = shown if shown is not None else {}
    out = []
    for _ in range(1000):
        fresh = reading.arrived(server.answer(reading.query()), shown)
        for item in fresh:
            shown[str(item["id"])] = item
        out.extend(fresh)
        if not reading.more:
            assert reading.shown == len(out)
            return out
    raise AssertionError("the reading never ends")


def check_newest(out: list, items: list, wanted) -> None:
    """``out`` is the ``wanted`` newest of ``items`` (all of them for EVERYTHING), newest
    first, each once."""
    ids = [item["id"] for item in out]
    assert len(ids) == len(set(ids))
    count = len(items) if wanted is EVERYTHING else min(wanted, len(items))
    assert len(out) == count
    dates = [item["date_created"] for item in out]
    assert dates == sorted(dates, reverse=True)
    if out:
        oldest = dates[-1]
        newer = {item["id"] for item in items if item["date_created"] > oldest}
        assert newer <= set(ids)


# --- in_date_order ----------------------------------------------------------------------------


def test_in_date_order():
    items = make_items(5)
    assert in_date_order(items) == items
    assert in_date_order(items[::-1]) == items
    mixed = [items[2], items[0], items[4], items[1], items[3]]
    assert in_date_order(mixed) == items
    assert in_date_order([]) == []
    assert in_date_order(items[:1]) == items[:1]


def test_in_date_order_with_equal_keys_keeps_them():
    items = make_items(4, same_date=range(4))
    assert in_date_order(items) == items
    two = make_items(2)
    assert in_date_order(two[::-1] + [dict(two[1], id="again")]) == [
        two[0],
        two[1],
        dict(two[1], id="again"),
    ]


def test_in_date_order_missing_dates_come_first():
    items = make_items(2)
    undated = {"id": "x"}
    assert in_date_order([items[1], undated, items[0]]) == [undated, items[0], items[1]]


# --- page_query -------------------------------------------------------------------------------


def test_page_query_without_a_bound():
    assert page_query(None, 100, newest_first=True) == {
        "fields": FIELDS,
        "limit": 100,
        "sort": ["-date_created"],
    }
    assert page_query(None, EVERYTHING, newest_first=True)["limit"] == PAGE
    assert page_query(None, 10_000, newest_first=True)["limit"] == PAGE


def test_page_query_newest_first_from_a_bound():
    query = page_query(date(7), 100, newest_first=True)
    assert query["filter"] == {"date_created": {"_lte": date(7)}}
    assert query["sort"] == ["-date_created"]
    assert query["limit"] == 101  # the bound's own row comes again


def test_page_query_oldest_first_from_a_bound():
    query = page_query(date(7), EVERYTHING, newest_first=False)
    assert query["filter"] == {"date_created": {"_gte": date(7)}}
    assert query["sort"] == ["date_created"]
    assert query["limit"] == PAGE + 1


# --- Reading: the latest on load, over pages --------------------------------------------------


@pytest.mark.parametrize("wanted", [1, 100, 1000, 1001, 10_000, EVERYTHING])
@pytest.mark.parametrize("n", [0, 1, 999, 1000, 1001, 2500])
def test_the_latest_are_read_over_pages(n, wanted):
    items = make_items(n)
    server = Server(items)
    out = read(server, Reading(wanted, newest_first=True))
    check_newest(out, items, wanted)
    assert all(query["limit"] <= PAGE + 1 for query in server.queries)
    if wanted == 100:
        assert len(server.queries) == 1


@pytest.mark.parametrize("ties", ["stable", "shuffled"])
@pytest.mark.parametrize("wanted", [100, 1001, 1500, 10_000, EVERYTHING])
@pytest.mark.parametrize(
    "same_date",
    [
        range(1490, 1510),  # across the first page boundary (newest first: 1500 newest)
        range(1498, 1502),
        range(1495, 1501),  # ends exactly on the boundary
        range(0, 2),
        range(2498, 2500),
    ],
    ids=["20-across", "4-across", "6-to-boundary", "oldest-two", "newest-two"],
)
def test_many_messages_sharing_a_date_across_a_page_boundary(same_date, wanted, ties):
    items = make_items(2500, same_date)
    out = read(Server(items, ties), Reading(wanted, newest_first=True))
    check_newest(out, items, wanted)


@pytest.mark.parametrize("ties", ["stable", "shuffled"])
@pytest.mark.parametrize("wanted", [1000, 1001, 2000, EVERYTHING])
def test_more_than_a_page_sharing_one_date(wanted, ties):
    items = make_items(3000, same_date=range(500, 2100))
    out = read(Server(items, ties), Reading(wanted, newest_first=True))
    check_newest(out, items, wanted)


@pytest.mark.parametrize("wanted", [1, 100, 10_000])
def test_load_older_reads_before_the_oldest_shown(wanted):
    items = make_items(2500, same_date=range(2395, 2405))
    server = Server(items)
    shown = {}
    first = read(server, Reading(100, newest_first=True), shown)
    oldest = first[-1]["date_created"]
    older = read(server, Reading(wanted, newest_first=True, bound=oldest), shown)
    check_newest(first + older, items, min(100 + wanted, 2500))


def test_load_older_at_the_oldest_reads_nothing_more():
    items = make_items(50)
    server = Server(items)
    shown = {}
    read(server, Reading(100, newest_first=True), shown)
    reading = Reading(100, newest_first=True, bound=items[0]["date_created"])
    assert read(server, reading, shown) == []
    assert len(server.queries) == 2


# --- Reading: the catch-up after a reconnect (issue 14, item 10) -----------------------------


@pytest.mark.parametrize("ties", ["stable", "shuffled"])
@pytest.mark.parametrize("missed", [0, 1, 999, 1000, 1001, 2500])
def test_the_catch_up_reads_everything_missed_oldest_first(missed, ties):
    before = 300
    same_date = range(before - 3, before + 3)  # the newest shown shares a date with missed ones
    items = make_items(before + missed, same_date if missed > 3 else ())
    server = Server(items[:before], ties)
    shown = {}
    read(server, Reading(100, newest_first=True), shown)
    server.items = items  # the page was away while ``missed`` arrived
    newest = max(item["date_created"] for item in shown.values())
    on_screen = set(shown)
    out = read(server, Reading(EVERYTHING, newest_first=False, bound=newest), shown)
    expected = [item["id"] for item in items[before - 100 :] if item["id"] not in on_screen]
    assert len(expected) == missed
    assert sorted(item["id"] for item in out) == expected
    dates = [item["date_created"] for item in out]
    assert dates == sorted(dates)
    assert len(shown) == 100 + len(out)


def test_the_catch_up_goes_on_past_messages_shown_meanwhile():
    # A full page of messages on screen already (shown by the subscription meanwhile, or
    # sharing one date) is skipped, not a reason to stop: unread ones may follow it.
    items = make_items(3000)
    server = Server(items)
    shown = {item["id"]: item for item in items[:10]}
    shown.update({item["id"]: item for item in items[1000:2100]})  # (shown meanwhile)
    out = read(
        server, Reading(EVERYTHING, newest_first=False, bound=items[9]["date_created"]), shown
    )
    assert [item["id"] for item in out] == [item["id"] for item in items[10:1000] + items[2100:]]


def test_reading_says_when_more_follow():
    server = Server(make_items(1500))
    reading = Reading(EVERYTHING, newest_first=True)
    first = reading.arrived(server.answer(reading.query()), {})
    assert len(first) == PAGE and reading.more
    assert reading.query()["filter"] == {"date_created": {"_lte": date(500)}}
    second = reading.arrived(server.answer(reading.query()), {item["id"]: 1 for item in first})
    assert len(second) == 500 and not reading.more

"""Unit tests of page/history.py: the one query the page shows, and the date order of rows."""

from page.history import FIELDS, in_date_order, window_query


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


def test_the_window_is_the_latest_rows_newest_first():
    assert window_query(100) == {"fields": FIELDS, "sort": ["-date_created"], "limit": 100}
    assert window_query(250)["limit"] == 250
    assert FIELDS == ["*"]  # date_updated too, where the collection has it


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

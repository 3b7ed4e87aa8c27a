"""Unit tests of page/reconcile.py: when the page checks for messages the bus lost, and from
where it reads. Time is an input (seconds)."""

from page.reconcile import EVERY, GRACE, REMEMBERED, Reconciler


def subscribed(now: float = 0.0, newest: str | None = "d00") -> Reconciler:
    r = Reconciler()
    r.subscribed(now, newest)
    return r


def test_nothing_is_due_before_the_subscription():
    r = Reconciler()
    assert r.next_deadline() is None
    assert not r.due(10_000.0)
    r.wrote("a", 0.0)  # an answer before any subscription: nothing to watch yet
    assert r.next_deadline() is None


def test_the_slow_timer_is_due_every_interval_after_a_check():
    r = subscribed(100.0)
    assert r.next_deadline() == 100.0 + EVERY
    assert not r.due(100.0 + EVERY - 0.01)
    assert r.due(100.0 + EVERY)
    r.start(100.0 + EVERY, "d05")
    assert not r.due(100.0 + 3 * EVERY)  # one check at a time
    r.finished(100.0 + EVERY + 2.0)
    assert r.next_deadline() == 100.0 + 2 * EVERY + 2.0


def test_an_own_write_without_its_event_makes_a_check_due_after_the_grace():
    r = subscribed(0.0)
    r.wrote("w1", 5.0)
    assert r.next_deadline() == 5.0 + GRACE
    assert not r.due(5.0 + GRACE - 0.01)
    assert r.due(5.0 + GRACE)


def test_an_own_write_whose_event_arrives_makes_nothing_due():
    r = subscribed(0.0)
    r.wrote("w1", 5.0)
    r.delivered("w1")
    assert r.next_deadline() == EVERY


def test_an_event_that_beats_its_write_answer_counts():
    r = subscribed(0.0)
    r.delivered("w1")
    r.wrote("w1", 5.0)
    assert r.next_deadline() == EVERY


def test_only_the_latest_events_are_remembered():
    r = subscribed(0.0)
    for i in range(REMEMBERED + 10):
        r.delivered(f"e{i}")
    assert len(r.delivered_ids) == REMEMBERED
    r.wrote("e0", 1.0)  # forgotten: watched again (a needless check at worst)
    assert r.next_deadline() == 1.0 + GRACE
    r.wrote(f"e{REMEMBERED + 9}", 1.0)
    assert list(r.overdue_at) == ["e0"]


def test_ids_are_compared_as_text():
    r = subscribed(0.0)
    r.delivered(7)
    r.wrote("7", 1.0)
    assert r.overdue_at == {}


def test_a_check_forgets_the_overdue_writes_it_covers_but_not_later_ones():
    r = subscribed(0.0)
    r.wrote("w1", 1.0)
    r.wrote("w2", 3.0)
    r.start(1.0 + GRACE, "d01")
    assert list(r.overdue_at) == ["w2"]
    r.finished(1.5 + GRACE)
    assert r.next_deadline() == 3.0 + GRACE


def test_each_check_reads_from_what_was_shown_two_checks_before():
    r = subscribed(0.0, "d00")  # the catch-up after subscribing counts as a check
    assert r.start(30.0, "d10") == "d00"
    r.finished(31.0)
    assert r.start(61.0, "d20") == "d00"
    r.finished(62.0)
    assert r.start(92.0, "d30") == "d10"
    r.finished(93.0)
    assert r.start(123.0, "d40") == "d20"


def test_a_resubscription_starts_the_marks_again():
    r = subscribed(0.0, "d00")
    for i, at in enumerate((30.0, 60.0, 90.0)):
        r.start(at, f"d{i + 1}")
        r.finished(at)
    r.subscribed(100.0, "d50")
    assert r.next_deadline() == 100.0 + EVERY
    assert r.start(130.0, "d60") == "d50"


def test_nothing_shown_reads_from_nothing():
    r = subscribed(0.0, None)
    assert r.start(30.0, None) is None


def test_unsubscribed_stops_the_timer_and_the_watch():
    r = subscribed(0.0)
    r.wrote("w1", 1.0)
    r.unsubscribed()
    assert r.next_deadline() is None
    r.finished(5.0)
    assert r.next_deadline() is None


def test_a_message_committed_late_is_still_read():
    """The rule of the module docstring, simulated: messages whose commit takes up to one
    interval are all found by some check, whatever the bus lost."""
    every = 10.0
    r = Reconciler(every=every)
    committed = []  # (date_created, committed at)
    for n in range(200):
        created = n * 0.7
        committed.append((created, created + (n % 13) * every / 13))  # commit lag < every
    shown: set = set()

    def newest() -> float | None:
        return max(shown) if shown else None

    r.subscribed(0.0, None)
    now = 0.0
    while now < 200 * 0.7 + 3 * every:
        now += 0.5
        # the bus delivers only every third message
        for created, at in committed:
            if now - 0.5 < at <= now and round(created / 0.7) % 3 == 0:
                shown.add(created)
        if r.due(now):
            bound = r.start(now, newest())
            shown |= {c for c, at in committed if at <= now and (bound is None or c >= bound)}
            r.finished(now)
    assert shown == {c for c, _ in committed}

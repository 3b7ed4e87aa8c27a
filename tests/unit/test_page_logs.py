"""Unit tests of page/logs.py: console lines wait for the row they are about (``flush``), or
for a timer started once per batch."""

from page.logs import ConsoleLines
from tests.fakes import Timer


def make():
    console = []
    lines = ConsoleLines(console.append, Timer)
    return lines, console, lines.timer


def test_lines_wait_until_flush_and_keep_their_order():
    lines, console, _ = make()
    lines.log("event: message")
    lines.log({"type": "subscription"})
    lines.log("new item")
    assert console == []
    lines.flush()
    assert console == ["event: message", {"type": "subscription"}, "new item"]


def test_the_timer_is_started_once_per_batch_and_flush_cancels_it():
    lines, console, timer = make()
    lines.log(1)
    lines.log(2)
    lines.log(3)
    assert timer.calls == [("start", 0)]
    lines.flush()
    assert timer.calls == [("start", 0), ("cancel",)]
    lines.log(4)
    assert timer.calls == [("start", 0), ("cancel",), ("start", 0)]
    assert console == [1, 2, 3]


def test_the_timer_hands_over_lines_no_row_flushed():
    lines, console, timer = make()
    lines.log("opened")
    lines.log("authenticated")
    timer.fire()
    assert console == ["opened", "authenticated"]
    lines.flush()  # (the row's flush, later: nothing twice)
    assert console == ["opened", "authenticated"]


def test_flush_with_nothing_is_a_no_op():
    lines, console, timer = make()
    lines.flush()
    assert console == []
    assert timer.calls == []
    lines.log("x")
    lines.flush()
    lines.flush()
    assert console == ["x"]
    assert timer.calls == [("start", 0), ("cancel",)]


def test_a_line_logged_while_handing_over_waits_for_the_next_batch():
    console = []
    holder = {}

    def hand_over(value):
        console.append(value)
        if value == "first":
            holder["lines"].log("during")

    lines = ConsoleLines(hand_over, Timer)
    holder["lines"] = lines
    lines.log("first")
    lines.log("second")
    lines.flush()
    assert console == ["first", "second"]
    assert lines.timer.calls == [("start", 0), ("cancel",), ("start", 0)]
    lines.flush()
    assert console == ["first", "second", "during"]

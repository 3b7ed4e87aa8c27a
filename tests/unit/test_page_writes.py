"""Unit tests of page/writes.py: what ``create_item`` accepts, and what an answer means for a
write (kept for later, stored, sent again without its id, checked, or refused)."""

import pytest

from directus_realtime import (
    AuthenticationError,
    ConnectionFailed,
    ConnectionLost,
    DirectusError,
    OutboxFull,
    RequestTimeout,
)
from page import writes
from page.writes import CHECK_DUPLICATE, KEPT, REFUSED, STORED, WITHOUT_ID

DATA = {"id": "5f0c-uuid", "text": "hello", "user": "ada"}

# --- check_item -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "user", "words"),
    [
        (None, "ada", "text must be a non-empty string"),
        ("", "ada", "text must be a non-empty string"),
        ("   ", "ada", "text must be a non-empty string"),
        ("\n\t", "ada", "text must be a non-empty string"),
        (5, "ada", "text must be a non-empty string"),
        ("x" * 10_001, "ada", "10001 characters; the limit is 10000"),
        ("hi", None, "user must be a non-empty string"),
        ("hi", "", "user must be a non-empty string"),
        ("hi", "  ", "user must be a non-empty string"),
        ("hi", 5, "user must be a non-empty string"),
        ("hi", ["ada"], "user must be a non-empty string"),
    ],
)
def test_check_item_refuses(text, user, words):
    with pytest.raises(ValueError) as caught:
        writes.check_item(text, user)
    assert words in str(caught.value)
    assert str(caught.value).startswith("create_item: ")


@pytest.mark.parametrize("text", ["hi", "x" * 10_000, " padded ", "é✓"])
def test_check_item_accepts(text):
    writes.check_item(text, "ada")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (DATA, True),
        ({"id": "a", "text": "t", "user": "u", "extra": 1}, True),
        ({"id": "", "text": "t", "user": "u"}, False),
        ({"id": 1, "text": "t", "user": "u"}, False),
        ({"text": "t", "user": "u"}, False),
        ({"id": "a", "text": "", "user": "u"}, False),
        ({"id": "a", "text": "t"}, False),
        (None, False),
        ([DATA], False),
        ("a", False),
    ],
)
def test_is_write(data, expected):
    assert writes.is_write(data) is expected


def test_without_id():
    assert writes.without_id(DATA) == {"text": "hello", "user": "ada"}
    assert DATA["id"] == "5f0c-uuid"  # (a copy)


# --- verdict ----------------------------------------------------------------------------------


def directus(code) -> DirectusError:
    return DirectusError(code, "Directus said " + code)


@pytest.mark.parametrize("first_try", [True, False])
@pytest.mark.parametrize("exactly_once", [None, True, False])
@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (None, STORED),
        (OutboxFull("full"), REFUSED),
        # issue 14, item 1: the reconnect's token refused: the write waits for a new sign-in
        (AuthenticationError("INVALID_CREDENTIALS", "refused"), KEPT),
        (AuthenticationError("FORBIDDEN", "refused"), KEPT),
        (ConnectionFailed("gave up"), KEPT),
        (ConnectionLost("closed"), KEPT),
        (RequestTimeout("no answer"), KEPT),
        (directus("TOKEN_EXPIRED"), KEPT),
        (directus("INVALID_TOKEN"), KEPT),
        (directus("REQUESTS_EXCEEDED"), KEPT),
        (directus("SERVICE_UNAVAILABLE"), KEPT),
        (directus("INVALID_PAYLOAD"), REFUSED),
        (directus("UNKNOWN"), REFUSED),
    ],
)
def test_verdict_whatever_the_try_and_the_delivery(error, expected, first_try, exactly_once):
    assert writes.verdict(error, first_try, exactly_once) == expected


@pytest.mark.parametrize(
    ("first_try", "exactly_once", "expected"),
    [
        (True, None, WITHOUT_ID),  # the chosen id refused, or the create itself? try without
        (True, True, REFUSED),
        (True, False, REFUSED),
        (False, None, REFUSED),
        (False, True, REFUSED),
        (False, False, REFUSED),
    ],
)
def test_verdict_forbidden(first_try, exactly_once, expected):
    assert writes.verdict(directus("FORBIDDEN"), first_try, exactly_once) == expected


@pytest.mark.parametrize(
    ("exactly_once", "expected"),
    [(None, CHECK_DUPLICATE), (True, CHECK_DUPLICATE), (False, REFUSED)],
)
@pytest.mark.parametrize("first_try", [True, False])
def test_verdict_record_not_unique(exactly_once, expected, first_try):
    # With ids the page chooses, a duplicate may be this very write, stored by an earlier try
    # or another tab; where Directus numbers items, it is about something else.
    error = directus("RECORD_NOT_UNIQUE")
    assert writes.verdict(error, first_try, exactly_once) == expected


# --- is_same_write ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (dict(DATA), True),
        (dict(DATA, date_created="2024-01-01T00:00:00"), True),
        (dict(DATA, text="other"), False),
        (dict(DATA, user="bob"), False),
        (dict(DATA, id="another-id"), False),
        ({"text": "hello", "user": "ada"}, False),
        (None, False),
        ([dict(DATA)], False),
        ("5f0c-uuid", False),
    ],
)
def test_is_same_write(row, expected):
    assert writes.is_same_write(DATA, row) is expected


def test_is_same_write_compares_the_id_as_text():
    assert writes.is_same_write(
        {"id": "7", "text": "t", "user": "u"}, {"id": 7, "text": "t", "user": "u"}
    )


# --- delivery_of ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([], None),
        ([{"id": "5f0c-uuid"}], True),
        ([{"id": 12}], False),
        ([{"text": "no id"}, {"id": None}, {"id": True}, {"id": 3}], False),
        ([None, "x", {"id": "u"}], True),
        ([{"id": 1.5}], None),
        ([{"text": "hi"}], None),
    ],
)
def test_delivery_of(items, expected):
    assert writes.delivery_of(items) is expected


# --- waiting_note -----------------------------------------------------------------------------


def test_waiting_note():
    reason = "sign in again (Settings) to send them."
    assert writes.waiting_note(0, reason) == ""
    assert writes.waiting_note(1, reason) == "1 message waiting: " + reason
    assert writes.waiting_note(3, reason) == "3 messages waiting: " + reason

"""Unit tests of page/writes.py: what ``create_item`` accepts (before anything is sent), how the
page tells the delivery a Directus gives, and the line about writes waiting."""

import pytest

from page import writes

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

"""Unit tests of the texts of page/screen.py: the status line, the problem screens and the
delivery note."""

import re

import pytest

from page import screen
from page.screen import PROBLEMS, STATUS_TEXT, delivery_text, problem_text, status_text

URL = "https://project.directus.app"
ORIGIN = "http://127.0.0.1:8000"
PLACEHOLDER = re.compile(r"\{[^}]*\}")


@pytest.mark.parametrize("state", sorted(STATUS_TEXT))
def test_status_text(state):
    assert status_text(state) == STATUS_TEXT[state]
    assert status_text(state, "next attempt in 3 s") == STATUS_TEXT[state] + ": next attempt in 3 s"


def test_status_texts():
    assert status_text("connected") == "Connected"
    assert (
        status_text("error", "INVALID_CREDENTIALS: refused")
        == "Error: INVALID_CREDENTIALS: refused"
    )
    assert set(STATUS_TEXT) == {"connecting", "connected", "reconnecting", "offline", "error"}


@pytest.mark.parametrize("reason", ["", "The token was refused", "The token was refused."])
@pytest.mark.parametrize("kind", sorted(PROBLEMS))
def test_problem_text_leaves_no_placeholder(kind, reason):
    title, todo = problem_text(kind, URL, ORIGIN, reason)
    assert title and todo
    assert not PLACEHOLDER.search(title), title
    assert not PLACEHOLDER.search(todo), todo
    assert ".." not in todo


def test_problem_texts_name_what_they_are_about():
    assert problem_text("unreachable", URL, ORIGIN)[0] == "Directus does not answer at " + URL
    title, todo = problem_text("realtime-off", URL, ORIGIN)
    assert URL in title
    assert "CORS_ORIGIN including " + ORIGIN + "." in todo
    assert "WEBSOCKETS_ENABLED=true" in todo
    _, todo = problem_text("auth", URL, ORIGIN, "INVALID_CREDENTIALS: refused")
    assert todo.startswith("INVALID_CREDENTIALS: refused. Check the token")
    _, todo = problem_text("bad-url", "", ORIGIN, "The Directus URL 'x' is not a valid URL.")
    assert todo.startswith("The Directus URL 'x' is not a valid URL. Open Settings")
    _, todo = problem_text("gave-up", URL, ORIGIN, "CONNECTION_FAILED: gave up")
    assert todo == "CONNECTION_FAILED: gave up. Reload the page to try again."


def test_problem_text_without_a_reason_starts_with_what_to_do():
    # (a leading space where the reason would be: invisible in the page's <p>)
    assert problem_text("bad-url", "", ORIGIN)[1].lstrip().startswith("Open Settings")
    assert problem_text("gave-up", URL, ORIGIN)[1].lstrip() == "Reload the page to try again."


def test_problem_text_takes_braces_in_values_as_they_are():
    title, todo = problem_text("unreachable", "http://h/{url}", ORIGIN, "{reason}")
    assert title == "Directus does not answer at http://h/{url}"


def test_every_settings_error_kind_has_a_problem_screen():
    from page.settings import SettingsError, check_url

    with pytest.raises(SettingsError) as caught:
        check_url("127.0.0.1:8055")
    assert caught.value.kind in PROBLEMS
    assert SettingsError("x").kind in PROBLEMS


def test_delivery_text():
    assert "exactly once" in delivery_text(True)
    at_least = delivery_text(False)
    assert "at-least-once" in at_least and "stored twice" in at_least
    assert delivery_text(True) != at_least


def test_the_module_imports_no_pyscript():
    assert "pyscript" not in screen.__dict__

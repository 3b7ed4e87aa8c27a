"""Unit tests of page/settings.py: where the page connects and how it signs in.

``resolve`` puts the module's functions together in the order ``page.app.read_settings``
does (query string, sessionStorage, localStorage, the local stack), so each source and its
order is checked on plain values, without a browser.
"""

import json

import pytest

from page import settings
from page.settings import SettingsError

URL = "https://project.directus.app"
OTHER = "https://other.example"
STACK = {"directus_url": "http://127.0.0.1:8055", "token": "STACK-TOKEN"}


def saved(**values) -> str:
    return json.dumps(values)


def resolve(query=None, session=None, local=None, stack=None, warnings=None) -> dict:
    """The settings ``page.app`` connects with, from these sources (raw storage texts)."""
    warn = (warnings if warnings is not None else []).append
    found = settings.from_query(query or {}, warn)
    if not settings.complete(found):
        for raw in (session, local):
            found = settings.merged(found, settings.from_saved(raw, warn))
    if not settings.complete(found) and stack:
        found = settings.with_local_stack(found, stack)
    return settings.checked(found)


# --- sources and their order ----------------------------------------------------------------


def test_a_complete_query_string_is_used_as_it_is():
    got = resolve(
        {"url": URL, "token": "Q"},
        session=saved(url=URL, token="S"),
        local=saved(url=URL, token="L"),
        stack=STACK,
    )
    assert (got["url"], got["token"]) == (URL, "Q")


def test_a_complete_query_string_with_email_and_password():
    got = resolve({"url": URL, "email": "a@b.c", "password": "pw"}, stack=STACK)
    assert (got["email"], got["password"], got["token"]) == ("a@b.c", "pw", None)


def test_query_values_are_stripped_and_blank_ones_are_missing():
    found = settings.from_query({"url": "  " + URL + " ", "token": "   "}, [].append)
    assert found["url"] == URL
    assert found["token"] is None
    assert found["email"] is None and found["password"] is None


@pytest.mark.parametrize("where", ["session", "local"])
def test_the_query_url_is_completed_by_what_was_saved_for_the_same_url(where):
    got = resolve({"url": URL}, **{where: saved(url=URL, token="SAVED")})
    assert (got["url"], got["token"]) == (URL, "SAVED")


@pytest.mark.parametrize("where", ["session", "local"])
def test_without_a_url_what_was_saved_is_used(where):
    got = resolve({}, **{where: saved(url=URL, email="a@b.c", password="pw")})
    assert (got["url"], got["email"], got["password"]) == (URL, "a@b.c", "pw")


def test_session_storage_comes_before_local_storage():
    got = resolve({}, session=saved(url=URL, token="S"), local=saved(url=URL, token="L"))
    assert got["token"] == "S"


def test_local_storage_fills_what_session_storage_lacks_for_the_same_url():
    got = resolve({}, session=saved(url=URL), local=saved(url=URL, token="L"))
    assert got["token"] == "L"


def test_local_storage_for_another_url_does_not_complete_session_storage():
    with pytest.raises(SettingsError):
        resolve({}, session=saved(url=URL), local=saved(url=OTHER, token="L"))


@pytest.mark.parametrize("where", ["session", "local"])
def test_what_was_saved_for_another_url_is_ignored(where):
    with pytest.raises(SettingsError) as caught:
        resolve({"url": URL}, **{where: saved(url=OTHER, token="SAVED")})
    assert caught.value.kind == "settings"


def test_the_query_token_wins_over_a_saved_one():
    got = resolve({"url": URL, "token": "Q"}, session=saved(url=URL, token="S"))
    assert got["token"] == "Q"


def test_merged_keeps_what_was_found():
    found = {"url": URL, "token": None, "email": "q@b.c", "password": None, "history": 7}
    out = settings.merged(found, {"url": URL, "email": "s@b.c", "password": "pw"})
    assert out == {"url": URL, "token": None, "email": "q@b.c", "password": "pw", "history": 7}
    assert found["password"] is None  # (not changed in place)
    assert settings.merged(found, None) is found


def test_the_local_stack_is_used_when_there_is_no_url():
    got = resolve({}, stack=STACK)
    assert (got["url"], got["token"]) == ("http://127.0.0.1:8055", "STACK-TOKEN")


def test_the_local_stack_token_goes_to_the_local_directus_asked_for_by_url():
    got = resolve({"url": "http://127.0.0.1:8055/"}, stack=STACK)
    assert (got["url"], got["token"]) == ("http://127.0.0.1:8055", "STACK-TOKEN")


def test_the_local_stack_token_never_goes_to_another_url():
    # ?url=<somewhere else> without a token must not get the stack's token
    with pytest.raises(SettingsError):
        resolve({"url": OTHER}, stack=STACK)
    found = settings.from_query({"url": OTHER}, [].append)
    assert settings.with_local_stack(found, STACK)["token"] is None


def test_the_local_stack_token_is_not_added_to_an_email_and_password():
    found = settings.from_query({"email": "a@b.c", "password": "pw"}, [].append)
    out = settings.with_local_stack(found, STACK)
    assert out["url"] == STACK["directus_url"]
    assert out["token"] is None


def test_the_local_stack_without_a_url_changes_nothing():
    found = settings.from_query({}, [].append)
    assert settings.with_local_stack(found, {"token": "T"}) == found


def test_saved_settings_come_before_the_local_stack():
    got = resolve({}, local=saved(url=URL, token="L"), stack=STACK)
    assert (got["url"], got["token"]) == (URL, "L")


def test_nothing_anywhere_is_a_settings_problem():
    with pytest.raises(SettingsError) as caught:
        resolve({})
    assert caught.value.kind == "settings"
    assert "?url=" in caught.value.message


def test_an_email_without_a_password_is_not_enough():
    with pytest.raises(SettingsError):
        resolve({"url": URL, "email": "a@b.c"})


def test_checked_checks_the_url():
    with pytest.raises(SettingsError) as caught:
        resolve({"url": "127.0.0.1:8055", "token": "T"})
    assert caught.value.kind == "bad-url"


# --- check_url --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:8055",  # no scheme
        "localhost",
        "ftp://example.com",
        "javascript:alert(1)",
        "javascript://example.com/%0aalert(1)",
        "ws://example.com",
        "http//example.com",
        "http://",
        "http:///path",
        "http://host:0",
        "http://host:65536",
        "http://127.0.0.1:99999",  # a port out of range
        "http://host:",
        "http://host:port",
        "http://host:-1",
        "http://host:²",  # a digit for str.isdigit(), not for int()
        "http://ho st",
        "http://host/a b",
        "http://ho\tst",
        "http://user:pw@host",
        "http://user@host:8055",
        "http://[::1",
        "http://[::1]:",
        "http://[::1]x",
        "http://host/<script>",
        "",
        "   ",
        None,
        5,
    ],
)
def test_check_url_refuses(url):
    with pytest.raises(SettingsError) as caught:
        settings.check_url(url)
    assert caught.value.kind == "bad-url"
    assert repr(url) in caught.value.message
    assert "https://" in caught.value.message  # what a good one looks like


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8055", "http://127.0.0.1:8055"),
        ("https://project.directus.app", "https://project.directus.app"),
        ("https://project.directus.app/", "https://project.directus.app"),
        ("https://example.com/directus//", "https://example.com/directus"),
        ("HTTP://Example.com", "http://Example.com"),
        ("HttpS://example.com:443/", "https://example.com:443"),
        ("  http://localhost:8055  ", "http://localhost:8055"),
        ("http://[::1]:8055", "http://[::1]:8055"),
        ("http://[::1]", "http://[::1]"),
        ("http://host:1", "http://host:1"),
        ("http://host:65535", "http://host:65535"),
    ],
)
def test_check_url_accepts(url, expected):
    assert settings.check_url(url) == expected


def test_same_url_ignores_case_spaces_and_a_trailing_slash():
    assert settings.same_url(" HTTP://127.0.0.1:8055/ ", "http://127.0.0.1:8055")
    assert not settings.same_url("http://127.0.0.1:8055", "http://127.0.0.1:8056")


# --- ?history= --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected", "warned"),
    [
        (None, settings.HISTORY, False),
        ("", settings.HISTORY, False),
        ("50", 50, False),
        ("1", 1, False),
        ("10000", 10_000, False),
        ("-1", 1, True),
        ("0", 1, True),
        ("10001", 10_000, True),
        ("99999999999999999999", 10_000, True),
        ("abc", settings.HISTORY, True),
        ("1e3", settings.HISTORY, True),
        ("2.5", settings.HISTORY, True),
    ],
)
def test_read_history(raw, expected, warned):
    warnings = []
    assert settings.read_history(raw, warnings.append) == expected
    assert len(warnings) == (1 if warned else 0)
    if warned:
        assert "?history=" in warnings[0]


def test_history_comes_from_the_query_string():
    warnings = []
    found = settings.from_query({"url": URL, "token": "T", "history": "-1"}, warnings.append)
    assert found["history"] == 1
    assert len(warnings) == 1
    assert resolve({"url": URL, "token": "T"})["history"] == settings.HISTORY


# --- saved values of the wrong shape ------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["{", "[1,2]", '{"url": 5}', "null", '"x"', "5", "{}", '{"token": "T"}', "[" * 5000]
)
def test_from_saved_ignores_what_is_not_readable_with_a_warning(raw):
    warnings = []
    assert settings.from_saved(raw, warnings.append) is None
    assert len(warnings) == 1
    assert "ignored" in warnings[0]


@pytest.mark.parametrize("raw", [None, ""])
def test_from_saved_nothing_saved(raw):
    warnings = []
    assert settings.from_saved(raw, warnings.append) is None
    assert warnings == []


def test_from_saved_keeps_only_string_values():
    raw = json.dumps({"url": URL, "token": 5, "email": None, "password": "pw", "other": "x"})
    assert settings.from_saved(raw, [].append) == {"url": URL, "password": "pw"}


def test_corrupt_saved_settings_fall_through_to_the_next_source():
    warnings = []
    got = resolve({}, session="{", local=saved(url=URL, token="L"), warnings=warnings)
    assert got["token"] == "L"
    assert len(warnings) == 1


# --- the Settings form ----------------------------------------------------------------------------


def test_from_form_with_a_token():
    chosen = settings.from_form(
        {"url": URL + "/", "method": "token", "token": " T ", "email": "a@b.c", "password": "p"}
    )
    assert chosen == {"url": URL, "token": "T"}


def test_from_form_with_email_and_password():
    chosen = settings.from_form(
        {"url": URL, "method": "login", "token": "T", "email": " a@b.c ", "password": " pw "}
    )
    assert chosen == {"url": URL, "email": "a@b.c", "password": " pw "}


@pytest.mark.parametrize("url", ["", None, "127.0.0.1:8055", "ftp://x"])
def test_from_form_refuses_a_bad_url(url):
    with pytest.raises(SettingsError) as caught:
        settings.from_form({"url": url, "method": "token", "token": "T"})
    assert caught.value.kind == "bad-url"


def test_what_the_form_saves_is_read_back_for_the_url_it_opens():
    chosen = settings.from_form({"url": URL + "/", "method": "token", "token": "T"})
    got = resolve({"url": chosen["url"]}, local=json.dumps(chosen))
    assert (got["url"], got["token"]) == (URL, "T")


# ----- to_save: what a tab keeps of settings that came in the query string -----


def test_to_save_keeps_the_url_and_the_token_only():
    found = {"url": "http://h", "token": "T", "email": None, "password": None, "history": 5}
    assert settings.to_save(found) == {"url": "http://h", "token": "T"}


def test_to_save_keeps_email_and_password_when_there_is_no_token():
    found = {"url": "http://h", "token": None, "email": "a@b", "password": "p", "history": 5}
    assert settings.to_save(found) == {"url": "http://h", "email": "a@b", "password": "p"}


def test_what_a_tab_kept_completes_a_reload_whose_query_lost_the_token():
    kept = json.dumps(settings.to_save({"url": "http://h", "token": "T"}))
    reloaded = settings.from_query({"url": "http://h"}, lambda text: None)
    assert settings.merged(reloaded, settings.from_saved(kept, lambda text: None))["token"] == "T"

"""Where the page connects and how it signs in, checked before anything is sent.

Sources, in order: the query string (``?url=&token=`` or ``?url=&email=&password=``), what the
Settings panel saved (sessionStorage, or localStorage when "remember" was ticked), then
``./config.json`` beside the page (the page server's names the local stack that ``make run``
started, with its token; ``make dist``'s may name a Directus). Every function here takes plain
values (the query's parameters as a dict, a storage's raw text) and returns plain values, so
each rule is tested in CPython; ``page.app`` reads the browser's storages and query string.
"""

import json

KEY = "directus-realtime:settings"  # the Settings panel's saved values, in either storage
SECRETS = ("token", "password", "email")  # taken out of the address bar at once
NAMES = ("url", "token", "email", "password")
HISTORY = 100  # messages shown on load, and per "load older"
HISTORY_MAX = 10_000  # ?history= beyond this is clamped: one page holds them all in the DOM
GOOD_URL = "a good one looks like https://your-project.directus.app or http://127.0.0.1:8055"


class SettingsError(Exception):
    """The settings cannot work; the message says which value and what a good one is."""

    def __init__(self, message: str, kind: str = "settings") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind  # a problem screen of page.screen (settings, bad-url)


def check_url(url) -> str:
    """``url`` as the page uses it (no trailing slash), or ``SettingsError`` that names it.

    Only ``http(s)://host[:port][/path]``: anything else would hang the browser's WebSocket
    constructor or send the token somewhere unintended.
    """
    text = url.strip() if isinstance(url, str) else ""
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise SettingsError(
            "The Directus URL %r has no http:// or https:// in front; %s." % (url, GOOD_URL),
            "bad-url",
        )
    host_port = rest.split("/", 1)[0]
    host, port = host_port, ""
    if host_port.startswith("["):  # an IPv6 literal: [::1]:8055
        end = host_port.find("]")
        host, port = host_port[: end + 1], host_port[end + 1 :].lstrip(":")
    elif ":" in host_port:
        host, port = host_port.rsplit(":", 1)
    bad = (
        not host
        or "@" in host_port
        or any(char in text for char in " \t\n\"'<>\\")
        or (port and not (all(c in "0123456789" for c in port) and 0 < int(port) < 65536))
        or (host_port.endswith(":") and not port)
    )
    if bad:
        raise SettingsError(
            "The Directus URL %r is not a valid URL; %s." % (url, GOOD_URL), "bad-url"
        )
    return scheme.lower() + "://" + rest.rstrip("/")


def read_history(raw, warn) -> int:
    """``?history=``: how many messages to show on load, within 1..HISTORY_MAX.

    A value outside is clamped and a non-number ignored, each with a console note.
    """
    if raw is None or raw == "":
        return HISTORY
    try:
        wanted = int(raw)
    except ValueError:
        warn("?history=%s is not a number: showing the latest %d messages." % (raw, HISTORY))
        return HISTORY
    clamped = min(max(wanted, 1), HISTORY_MAX)
    if clamped != wanted:
        warn("?history=%d is outside 1-%d: showing %d." % (wanted, HISTORY_MAX, clamped))
    return clamped


def from_query(params: dict, warn) -> dict:
    """The settings in the query string; ``params`` maps each name to its value or None."""
    found = {}
    for name in NAMES:
        value = params.get(name)
        found[name] = value.strip() if isinstance(value, str) and value.strip() else None
    found["history"] = read_history(params.get("history"), warn)
    return found


def from_saved(raw, warn):
    """What the Settings panel saved (the storage's raw text), or None when there is nothing
    usable. A value of the wrong shape is dropped with a console note."""
    if not raw:
        return None
    try:
        saved = json.loads(raw)
    except Exception:  # not only ValueError: deep nesting raises RecursionError
        saved = None
    if not isinstance(saved, dict) or not isinstance(saved.get("url"), str):
        warn("Saved settings are not readable and were ignored: " + repr(raw[:80]))
        return None
    return {name: saved[name] for name in NAMES if isinstance(saved.get(name), str)}


def merged(found: dict, saved) -> dict:
    """``found`` completed with ``saved`` when they are for the same Directus (or no URL was
    asked for)."""
    if not saved or found["url"] not in (None, saved.get("url")):
        return found
    out = dict(found)
    for name in NAMES:
        out[name] = out[name] or saved.get(name)
    return out


def with_local_stack(found: dict, local: dict) -> dict:
    """``found`` completed with the local stack's URL and token, but the token only goes to the
    local Directus: never to another ``?url=``."""
    out = dict(found)
    url = local.get("directus_url")
    if not isinstance(url, str):
        return out
    if out["url"] is None or same_url(out["url"], url):
        out["url"] = out["url"] or url
        if not (out["email"] and out["password"]):
            out["token"] = out["token"] or local.get("token")
    return out


def same_url(a: str, b: str) -> bool:
    return a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()


def complete(found: dict) -> bool:
    return bool(found["url"] and (found["token"] or (found["email"] and found["password"])))


def checked(found: dict) -> dict:
    """The settings the page connects with, or ``SettingsError`` saying what is missing."""
    if found["url"] and not complete(found):  # e.g. make dist's config.json names a Directus
        raise SettingsError(
            "Open Settings and enter a static token (or email and password) for %s, or open "
            "this page as ?url=<Directus URL>&token=<static token>." % check_url(found["url"])
        )
    if not complete(found):
        raise SettingsError(
            "No Directus to talk to: open Settings, or open this page as "
            "?url=<Directus URL>&token=<static token>, or start the local one with `make run`."
        )
    out = dict(found)
    out["url"] = check_url(found["url"])
    return out


def from_form(values: dict) -> dict:
    """What the Settings panel's form asks for (``values``: url, method, token, email,
    password), checked; ``SettingsError`` when the URL is not one."""
    chosen = {"url": check_url(values.get("url") or "")}
    if values.get("method") == "login":
        chosen["email"] = (values.get("email") or "").strip()
        chosen["password"] = values.get("password") or ""
    else:
        chosen["token"] = (values.get("token") or "").strip()
    return chosen


def to_save(found: dict) -> dict:
    """What a tab keeps of ``found`` (sessionStorage) so that a reload connects again: the URL
    and either the token or the email and password."""
    if found.get("token"):
        return {"url": found["url"], "token": found["token"]}
    return {"url": found["url"], "email": found["email"], "password": found["password"]}

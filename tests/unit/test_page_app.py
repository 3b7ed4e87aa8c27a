"""Unit tests of page/app.py: what the page does around its live query, with fakes for
``document``, ``window`` and PyScript's FFI (a ``pyscript`` module installed before
page.browser imports it), the client and the live query.

The page owns: where to connect (and the problem screen when that cannot work), the status
line, the stores it gives the library, the checks when the tab comes back, ``create_item``
through the live query, and "Load older". The rows themselves are page/view.py's
(tests/unit/test_page_view.py).
"""

import asyncio
import json
import sys
import types
import urllib.parse

import pytest

# ----- a browser, as far as the page uses it ------------------------------------------------


class Data:
    """A DOM dataset, or any bag of attributes."""


class Element:
    def __init__(self, name="") -> None:
        self.name = name
        self.dataset = Data()
        self.hidden = False
        self.open = False
        self.textContent = ""
        self.value = ""
        self.checked = False
        self.listeners = {}
        self.children = {}
        self.elements = Fields()

    def addEventListener(self, kind, handler):
        self.listeners[kind] = handler

    def querySelector(self, selector):
        return self.children.setdefault(selector, Element(selector))


class Fields:
    """A form's ``elements``: a field by name, made when first asked for."""

    def __getattr__(self, name):
        field = Element(name)
        setattr(self, name, field)
        return field


class Document:
    def __init__(self) -> None:
        self.elements = {}
        self.body = Element("body")
        self.visibilityState = "visible"
        self.onvisibilitychange = None

    def getElementById(self, name):
        return self.elements.setdefault(name, Element(name))

    def querySelector(self, selector):
        return self.getElementById(selector)


class Storage:
    def __init__(self) -> None:
        self.items = {}

    def getItem(self, key):
        return self.items.get(key)

    def setItem(self, key, value):
        self.items[key] = value

    def removeItem(self, key):
        self.items.pop(key, None)


class SearchParams:
    def __init__(self, search) -> None:
        self.pairs = urllib.parse.parse_qsl(search.lstrip("?"))

    def has(self, name):
        return any(key == name for key, _ in self.pairs)

    def get(self, name):
        return next((value for key, value in self.pairs if key == name), None)

    def delete(self, name):
        self.pairs = [(key, value) for key, value in self.pairs if key != name]

    def toString(self):
        return urllib.parse.urlencode(self.pairs)


class Deferred:
    def __init__(self) -> None:
        self.promise = self
        self.outcome = None

    def resolve(self, value):
        self.outcome = ("resolved", value)

    def reject(self, error):
        self.outcome = ("rejected", error)


class Window:
    def __init__(self, search="") -> None:
        self.location = Data()
        self.location.origin = "http://127.0.0.1:8000"
        self.location.search = search
        self.location.pathname = "/"
        self.console = Data()
        self.logged = []
        self.console.log = lambda *a: self.logged.append(("log",) + a)
        self.console.warn = lambda *a: self.logged.append(("warn",) + a)
        self.console.error = lambda *a: self.logged.append(("error",) + a)
        self.timers = []
        self.navigator = Data()
        self.navigator.onLine = True
        self.navigator.locks = None
        self.localStorage = Storage()
        self.sessionStorage = Storage()
        self.history = Data()
        self.history.replaceState = lambda state, title, url: setattr(self, "replaced", url)
        self.crypto = Data()
        self.crypto.randomUUID = lambda: "tab-1"
        self.URLSearchParams = Data()
        self.URLSearchParams.new = SearchParams
        self.Promise = Data()
        self.Promise.reject = lambda error: ("rejected", error)
        self.Promise.withResolvers = Deferred
        self.Error = Data()
        self.Error.new = lambda text: "Error: " + text
        self.config_json = None  # what ./config.json answers (None: 404)
        self.onpagehide = self.ononline = self.onoffline = self.onpageshow = None

    def setTimeout(self, callback, ms):
        self.timers.append((callback, ms))
        return len(self.timers)

    def clearTimeout(self, timer_id):
        pass

    def queueMicrotask(self, callback):
        callback()

    def encodeURIComponent(self, text):
        return urllib.parse.quote(text, safe="")

    async def fetch(self, url, options=None):
        response = Data()
        response.ok = self.config_json is not None and url == "./config.json"

        async def text():
            return json.dumps(self.config_json)

        response.text = text
        return response


WINDOW = Window()


def install_pyscript() -> None:
    """A ``pyscript`` module whose ``window`` is ``WINDOW`` (page.browser binds it at import)."""
    pyscript = types.ModuleType("pyscript")
    ffi = types.ModuleType("pyscript.ffi")
    ffi.create_proxy = lambda function: function
    ffi.to_js = lambda value: value
    pyscript.window = WINDOW
    pyscript.document = None
    pyscript.ffi = ffi
    sys.modules["pyscript"] = pyscript
    sys.modules["pyscript.ffi"] = ffi


install_pyscript()

from directus_realtime import AuthenticationError, Waiter  # noqa: E402
from page import app as page_app  # noqa: E402
from page import settings  # noqa: E402
from page.snapshot import PREFIX  # noqa: E402


@pytest.fixture(autouse=True)
def pyscript_stays_ours():
    """Other tests may import a ``pyscript`` of their own: these use the fake above."""
    install_pyscript()
    yield


# ----- the client and the live query --------------------------------------------------------


class Rows:
    """page/rows.py's MessageList, as far as the page (not the view) uses it."""

    def __init__(self, document, window, to_js, next_task) -> None:
        self.list = Element("messages")
        self.pending = set()

    def set_pending(self, item_id, pending) -> None:
        (self.pending.add if pending else self.pending.discard)(item_id)


class Live:
    def __init__(self) -> None:
        self.rows = []
        self.pending = set()
        self.current = False
        self.checks = 0
        self.extended = []
        self.created = []
        self.listeners = []

    def is_pending(self, item_id):
        return item_id in self.pending

    def listen(self, callback):
        self.listeners.append(callback)
        return lambda: None

    def check(self):
        self.checks += 1

    def extend(self, n):
        self.extended.append(n)

    def create(self, data):
        self.created.append(data)
        waiter = Waiter()
        self.created_waiter = waiter
        return waiter


class Client:
    def __init__(self) -> None:
        self.state = "connecting"
        self.online = []
        self.failure = None
        self.ever_connected = False
        self.is_connected = False
        self.retry_in = None
        self.store_changed = 0

    def on_state(self, callback):
        self.state_callback = callback

    def set_online(self, online):
        self.online.append(online)

    def outbox_store_changed(self):
        self.store_changed += 1

    def become(self, state):
        self.state = state
        self.is_connected = state == "open"
        self.ever_connected = self.ever_connected or state == "open"
        self.state_callback(state, self)


@pytest.fixture
def make_page(monkeypatch):
    def factory(search="?url=http://127.0.0.1:8055&token=T0KEN", online=True):
        global WINDOW
        WINDOW.__init__(search)
        WINDOW.navigator.onLine = online
        monkeypatch.setattr(page_app, "MessageList", Rows)
        document = Document()
        page = page_app.Page(document, WINDOW)
        return page, document, WINDOW

    return factory


def run(coroutine):
    return asyncio.run(coroutine)


def started(make_page, **kwargs):
    """A page with settings read, a client used and a live query shown."""
    page, document, window = make_page(**kwargs)
    assert run(page.read_settings()) is not None
    client, live = Client(), Live()
    page.use(client)
    page.show(live)
    return page, document, window, client, live


# ----- where to connect ---------------------------------------------------------------------


def test_the_query_string_is_read_and_the_secrets_leave_the_address_bar(make_page):
    page, _, window = make_page("?url=http://127.0.0.1:8055/&token=T0KEN&history=250")
    config = run(page.read_settings())
    assert config["url"] == "http://127.0.0.1:8055" and config["token"] == "T0KEN"
    assert page.query()["limit"] == 250
    assert page.snapshots.key == PREFIX + "http://127.0.0.1:8055"
    callback, ms = window.timers[0]  # the secrets leave at the next task
    callback()
    assert window.replaced == "/?url=http%3A%2F%2F127.0.0.1%3A8055%2F&history=250"


def test_the_local_stacks_config_json_is_the_last_source(make_page):
    page, _, window = make_page("")
    window.config_json = {"directus_url": "http://127.0.0.1:8555", "token": "LOCAL"}
    config = run(page.read_settings())
    assert (config["url"], config["token"]) == ("http://127.0.0.1:8555", "LOCAL")


def test_a_bad_url_gets_its_problem_screen_and_nothing_starts(make_page):
    page, document, window = make_page("?url=127.0.0.1:8055&token=T")
    assert run(page.read_settings()) is None
    assert document.getElementById("problem").dataset.kind == "bad-url"
    assert not document.getElementById("problem").hidden
    assert document.getElementById("status").dataset.state == "error"
    assert "127.0.0.1:8055" in document.getElementById("problem").querySelector("p").textContent
    assert any(entry[0] == "error" for entry in window.logged)


def test_no_settings_at_all_says_how_to_set_them(make_page):
    page, document, _ = make_page("")
    assert run(page.read_settings()) is None
    assert document.getElementById("problem").dataset.kind == "settings"
    assert document.getElementById("settings").open


def test_the_query_strings_settings_are_kept_for_a_reload_in_this_tab_only(make_page):
    page, _, window, _, _ = started(make_page)
    page.started()
    saved = json.loads(window.sessionStorage.items[settings.KEY])
    assert saved == {"url": "http://127.0.0.1:8055", "token": "T0KEN"}
    assert settings.KEY not in window.localStorage.items


# ----- the stores the library keeps its outbox and its rows in --------------------------------


def test_the_outbox_store_takes_over_the_writes_of_gone_tabs(make_page):
    page, _, window = make_page()
    records = [{"tab": "gone", "write": {"w": 1}}, {"tab": "tab-1", "write": {"w": 2}}]
    window.localStorage.items["directus-realtime:outbox"] = json.dumps(records)
    store = run(page.outbox_store())  # (no Web Locks here: no tab is known to be alive)
    assert store.load() == [{"w": 1}, {"w": 2}]


def test_a_tab_still_closing_is_looked_at_again_and_the_library_told(make_page, monkeypatch):
    page, _, window, client, _ = started(make_page)
    records = [{"tab": "closing", "write": {"w": 1}}]
    window.localStorage.items["directus-realtime:outbox"] = json.dumps(records)

    async def alive():
        return {"closing"}

    monkeypatch.setattr(page_app.browser, "live_tabs", alive)
    page.started()
    assert (page.second_look.proxy, page_app.SECOND_LOOK_MS) in window.timers

    async def gone():
        return set()

    monkeypatch.setattr(page_app.browser, "live_tabs", gone)
    run(page.take_over())
    assert client.store_changed == 1
    assert page.outbox.load() == [{"w": 1}]


def test_the_stores_are_written_when_the_connection_drops_and_when_the_page_goes(make_page):
    page, _, window, client, _ = started(make_page)
    client.become("open")
    page.outbox.save([{"w": 1}])  # connected: written behind
    page.snapshots.save({"rows": [{"id": "a"}]})
    assert "directus-realtime:outbox" not in window.localStorage.items

    async def drop():
        client.become("reconnecting")

    run(drop())
    assert json.loads(window.localStorage.items["directus-realtime:outbox"])[0]["write"] == {"w": 1}
    assert json.loads(window.localStorage.items[page.snapshots.key]) == {"rows": [{"id": "a"}]}
    page.snapshots.save({"rows": []})
    window.onpagehide(None)
    assert json.loads(window.localStorage.items[page.snapshots.key]) == {"rows": []}


def test_the_snapshot_store_never_keeps_the_token(make_page):
    page, _, window, _, _ = started(make_page)
    page.snapshots.save({"rows": [{"id": "a", "text": "my token is T0KEN"}]})
    page.snapshots.flush()
    assert page.snapshots.key not in window.localStorage.items


# ----- the connection on screen -------------------------------------------------------------


def test_the_status_line_follows_the_connection(make_page):
    page, document, _, client, live = started(make_page)
    status = document.getElementById("status")
    client.become("connecting")
    assert status.dataset.state == "connecting"
    client.become("open")
    assert status.dataset.state == "connected" and page.outbox.connected
    assert document.getElementById("problem").hidden
    client.become("offline")
    assert status.dataset.state == "offline" and not page.outbox.connected
    assert document.body.dataset.current == "false"  # not current, whatever was shown
    client.failure = AuthenticationError("INVALID_CREDENTIALS", "refused")
    client.become("failed")
    assert status.dataset.state == "error"
    assert document.getElementById("problem").dataset.kind == "auth"


def test_a_reload_with_no_network_starts_offline(make_page):
    page, _, _ = make_page(online=False)
    run(page.read_settings())
    client = Client()
    page.use(client)
    assert client.online == [False]


def test_writes_waiting_are_counted_while_not_connected(make_page):
    page, document, _, client, live = started(make_page)
    live.pending = {"a", "b"}
    client.become("offline")
    note = document.getElementById("waiting")
    assert note.textContent == "2 messages waiting: they are sent once the connection is back."
    assert not note.hidden
    live.pending = set()
    client.become("open")
    assert note.hidden


# ----- the live query: checks, load older, create_item ----------------------------------------


def test_the_live_query_checks_when_the_tab_comes_back(make_page):
    page, document, window, client, live = started(make_page)
    document.visibilityState = "hidden"
    document.onvisibilitychange(None)
    assert live.checks == 0
    document.visibilityState = "visible"
    document.onvisibilitychange(None)
    window.onpageshow(None)
    window.ononline(None)
    assert live.checks == 3
    assert client.online == [True]
    window.onoffline(None)
    assert client.online == [True, False]


def test_subscribed_history_and_load_older_follow_the_live_query(make_page):
    page, document, _, _, live = started(make_page)
    body = document.body.dataset
    live.rows = [{"id": "r%d" % n} for n in range(100)]
    page.view.show_current(False)
    page.on_shown()  # rows restored from the snapshot: not current yet
    assert not hasattr(body, "subscribed")
    live.current = True  # (the live query is ahead of the screen: not said yet)
    page.on_shown()
    assert not hasattr(body, "subscribed")
    page.view.show_current(True)  # the change that made it current is on screen
    page.on_shown()
    assert body.subscribed == "true" and body.history == "true"
    older = document.getElementById("load-older")
    assert not older.hidden  # a full window: there may be older rows
    older.listeners["click"](None)
    assert live.extended == [100] and page.query()["limit"] == 200
    live.rows = live.rows + [{"id": "old"}]  # only one older row came
    page.on_shown()
    assert older.hidden


def test_the_delivery_note_follows_the_ids_directus_gives(make_page):
    page, document, _, _, live = started(make_page)
    live.rows = [{"id": 7}]
    page.on_shown()
    note = document.getElementById("delivery")
    assert note.dataset.guarantee == "at-least-once" and not note.hidden


def test_create_item_writes_through_the_live_query_and_settles_its_promise(make_page):
    page, _, _, _, live = started(make_page)
    promise = page.create_item("hello", "ada")
    assert live.created == [{"text": "hello", "user": "ada"}]
    assert promise.outcome is None  # pending until the library says stored
    live.created_waiter.set_result({"id": "x", "text": "hello", "user": "ada"})
    assert promise.outcome == ("resolved", {"id": "x", "text": "hello", "user": "ada"})
    assert page.unsettled == []

    promise = page.create_item("refused", "ada")
    live.created_waiter.set_exception(RuntimeError("FORBIDDEN: no"))
    assert promise.outcome == ("rejected", "Error: FORBIDDEN: no")


def test_a_write_confirmed_without_a_change_on_screen_is_unmarked_pending(make_page):
    page, _, window, _, live = started(make_page)
    live.pending = {"x"}
    page.view.mark_pending()
    assert page.rows.pending == {"x"}
    live.pending = set()  # its event brought the row first: the confirmation changes nothing
    page.outbox.save([])  # but the library's outbox changed
    callback, ms = window.timers[-1]
    assert ms == 0
    callback()
    assert page.rows.pending == set()


def test_create_item_refuses_bad_input_without_writing(make_page):
    page, _, _, _, live = started(make_page)
    outcome = page.create_item("", "ada")
    assert outcome[0] == "rejected" and "text must be a non-empty string" in outcome[1]
    assert live.created == []


def test_the_compose_form_writes_and_says_why_a_write_was_refused(make_page):
    page, document, _, _, live = started(make_page)
    form = Element("form")
    form.elements.text.value = "from the form"
    form.elements.user.value = "Guest"
    event = Data()
    event.preventDefault = lambda: None
    event.target = form
    document.getElementById("compose").listeners["submit"](event)
    assert live.created == [{"text": "from the form", "user": "Guest"}]
    assert form.elements.text.value == ""
    live.created_waiter.set_exception(RuntimeError("FORBIDDEN: no"))
    error = document.querySelector("#compose .error")
    assert error.textContent == "Not sent: FORBIDDEN: no"
    form.elements.text.value = "  "
    document.getElementById("compose").listeners["submit"](event)
    assert error.textContent.startswith("text must be a non-empty string")

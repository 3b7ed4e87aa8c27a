"""The page around the guide's script: one ``Page`` owns what only a page has.

``main.py`` reads like the guide and hands the rest to a ``Page``: where to connect (the query
string, the Settings panel, ./config.json), the status line and problem screens, the stores the
library keeps its outbox and its last rows in (``localStorage``, tab ownership by Web Locks),
the list of rows as a view of one live query, the guide's console lines, and ``create_item``.
What a write's answer means, what may have been missed and how it is caught up are the live
query's (the library's): nothing here decides them. The rules the page does own live in modules
that take their inputs as values (``page.settings``, ``page.outbox``, ``page.snapshot``,
``page.view``, ``page.writes``, ``page.logs``); this module connects them to the browser.
"""

import asyncio
import json

from directus_realtime import AuthenticationError, create_directus, realtime

from . import browser, settings
from .history import window_query
from .logs import ConsoleLines
from .outbox import OutboxStore
from .rows import MessageList
from .screen import Screen
from .snapshot import SnapshotStore
from .view import LiveView
from .writes import check_item, delivery_of, waiting_note

# Pyodide has ensure_future; MicroPython's asyncio only create_task.
spawn = getattr(asyncio, "ensure_future", None) or asyncio.create_task
SECOND_LOOK_MS = 3000  # the saved writes of a tab still closing are looked at again this late
# While offline, navigator.onLine is looked at this often: the `online` event alone is not
# enough (Firefox did not fire it in a page that was loaded offline).
ONLINE_CHECK_MS = 2000


class Page:
    def __init__(self, document, window) -> None:
        self.document = document
        self.window = window
        self.screen = Screen(document, str(window.location.origin))
        self.rows = MessageList(document, window, browser.to_js, browser.next_task)
        self.lines = ConsoleLines(browser.console_hand_over(), browser.Timer)
        self.tab = browser.new_id()
        self.local = browser.storages()[1]  # (None where the browser refuses storage)
        self.outbox = OutboxStore(self.local, self.tab, browser.Timer, browser.warn)
        self.snapshots = None  # the live query's last rows, once the Directus is known
        self.forget_secrets = browser.Timer(lambda: browser.forget_secrets(settings.SECRETS))
        self.second_look = browser.Timer(lambda: spawn(self.take_over()))
        self.pending_check = browser.Timer(lambda: self.view.mark_pending())
        self.online_check = browser.Timer(lambda: self.check_online())
        self.config = {}  # where to connect and how to sign in (page.settings.checked)
        # Whether the settings came from the query string or config.json: the tab then keeps
        # them, so that a reload connects again (also offline, when config.json is the service
        # worker's copy, which holds no token).
        self.keep_in_tab = False
        self.window_size = settings.HISTORY  # rows in the live query's window
        self.directus = None
        self.live = None
        self.view = None
        self.exactly_once = None  # whether Directus stores the ids the library chooses
        self.unsettled = []  # create_item's Promises not settled yet, held for the FFI
        on = browser.js_function
        document.getElementById("compose").addEventListener("submit", on(self.on_compose))
        document.getElementById("settings-form").addEventListener("submit", on(self.on_settings))
        document.getElementById("load-older").addEventListener("click", on(self.load_older))
        # (Handler properties, not addEventListener: MicroPython's FFI calls window's methods
        # with the wrong `this`, and the browser refuses with "Illegal invocation".)
        window.onpagehide = on(lambda event: self.save_now())

    # ----- where to connect -----

    async def read_settings(self):
        """The query string, else the Settings panel's saved values, else ./config.json;
        None (and a problem screen that says why) when they cannot work. The secrets leave
        the address bar whatever happens next."""
        self.forget_secrets.start(0)  # (after the socket is on its way, unless this fails)
        found = {}
        try:
            found = settings.from_query(
                browser.query_params(settings.NAMES + ("history",)), browser.warn
            )
            self.keep_in_tab = settings.complete(found)
            if not settings.complete(found):
                for storage in browser.storages():
                    raw = browser.read_storage(storage, settings.KEY) if storage else None
                    found = settings.merged(found, settings.from_saved(raw, browser.warn))
            if not settings.complete(found):
                # make dist's config.json names a Directus; the page server's, the local stack
                # with its token
                local = await browser.fetch_json("./config.json")
                if local:
                    found = settings.with_local_stack(found, local)
                    self.keep_in_tab = settings.complete(found)
            self.config = settings.checked(found)
        except settings.SettingsError as error:
            self.screen.url = str(found.get("url") or "")
            self.screen.show_settings(found, False)  # the URL it has, to add a token to
            self.fail(error.kind, error.message)
            return None
        self.screen.url = self.config["url"]
        self.window_size = self.config["history"]
        secrets = [self.config.get(name) for name in settings.SECRETS]
        self.snapshots = SnapshotStore(
            self.local, self.config["url"], browser.Timer, browser.warn, secrets
        )
        return self.config

    async def outbox_store(self):
        """The store of the library's outbox: this tab's writes, and those of tabs that are
        gone (a previous visit), which this tab takes over and sends."""
        browser.hold_tab_lock(self.tab)
        # (Asking Web Locks which tabs are alive delays the socket: asked only when there are
        # other tabs' writes to take over.)
        if self.outbox.others_waiting():
            self.outbox.claim(await browser.live_tabs())
        return self.outbox

    def signed_in_client(self):
        """A client that logs in with email and password over REST, and refreshes through
        /auth/refresh whenever Directus says the socket's token expired (over urllib, made XHR
        by pyodide-http, on Pyodide; over fetch on MicroPython, which has no urllib)."""
        from directus_realtime.rest import TokenSession

        http = None
        if browser.MICROPYTHON:
            from directus_realtime.transports.browser import fetch_text as http
        url = self.config["url"]
        session = TokenSession(url, self.config["email"], self.config["password"], http=http)
        composable = realtime(token_provider=session.token, outbox_store=self.outbox)
        return create_directus(url).with_(composable)

    def use(self, directus) -> None:
        """Follow ``directus``'s state on screen, and the browser's online/offline."""
        self.directus = directus
        directus.on_state(self.on_state)
        on = browser.js_function
        self.window.ononline = on(lambda event: self.back_online())
        self.window.onoffline = on(lambda event: directus.set_online(False))
        if not self.window.navigator.onLine:  # (a reload with no network)
            directus.set_online(False)

    def show(self, live) -> None:
        """``#messages`` from now on shows ``live`` (its rows, pending marks, current), and
        the live query checks the server whenever the tab comes back."""
        self.live = live
        body = self.document.body.dataset
        self.view = LiveView(live, self.rows, body, spawn, self.on_shown, browser.Timer)
        # A write confirmed with no change on screen (its row's event came first) brings no
        # change batch: the pending marks are looked at again after each change of the outbox
        # (at the next task, once the live query has taken the write's outcome too).
        self.outbox.on_save = lambda: self.pending_check.start(0)
        on = browser.js_function
        self.document.onvisibilitychange = on(lambda event: self.check_if_visible())
        self.window.onpageshow = on(lambda event: live.check())

    def query(self) -> dict:
        return window_query(self.window_size)

    def started(self) -> None:
        """Once the socket is on its way: the Settings panel; writes of tabs still closing."""
        remembered = bool(self.local and browser.read_storage(self.local, settings.KEY))
        self.screen.show_settings(self.config, remembered)
        session = browser.storages()[0]
        if self.keep_in_tab and session:
            # As the Settings panel does: the secrets have left the address bar, and the
            # service worker's config.json holds none.
            browser.write_storage(session, settings.KEY, json.dumps(settings.to_save(self.config)))
        if self.outbox.others_waiting():
            self.second_look.start(SECOND_LOOK_MS)  # another tab's, or one still closing

    async def take_over(self) -> None:
        if self.outbox.claim(await browser.live_tabs()):
            self.directus.outbox_store_changed()

    def fail(self, kind: str, reason: str) -> None:
        self.screen.status("error", reason)
        self.screen.problem(kind, reason)
        self.window.console.error(reason)

    # ----- the guide's console lines -----

    def log(self, value) -> None:
        self.lines.log(browser.to_js(value) if isinstance(value, (dict, list)) else value)

    def log_data(self, data) -> None:
        if isinstance(data, list) and len(data) > 100:
            self.log("[" + str(len(data)) + " items]")  # a whole history, converted, would block
        else:
            self.log(data)

    # ----- the rows -----

    def on_shown(self) -> None:
        """A change of the live query is on screen: the guide's lines about it follow it."""
        self.lines.flush()
        body = self.document.body.dataset
        if self.view.shown_current:  # (the rows on screen: later changes may wait their turn)
            body.subscribed = "true"
            body.history = "true"
            # Fewer rows than the window holds: there is nothing older to load.
            older = self.document.getElementById("load-older")
            older.hidden = len(self.live.rows) < self.window_size
        if self.exactly_once is None:
            # Only stored rows tell (a pending create shows the library's local id).
            stored = [r for r in self.live.rows[:20] if not self.live.is_pending(r.get("id"))]
            exactly_once = delivery_of(stored)
            if exactly_once is not None:
                self.exactly_once = exactly_once
                self.screen.delivery(exactly_once)
        self.show_waiting()

    def load_older(self, event=None) -> None:
        """The window grows by as many rows as the page showed first (``?history=``)."""
        step = self.config.get("history") or settings.HISTORY
        self.window_size += step
        self.live.extend(step)

    def check_if_visible(self) -> None:
        if self.document.visibilityState == "visible":
            self.live.check()

    def check_online(self) -> None:
        """Offline: back online without an `online` event? Then connect."""
        if self.directus.state != "offline":
            return
        if self.window.navigator.onLine:
            self.back_online()
        else:
            self.online_check.start(ONLINE_CHECK_MS)

    def back_online(self) -> None:
        self.directus.set_online(True)
        if self.live is not None:
            self.live.check()

    def save_now(self) -> None:
        """The page goes away (or the connection): what waits is written at once."""
        self.outbox.flush()
        if self.snapshots is not None:
            self.snapshots.flush()

    # ----- the connection on screen -----

    def on_state(self, state: str, client) -> None:
        self.outbox.connected = state == "open"
        if self.view is not None and state not in ("connecting", "authenticating"):
            # Authenticated (the server's rows take one query more: the saved ones are drawn
            # meanwhile), or down (the server's rows are not coming soon).
            self.view.show_saved()
        if state in ("reconnecting", "offline", "closed", "failed"):
            self.save_now()  # unanswered writes and the last rows must survive a reload
            if self.view is not None:
                self.view.show_current(False)
        if state == "open":
            self.screen.status("connected")
            self.screen.problem(None)
        elif state in ("connecting", "authenticating"):
            self.screen.status("reconnecting" if client.ever_connected else "connecting")
        elif state == "reconnecting":
            spawn(self.count_down(client))
            if not client.ever_connected:
                spawn(self.diagnose())
        elif state in ("offline", "closed"):
            self.screen.status("offline")
            if state == "offline":
                self.online_check.cancel()
                self.online_check.start(ONLINE_CHECK_MS)
        elif state == "failed":
            failure = client.failure
            reason = failure.message if failure else "gave up"
            refused = isinstance(failure, AuthenticationError)
            self.screen.status("error", reason)
            self.screen.problem("auth" if refused else "gave-up", reason)
        self.show_waiting()

    def show_waiting(self) -> None:
        """How many writes wait, and what sends them."""
        state = self.directus.state if self.directus else "connecting"
        if state == "open":
            reason = ""
        elif state == "failed" and isinstance(self.directus.failure, AuthenticationError):
            reason = "sign in again (Settings) to send them."
        elif state == "failed":
            reason = "reload the page to send them."
        else:
            reason = "they are sent once the connection is back."
        count = len(self.live.pending) if self.live is not None and reason else 0
        self.screen.waiting(waiting_note(count, reason))

    async def diagnose(self) -> None:
        """Never connected yet: is Directus down, or up with realtime off / this origin
        refused?"""
        if not await browser.answers(self.config["url"] + "/server/ping"):
            self.screen.problem("unreachable")
        elif not self.directus.is_connected:
            self.screen.problem("realtime-off")

    async def count_down(self, client) -> None:
        """The seconds to the next attempt, while reconnecting."""
        while client.state == "reconnecting":
            seconds = client.retry_in or 0
            detail = "next attempt in %.0f s" % seconds if seconds >= 1 else ""
            self.screen.status("reconnecting", detail)
            await asyncio.sleep(min(1.0, max(0.05, seconds % 1 or 1.0)))

    # ----- create_item and the compose form: writes through the live query -----

    def write(self, text, user):
        """``{text, user}`` created through the live query: shown at once as pending; a
        ``Waiter`` of the stored row. ``ValueError`` (and nothing sent) for bad input."""
        check_item(text, user)
        return self.live.create({"text": text, "user": user})

    def create_item(self, text=None, user=None):
        """A Promise of the created item; bad input rejects at once and sends nothing."""
        try:
            stored = self.write(text, user)
        except Exception as error:
            return self.window.Promise.reject(self.window.Error.new(str(error)))
        # Promise.withResolvers, not new Promise(executor): MicroPython's FFI does not keep an
        # executor's resolve and reject valid after the call returns.
        deferred = self.window.Promise.withResolvers()
        self.unsettled.append(deferred)  # held until settled, whatever the interpreter's GC does

        def settle(done) -> None:
            self.unsettled.remove(deferred)
            error = done.exception()
            if error is None:
                deferred.resolve(browser.handed_to_js(browser.to_js(done.result())))
            else:
                deferred.reject(browser.handed_to_js(self.window.Error.new(str(error))))

        stored.add_done_callback(settle)
        return deferred.promise

    def on_compose(self, event) -> None:
        event.preventDefault()
        fields = event.target.elements
        text, user = fields.text.value, fields.user.value
        try:
            stored = self.write(text, user)
        except Exception as error:
            self.screen.compose_error(str(error).replace("create_item: ", ""))
            return
        self.screen.compose_error("")
        fields.text.value = ""

        def on_stored(done) -> None:
            error = done.exception()
            if error is not None:
                self.screen.compose_error("Not sent: " + str(error))

        stored.add_done_callback(on_stored)

    # ----- the Settings panel -----

    def on_settings(self, event) -> None:
        """Save the Settings panel's values and start again with them."""
        event.preventDefault()
        values = self.screen.settings_form(event.target)
        try:
            chosen = settings.from_form(values)
        except settings.SettingsError as error:
            self.screen.problem(error.kind, error.message)
            return
        session, local = browser.storages()
        for storage in (session, local):
            if storage:
                storage.removeItem(settings.KEY)
        remember_in = local if values["remember"] else session
        if remember_in:
            remember_in.setItem(settings.KEY, json.dumps(chosen))
        self.save_now()
        path = self.window.location.pathname
        self.window.location.assign(path + "?url=" + self.window.encodeURIComponent(chosen["url"]))

"""The page around the guide's script: one ``Page`` owns its state and its DOM.

``main.py`` reads like the guide and hands the rest to a ``Page``: where to connect
(``settings``), the status line and problem screens (``use``), the list of rows (``show``),
the guide's console lines (``log``), and ``create_item`` with an outbox that survives a reload.
The rules live in the modules it drives (``page.settings``, ``page.outbox``, ``page.writes``,
``page.history``, ``page.logs``), which take their inputs as values and are tested in CPython;
this module only connects them to the browser and to the client.
"""

import asyncio
import json

from directus_realtime import AuthenticationError, Waiter, create_directus, realtime

from . import browser, settings, writes
from .history import EVERYTHING, FIELDS, Reading
from .logs import ConsoleLines
from .outbox import Outbox
from .reconcile import Reconciler
from .rows import MAX_ROWS, MessageList
from .screen import Screen

# Pyodide has ensure_future; MicroPython's asyncio only create_task.
spawn = getattr(asyncio, "ensure_future", None) or asyncio.create_task
SECOND_LOOK_MS = 3000  # saved writes of a tab still closing are looked at again this late
# A write kept after an error on a connection that stays open (Directus did not answer: e.g.
# its database restarting) is sent again this late, until stored or refused.
RESEND_KEPT_MS = 2000
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
        local = browser.storages()[1]  # (None where the browser refuses storage)
        self.outbox = Outbox(local, self.tab, browser.Timer, browser.warn)
        self.forget_secrets = browser.Timer(lambda: browser.forget_secrets(settings.SECRETS))
        self.second_look = browser.Timer(lambda: spawn(self.take_over()))
        self.settings = {}
        self.from_query = False  # whether the query string held complete settings
        self.history = settings.HISTORY
        self.directus = None
        self.exactly_once = None  # whether Directus stores the ids the page chooses
        self.following = []  # the update and delete subscriptions, once made
        self.unsettled = []  # create_item's Promises not settled yet, held for the FFI
        self.reconciler = Reconciler()  # finds what the realtime events missed (a bus outage)
        self.reconcile_timer = browser.Timer(self.on_reconcile_timer)
        self.missed = 0  # messages the reconciliation found (body[data-missed])
        self.kept = {}  # id -> a write kept after an error, to send again (resend_kept)
        self.resend_timer = browser.Timer(lambda: self.resend_kept())
        self.online_check = browser.Timer(lambda: self.check_online())
        on = browser.js_function
        document.getElementById("compose").addEventListener("submit", on(self.on_compose))
        document.getElementById("settings-form").addEventListener("submit", on(self.on_settings))
        document.getElementById("load-older").addEventListener(
            "click", on(lambda event: spawn(self.load_older()))
        )
        # (Handler properties, not addEventListener: MicroPython's FFI calls window's methods
        # with the wrong `this`, and the browser refuses with "Illegal invocation".)
        window.onpagehide = on(lambda event: self.outbox.save())

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
            self.from_query = settings.complete(found)
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
            self.settings = settings.checked(found)
        except settings.SettingsError as error:
            self.screen.url = str(found.get("url") or "")
            self.screen.show_settings(found, False)  # the URL it has, to add a token to
            self.fail(error.kind, error.message)
            return None
        self.screen.url = self.settings["url"]
        self.history = self.settings["history"]
        self.rows.max_rows = max(MAX_ROWS, self.history)
        return self.settings

    def signed_in_client(self):
        """A client that logs in with email and password over REST, and refreshes through
        /auth/refresh whenever Directus says the socket's token expired (over urllib, made XHR
        by pyodide-http, on Pyodide; over fetch on MicroPython, which has no urllib)."""
        from directus_realtime.rest import TokenSession

        http = None
        if browser.MICROPYTHON:
            from directus_realtime.transports.browser import fetch_text as http
        url = self.settings["url"]
        session = TokenSession(url, self.settings["email"], self.settings["password"], http=http)
        return create_directus(url).with_(realtime(token_provider=session.token))

    def use(self, directus) -> None:
        """Follow ``directus``'s state on screen, and the browser's online/offline."""
        self.directus = directus
        directus.on_state(self.on_state)
        on = browser.js_function
        self.window.ononline = on(lambda event: directus.set_online(True))
        self.window.onoffline = on(lambda event: directus.set_online(False))
        if not self.window.navigator.onLine:  # opened with no network (the service worker's)
            directus.set_online(False)

    def started(self) -> None:
        """Once the socket is on its way: the Settings panel, and the writes a previous visit
        could not send."""
        local = browser.storages()[1]
        remembered = bool(local and browser.read_storage(local, settings.KEY))
        self.screen.show_settings(self.settings, remembered)
        session = browser.storages()[0]
        if self.from_query and session:
            # The secrets have left the address bar: this tab keeps them, as the Settings
            # panel does, so that a reload connects again.
            browser.write_storage(
                session, settings.KEY, json.dumps(settings.to_save(self.settings))
            )
        browser.hold_tab_lock(self.tab)
        spawn(self.take_over())

    async def take_over(self) -> None:
        for data in self.outbox.take_over(await browser.live_tabs()):
            self.send(data)
        if any(entry.get("tab") != self.tab for entry in self.outbox.read()):
            self.second_look.start(SECOND_LOOK_MS)  # another tab's, or one still closing
        self.show_waiting()

    def ended(self, error) -> None:
        """The create subscription ended for good (the problem screen, if any, says why)."""
        self.window.console.error("The subscription ended: " + str(error))
        self.screen.status("error", "the subscription ended: " + str(error))

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

    def flush_logs(self) -> None:
        self.lines.flush()

    # ----- messages on screen -----

    def on_subscription(self, message: dict) -> None:
        """(Re)subscribed: from here on nothing is missed; read back what came before."""
        if message.get("event") != "init":
            return
        self.document.body.dataset.subscribed = "true"
        if not self.following:
            # Edits and deletes are followed from here, once the first subscription is live
            # (sent with it, they delayed its answer); delete events carry the ids.
            self.following.append(spawn(self.follow("update", self.rows.update)))
            self.following.append(spawn(self.follow("delete", self.rows.remove)))
        self.reconciler.subscribed(self.now(), self.rows.newest_created())
        self.arm_reconciler()
        spawn(self.catch_up())

    def show(self, item: dict) -> None:
        self.reconciler.delivered(item.get("id"))
        self.rows.show(item)

    async def follow(self, event: str, apply) -> None:
        def on_message(message: dict) -> None:
            for item in message.get("data") or []:
                apply(item)

        subscription = await self.directus.subscribe(
            "messages", event=event, query={"fields": FIELDS}
        )
        subscription.listen(on_message)

    async def catch_up(self) -> None:
        """After every (re)subscription: the latest messages on first load, else everything
        since the newest one shown, until caught up."""
        newest = self.rows.newest_created()
        try:
            if newest is None:
                await self.read(Reading(self.history, newest_first=True))
            else:
                await self.read(Reading(EVERYTHING, newest_first=False, bound=newest))
        except Exception as error:
            self.window.console.error("Could not read the messages: " + str(error))
        self.document.body.dataset.history = "true"

    # ----- reconciliation (page/reconcile.py) -----

    def now(self) -> float:
        return self.window.performance.now() / 1000

    def arm_reconciler(self) -> None:
        self.reconcile_timer.cancel()
        deadline = self.reconciler.next_deadline()
        if deadline is not None:
            self.reconcile_timer.start(max(0, int((deadline - self.now()) * 1000)) + 1)

    def on_reconcile_timer(self) -> None:
        if self.reconciler.due(self.now()):
            spawn(self.reconcile())
        else:
            self.arm_reconciler()

    async def reconcile(self) -> None:
        """Show the messages the realtime events never brought: a bus outage between Directus
        instances loses events and leaves the socket open. ``body[data-missed]`` counts them."""
        bound = self.reconciler.start(self.now(), self.rows.newest_created())
        try:
            if bound is None:
                # Nothing was shown then (the first load): from the oldest row shown now,
                # which the first catch-up read; not "the latest N", which pages back until it
                # finds N rows not shown yet.
                bound = self.rows.oldest_created()
            if self.directus.is_connected:  # (else the catch-up after reconnecting reads)
                reading = Reading(EVERYTHING, newest_first=False, bound=bound)
                found = await self.read(reading)
                if found:
                    self.missed += found
                    self.document.body.dataset.missed = str(self.missed)
        except Exception as error:
            self.window.console.error("Could not check for missed messages: " + str(error))
        self.reconciler.finished(self.now())
        self.arm_reconciler()

    async def load_older(self) -> None:
        reading = Reading(self.history, newest_first=True, bound=self.rows.oldest_created())
        if await self.read(reading) < self.history:
            self.document.getElementById("load-older").hidden = True

    async def read(self, reading: Reading) -> int:
        """Show what ``reading`` finds, page by page; the next page is asked for while this one
        renders. Returns how many messages were shown."""
        answer = self.directus.read("messages", query=reading.query())  # sent now
        while True:
            items = await answer
            if self.exactly_once is None:
                self.learn_delivery(items)
            fresh = reading.arrived(items, self.rows.rows)
            if reading.more:
                answer = self.directus.read("messages", query=reading.query())
            await self.rows.show_many(fresh)
            if not reading.more:
                return reading.shown

    def learn_delivery(self, items: list) -> None:
        exactly_once = writes.delivery_of(items)
        if exactly_once is not None:
            self.set_delivery(exactly_once)

    def set_delivery(self, exactly_once: bool) -> None:
        self.exactly_once = exactly_once
        self.screen.delivery(exactly_once)

    # ----- the connection on screen -----

    def on_state(self, state: str, client) -> None:
        if state in ("reconnecting", "offline", "closed", "failed"):
            self.outbox.save()  # unanswered writes must survive a reload from here on
            self.reconciler.unsubscribed()  # until the next init (and its catch-up)
        if state == "open":
            if self.kept:
                self.resend_timer.cancel()
                self.resend_timer.start(RESEND_KEPT_MS)
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

    def check_online(self) -> None:
        """Offline: back online without an `online` event? Then connect."""
        if self.directus.state != "offline":
            return
        if self.window.navigator.onLine:
            self.directus.set_online(True)
        else:
            self.online_check.start(ONLINE_CHECK_MS)

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
        self.screen.waiting(writes.waiting_note(len(self.outbox.pending), reason) if reason else "")

    async def diagnose(self) -> None:
        """Never connected yet: is Directus down, or up with realtime off / this origin
        refused?"""
        if not await browser.answers(self.settings["url"] + "/server/ping"):
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

    # ----- create_item, with an outbox that survives a reload -----

    def create_item(self, text=None, user=None):
        """A Promise of the created item; bad input rejects at once and sends nothing."""
        try:
            writes.check_item(text, user)
            stored = self.send({"id": browser.new_id(), "text": text, "user": user})
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
            writes.check_item(text, user)
            stored = self.send({"id": browser.new_id(), "text": text, "user": user})
        except Exception as error:
            self.screen.compose_error(str(error).replace("create_item: ", ""))
            return
        self.screen.compose_error("")
        fields.text.value = ""

        def on_stored(done) -> None:
            error = done.exception()
            if error is not None:
                not_yet = " yet" if isinstance(error, Kept) else ""
                self.screen.compose_error("Not sent" + not_yet + ": " + str(error))

        stored.add_done_callback(on_stored)

    def send(self, data: dict):
        """Send the write ``data`` now; a ``Waiter`` of the stored item. Into the outbox first
        (``OutboxFull`` sends nothing), then on the wire, before anything else can run."""
        self.outbox.add(data, self.directus.is_connected)
        stored = Waiter()
        self.attempt(data, stored, with_id=self.exactly_once is not False)
        return stored

    def attempt(self, data: dict, stored, with_id: bool) -> None:
        payload = data if with_id else writes.without_id(data)
        sending = self.directus.create("messages", payload, query={"fields": FIELDS})
        sending.add_done_callback(lambda done: self.on_answer(data, done, stored, with_id))

    def on_answer(self, data: dict, done, stored, with_id: bool) -> None:
        """What Directus's answer means for the write (``page.writes.verdict``)."""
        error = done.exception()
        verdict = writes.verdict(error, with_id, self.exactly_once)
        if verdict == writes.STORED:
            item = done.result()
            if not with_id:
                self.set_delivery(False)  # it numbered the item itself
            elif self.exactly_once is None:
                self.learn_delivery([item])
            self.outbox.done(data["id"])
            if isinstance(item, dict):
                self.reconciler.wrote(item.get("id"), self.now())
                self.arm_reconciler()
            stored.set_result(item)
        elif verdict == writes.WITHOUT_ID:
            self.attempt(data, stored, with_id=False)  # the id refused, or the create itself?
        elif verdict == writes.CHECK_DUPLICATE:
            spawn(self.check_duplicate(data, error, stored))
        elif verdict == writes.REFUSED:
            self.outbox.done(data["id"])
            stored.set_exception(error)
        else:  # KEPT: saved, and sent again once the connection or the sign-in work
            self.keep(data)
            stored.set_exception(Kept(error))
        self.show_waiting()

    def keep(self, data: dict) -> None:
        self.outbox.save()
        self.kept[data["id"]] = data
        if self.directus.is_connected:  # (else when it opens: on_state)
            self.resend_timer.cancel()
            self.resend_timer.start(RESEND_KEPT_MS)

    def resend_kept(self) -> None:
        """Send the kept writes again (their ids make a repeat safe: RECORD_NOT_UNIQUE is
        checked); their Promises were settled already, the outbox follows the outcome."""
        if not self.directus.is_connected:
            return
        kept, self.kept = self.kept, {}
        for data in kept.values():
            if data["id"] in self.outbox.pending:
                self.attempt(data, Waiter(), with_id=self.exactly_once is not False)

    async def check_duplicate(self, data: dict, error, stored) -> None:
        """RECORD_NOT_UNIQUE: stored already (an earlier try, another tab) only if the row with
        this id is this write."""
        try:
            row = await self.directus.read("messages", id=data["id"], query={"fields": FIELDS})
        except Exception as failure:
            if writes.verdict(failure, False, self.exactly_once) == writes.KEPT:
                self.keep(data)
                stored.set_exception(Kept(failure))
                return
            row = None  # not readable: not this write
        if isinstance(row, list):
            row = row[0] if row else None
        self.outbox.done(data["id"])
        if writes.is_same_write(data, row):
            stored.set_result(row)
        else:
            stored.set_exception(error)
        self.show_waiting()

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
        keep = local if values["remember"] else session
        if keep:
            keep.setItem(settings.KEY, json.dumps(chosen))
        self.outbox.save()
        path = self.window.location.pathname
        self.window.location.assign(path + "?url=" + self.window.encodeURIComponent(chosen["url"]))


class Kept(Exception):
    """A write not sent yet: it waits in the outbox (saved for a reload) for the connection or
    the sign-in to work."""

    def __init__(self, cause) -> None:
        super().__init__("kept, and sent once the connection and the sign-in work (%s)" % cause)

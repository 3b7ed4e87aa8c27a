"""The Directus guide "Connect to Realtime Data", in Python, in the browser.

``start()``, at the end, reads like the guide's <script>: create a client with a static token
and the realtime composable, log the socket's events, subscribe to new ``messages`` and show
each one, and offer ``create_item(text, user)`` in the devtools console. On top of the guide:
the latest messages on load, edits and deletes followed live, what was missed while
disconnected read back after a reconnect, and writes made while offline kept (even across a
reload) until they are sent.

The Directus URL and token come from the query string (``?url=...&token=...``), else from the
local stack that ``make run`` started.

The same file runs on MicroPython (index.html) and on Pyodide (pyodide.html). MicroPython has no
``uuid`` and no ``urllib``: ids come from the browser's ``crypto.randomUUID()`` there, and
signing in with email and password goes over the browser's ``fetch`` instead of ``urllib``.
"""

import asyncio
import json
import sys

from pyscript import document, window
from pyscript.ffi import create_proxy, to_js

from directus_realtime import (
    AuthenticationError,
    DirectusError,
    Waiter,
    create_directus,
    realtime,
    static_token,
)

# A User Timing mark (DevTools' Performance panel, and `make bench`'s start-up breakdown).
window.performance.mark("main.py: imports done")

MICROPYTHON = sys.implementation.name == "micropython"
if MICROPYTHON:

    def new_id() -> str:
        return window.crypto.randomUUID()

else:
    import uuid

    def new_id() -> str:
        return str(uuid.uuid4())


# Pyodide has ensure_future; MicroPython's asyncio only create_task.
spawn = getattr(asyncio, "ensure_future", None) or asyncio.create_task


FIELDS = ["id", "user", "text", "date_created"]
HISTORY = 100  # messages shown on load, and per "load older"
MAX_ROWS = 1000  # rows kept in the DOM (more when ?history= asks for more)
# Rows per chunk of the list (ol.chunk, see make_chunk), and per task when a batch is rendered,
# so that a long history never blocks the page.
CHUNK_ROWS = 100
# Messages per read: a frame of about 130 kB (one of 10,000, 1.3 MB, ran MicroPython out of
# memory). Each read is a round trip and a query for Directus: pages of 200 made a 10,000-
# message history wait on 50 of them.
PAGE = 1000
MAX_TEXT_LENGTH = 10_000
OUTBOX_KEY = "directus-realtime:outbox"
OUTBOX_DELAY_MS = 1000  # a write unanswered this long is saved in localStorage (class Outbox)
SETTINGS_KEY = "directus-realtime:settings"
STATUS_TEXT = {
    "connecting": "Connecting…",
    "connected": "Connected",
    "reconnecting": "Reconnecting…",
    "offline": "Offline: waiting for the network",
    "error": "Error",
}

console = window.console


def log(value) -> None:
    """``console.log(value)``, written once the message it is about has been handled.

    With DevTools open (or Playwright attached) a console line costs 0.3-0.7 ms, measured, and
    a new message writes three before its row is shown. Written in line they held the row
    back by about 1 ms. Written from timers they ran after whatever the page did next: with
    creates in a row, while Directus handled the next one, competing with it for the CPU.
    So lines wait in ``logs`` and ``write_logs()`` hands them to the console as microtasks:
    in order, as soon as the current event is handled (on_create calls it after the row; a
    timer, for messages with no row). Create -> render p50 in two A/B runs of 300 creates:
    24.25 -> 22.50 ms and 28.15 -> 26.35 ms (the JS page: 23.15 and 26.90 ms).
    (A microtask's stack is one frame: called from Python, the console would record dozens
    of interpreter frames.)
    """
    logs.append(value)
    if len(logs) == 1:
        log_timer["id"] = set_timeout(write_logs_later, 0)


def write_logs() -> None:
    if not logs:
        return
    clear_timeout(log_timer["id"])  # (called after a row, the timer has nothing left to write)
    batch = logs[:]
    logs.clear()
    for value in batch:
        queue_microtask(console_log.bind(None, value))


logs = []  # what log() was given and the console has not been handed yet
log_timer = {"id": 0}  # the timer that writes them when no row comes (see on_create)
set_timeout, clear_timeout = window.setTimeout, window.clearTimeout  # (they work unbound)
queue_microtask = window.queueMicrotask
console_log = console.log
status = document.getElementById("status")
messages = document.getElementById("messages")
rows = {}  # id -> li.message, in the DOM
SCROLL_NEAREST = to_js({"block": "nearest"})
js_functions = []  # every Python function handed to JS, kept alive for the page's life


def js_function(function):
    """A JS-callable proxy of ``function`` that lives as long as the page.

    Python must hold the proxy too: MicroPython may otherwise collect it and hand its slot to
    another object, and JS then calls the wrong function. What the function returns is held a
    while as well (``handed_to_js``).
    """

    def call(*args):
        return handed_to_js(function(*args))

    proxy = create_proxy(call)
    js_functions.append(proxy)
    return proxy


def handed_to_js(value):
    """Hand ``value`` (a JS object) to JS, returned or as an argument, holding it in Python a
    while longer.

    MicroPython's FFI can collect the Python handle of a JS object while it is being handed
    over (its GC does not see WebAssembly locals), and JS then gets ``undefined``: seen every
    dozen ``create_item`` calls with the machine under load, reproduced with 3 CPU hogs.
    """
    recently_returned.append(value)
    del recently_returned[:-32]
    return value


recently_returned = []
write_logs_later = js_function(write_logs)


# ----- settings -----


async def settings() -> dict:
    """Where to connect and how to sign in.

    In order: the query string (``?url=&token=`` or ``?url=&email=&password=``), then what the
    settings panel saved (sessionStorage, or localStorage when "remember" was ticked), then the
    local stack of ``make run``. ``forget_secrets()`` takes them out of the address bar.
    """
    params = window.URLSearchParams.new(window.location.search)
    found = {name: params.get(name) or None for name in ("url", "token", "email", "password")}
    if params.get("history"):
        found["history"] = int(params.get("history"))
    if complete(found):
        # (Storage is not even looked at: a page's first use of it can take milliseconds,
        # and this is on the way to the socket.)
        return found
    saved = saved_settings()
    if saved and found["url"] in (None, saved.get("url")):
        for name in ("url", "token", "email", "password"):
            found[name] = found[name] or saved.get(name)
    if complete(found):
        return found
    response = await window.fetch("./local-stack.json")
    if not response.ok:
        raise RuntimeError(
            "No Directus to talk to: open Settings, or open this page as "
            "?url=<Directus URL>&token=<static token>, or start the local one with `make run`."
        )
    local = json.loads(await response.text())
    found["url"] = found["url"] or local["directus_url"]
    found["token"] = found["token"] or local["token"]
    return found


def complete(found: dict) -> bool:
    return bool(found["url"] and (found["token"] or (found["email"] and found["password"])))


def forget_secrets() -> None:
    """Keep the token and password out of the address bar, the history and any screenshot.

    Called once the socket is on its way (replacing the history entry took up to 9 ms here).
    """
    params = window.URLSearchParams.new(window.location.search)
    if params.has("token") or params.has("password"):
        params.delete("token")
        params.delete("password")
        query = params.toString()
        path = window.location.pathname + ("?" + query if query else "")
        window.history.replaceState(None, "", path)


def saved_settings() -> dict:
    for storage in (window.sessionStorage, window.localStorage):
        raw = storage.getItem(SETTINGS_KEY)
        if raw:
            try:
                return json.loads(raw)
            except ValueError:
                storage.removeItem(SETTINGS_KEY)
    return {}


def on_settings(event) -> None:
    """Save the settings panel's values and start again with them."""
    event.preventDefault()
    form = event.target.elements
    chosen = {"url": form.url.value.strip().rstrip("/")}
    if form.method.value == "token":
        chosen["token"] = form.token.value.strip()
    else:
        chosen["email"], chosen["password"] = form.email.value.strip(), form.password.value
    for storage in (window.sessionStorage, window.localStorage):
        storage.removeItem(SETTINGS_KEY)
    keep = window.localStorage if form.remember.checked else window.sessionStorage
    keep.setItem(SETTINGS_KEY, json.dumps(chosen))
    window.location.assign(
        window.location.pathname + "?url=" + window.encodeURIComponent(chosen["url"])
    )


def show_settings(values: dict) -> None:
    form = document.getElementById("settings-form").elements
    form.url.value = values.get("url") or ""
    form.email.value = values.get("email") or ""
    if values.get("email") and not values.get("token"):
        form.method.value = "login"
    form.remember.checked = bool(window.localStorage.getItem(SETTINGS_KEY))


# ----- the DOM -----


def show_status(state: str, detail: str = "") -> None:
    status.dataset.state = state
    status.textContent = STATUS_TEXT[state] + (": " + detail if detail else "")


def created(item: dict) -> str:
    return item.get("date_created") or ""


def row_template():
    row = document.createElement("li")
    row.className = "message"
    row.setAttribute("role", "listitem")  # in #messages (role list), not in its chunk
    for name in ("user", "text"):
        cell = document.createElement("span")
        cell.className = name
        row.append(cell)
    row.append(document.createElement("time"))
    return row


ROW = row_template()  # li.message > span.user + span.text + time, cloned for every row
TIME = window.Intl.DateTimeFormat.new(to_js([]), to_js({"timeStyle": "medium"}))


def make_row(item: dict):
    """An ``li.message[data-id]`` for ``item``; text goes in as text, never as HTML.

    A clone of one template row: 12 calls into JS per row, where building it element by
    element took 19 (a 10,000-message history builds 10,000 rows).
    """
    row = ROW.cloneNode(True)
    data = row.dataset
    data.id = str(item.get("id"))
    data.created = created(item)
    user = row.firstChild
    user.textContent = str(item.get("user") or "")
    text = user.nextSibling
    text.textContent = str(item.get("text") or "")
    if item.get("date_created"):
        when = text.nextSibling
        when.dateTime = item["date_created"]
        when.textContent = TIME.format(window.Date.new(item["date_created"]))
    return row


def in_date_order(items: list) -> list:
    """``items`` oldest first. They come sorted, one way or the other: only checked and turned.

    (MicroPython's sort is a quicksort that calls the key function in every comparison: on the
    1,000 messages of a page of history, which come newest first, ``sorted`` took 370 ms.)
    """
    keys = [created(item) for item in items]
    steps = range(len(keys) - 1)
    if all(keys[i] <= keys[i + 1] for i in steps):
        return items
    if all(keys[i] >= keys[i + 1] for i in steps):
        return items[::-1]
    return sorted(items, key=created)


def make_chunk(size: int):
    """An empty ``ol.chunk`` for about ``size`` rows.

    ``#messages`` holds its rows in chunks of up to CHUNK_ROWS, in order, and the browser skips
    the chunks out of view (``content-visibility: auto``, app.css). In one flat list of 10,000
    rows every frame cost the browser 60-100 ms of layout, pre-paint and visibility tracking
    over all the rows (traced); over 100 chunks it costs 2-3 ms. (The chunk is presentational
    and the rows are list items: assistive technology sees one list, #messages.)
    """
    chunk = CHUNK.cloneNode(False)
    if size < CHUNK_ROWS:  # the size it is taken for before it was ever laid out
        chunk.style.containIntrinsicBlockSize = "auto %.1frem" % (ROW_REM * size)
    return chunk


CHUNK = document.createElement("ol")
CHUNK.className = "chunk"
CHUNK.setAttribute("role", "none")
ROW_REM = 3.2  # a row's height, about (app.css)


def first_row():
    chunk = messages.firstElementChild
    return chunk.firstElementChild if chunk else None


def last_row():
    chunk = messages.lastElementChild
    return chunk.lastElementChild if chunk else None


def previous_row(row):
    """The row before ``row``, across chunks; None (or a JS null) before the first."""
    before = row.previousElementSibling
    if before:
        return before
    chunk = row.parentElement.previousElementSibling
    return chunk.lastElementChild if chunk else None


def reader_at_bottom() -> bool:
    """Follow new messages only when the reader is already at the newest one."""
    return messages.getBoundingClientRect().bottom <= window.innerHeight + 60


def follow_newest(row) -> None:
    """Scroll ``row`` (the newest) into view at the next frame, not now.

    Scrolling now would force a layout in the middle of handling the message (about 1 ms per
    message here); at the frame the browser lays out anyway. The callback is a bound JS
    function, so the frame does not call into Python, and a newer row replaces an older one's
    pending scroll.
    """
    window.cancelAnimationFrame(scroll_pending["frame"])
    scroll_pending["frame"] = window.requestAnimationFrame(
        row.scrollIntoView.bind(row, SCROLL_NEAREST)
    )


scroll_pending = {"frame": 0}


def remove_row(row) -> None:
    chunk = row.parentElement
    row.remove()
    if not chunk.firstElementChild:
        chunk.remove()


def trim_oldest() -> None:
    while len(rows) > MAX_ROWS:
        oldest = first_row()
        rows.pop(oldest.dataset.id, None)
        remove_row(oldest)


def render(item: dict) -> None:
    """Show one item once, in ``date_created`` order (a live event)."""
    item_id = str(item.get("id"))
    if item_id in rows:
        return  # already shown (history and a live event overlap, or a replay)
    row = rows[item_id] = make_row(item)
    follow = reader_at_bottom()
    newest_chunk = messages.lastElementChild
    after = newest_chunk.lastElementChild if newest_chunk else None
    newest = not after or after.dataset.created <= row.dataset.created
    if not newest_chunk or (newest and newest_chunk.childElementCount >= CHUNK_ROWS):
        newest_chunk = make_chunk(1)
        messages.append(newest_chunk)
    if newest:  # the usual case
        newest_chunk.append(row)
    else:  # walk back to its place
        while after and after.dataset.created > row.dataset.created:
            after = previous_row(after)
        if after:
            after.after(row)
        else:  # (a JS null, which is not None in Pyodide)
            messages.firstElementChild.prepend(row)
    trim_oldest()
    if follow and newest:
        follow_newest(row)


async def render_many(items: list) -> None:
    """Show a batch (history, catch-up, older messages) without blocking the page.

    Rows are built in chunks of CHUNK_ROWS, each inserted with one DOM call, and the browser
    gets to paint and handle input between chunks. Layout is read once, not per row (reading it
    per row made a 10,000-row history take minutes).
    """
    fresh = in_date_order([i for i in items if str(i.get("id")) not in rows])
    if not fresh:
        return
    first, last = first_row(), last_row()
    older = bool(first) and created(fresh[-1]) <= first.dataset.created
    newer = not last or created(fresh[0]) >= last.dataset.created
    if not (older or newer):  # interleaved with what is shown: place each one
        for item in fresh:
            render(item)
        return
    follow = newer and reader_at_bottom()
    slices = [fresh[i : i + CHUNK_ROWS] for i in range(0, len(fresh), CHUNK_ROWS)]
    for n, part in enumerate(reversed(slices) if older else slices):
        chunk = make_chunk(len(part))
        for item in part:
            row = rows[str(item.get("id"))] = make_row(item)
            chunk.append(row)
        if older:
            messages.prepend(chunk)
        else:
            messages.append(chunk)
        if n + 1 < len(slices):
            await next_task()
    if newer:
        trim_oldest()
        if follow:
            follow_newest(last_row())


def next_task():
    """A Promise resolved from a browser task of its own: awaited between two slices of work,
    it lets the browser paint and handle input in between.

    (``asyncio.sleep(0.001)`` does not on MicroPython: a 1,000-row batch ran as one task of
    220 ms instead of five, measured.)
    """
    deferred = window.Promise.withResolvers()
    set_timeout(deferred.resolve, 0)
    return deferred.promise


def fill(row, item: dict) -> None:
    if "user" in item:
        row.querySelector(".user").textContent = str(item.get("user") or "")
    if "text" in item:
        row.querySelector(".text").textContent = str(item.get("text") or "")


def update(item: dict) -> None:
    row = rows.get(str(item.get("id")))
    if row is None:
        render(item)
    else:
        fill(row, item)


def remove(item_id) -> None:
    row = rows.pop(str(item_id), None)
    if row is not None:
        remove_row(row)


PROBLEMS = {
    "settings": (
        "No Directus to talk to",
        "Open Settings and enter your Directus URL and a static token (or email and password).",
    ),
    "unreachable": (
        "Directus does not answer at {url}",
        "Check that it is running and that the URL in Settings is right. "
        "The page keeps trying and connects as soon as it answers.",
    ),
    "realtime-off": (
        "Directus answers at {url}, but not over WebSocket",
        "Realtime is off, or this page's origin is not allowed. On the Directus server set "
        "WEBSOCKETS_ENABLED=true, and CORS_ENABLED=true with CORS_ORIGIN including {origin}. "
        "The page keeps trying.",
    ),
    "auth": (
        "Directus refused the sign-in",
        "{reason} Check the token (or email and password) in Settings; the user needs a "
        "policy that can read messages.",
    ),
    "gave-up": ("The page stopped trying to connect", "{reason} Reload the page to try again."),
}


def show_problem(kind, reason: str = "") -> None:
    """The error screen: what happened and what to do, or nothing when all is well."""
    panel = document.getElementById("problem")
    if kind is None:
        panel.hidden = True
        panel.dataset.kind = ""
        return
    title, todo = PROBLEMS[kind]
    fields = {
        "url": SETTINGS["url"] if "SETTINGS" in globals() else "",
        "origin": window.location.origin,
        "reason": reason.rstrip(".") + "." if reason else "",
    }
    panel.querySelector("h2").textContent = title.format(**fields)
    panel.querySelector("p").textContent = todo.format(**fields)
    panel.dataset.kind = kind
    panel.hidden = False
    if kind in ("settings", "auth"):
        document.getElementById("settings").open = True


# ----- the connection -----


document.getElementById("settings-form").addEventListener("submit", js_function(on_settings))


def create_client(found: dict):
    """The guide's ``createDirectus(url).with(staticToken(token)).with(realtime())``."""
    if found["token"]:
        client = create_directus(found["url"]).with_(static_token(found["token"]))
        return client.with_(realtime())
    # Email and password: log in over REST, and refresh through /auth/refresh whenever Directus
    # says the socket's token expired. Over urllib (made XHR by pyodide-http) on Pyodide, over
    # the browser's fetch on MicroPython, which has no urllib.
    from directus_realtime.rest import TokenSession

    http = None
    if MICROPYTHON:
        from directus_realtime.transports.browser import fetch_text as http
    session = TokenSession(found["url"], found["email"], found["password"], http=http)
    return create_directus(found["url"]).with_(realtime(token_provider=session.token))


def on_state(state: str, client) -> None:
    if state in ("reconnecting", "offline", "closed", "failed") and outbox.pending:
        outbox.save()  # the writes still unanswered must survive a reload from here on
    if state == "open":
        show_status("connected")
        show_problem(None)
    elif state in ("connecting", "authenticating"):
        show_status("reconnecting" if client.ever_connected else "connecting")
    elif state == "reconnecting":
        spawn(count_down(client))
        if not client.ever_connected:
            spawn(diagnose())
    elif state in ("offline", "closed"):
        show_status("offline")
    elif state == "failed":
        failure = client.failure
        reason = failure.message if failure else "gave up"
        show_status("error", reason)
        show_problem("auth" if isinstance(failure, AuthenticationError) else "gave-up", reason)


async def diagnose() -> None:
    """Never connected yet: is Directus down, or up with realtime off / this origin refused?"""
    try:
        # no-cors: any answer at all proves the server is up, whatever its CORS settings.
        await window.fetch(SETTINGS["url"] + "/server/ping", to_js({"mode": "no-cors"}))
    except Exception:
        show_problem("unreachable")
        return
    if not directus.is_connected:
        show_problem("realtime-off")


async def count_down(client) -> None:
    """Show the seconds to the next attempt while reconnecting."""
    while client.state == "reconnecting":
        seconds = client.retry_in or 0
        show_status("reconnecting", "next attempt in %.0f s" % seconds if seconds >= 1 else "")
        await asyncio.sleep(min(1.0, max(0.05, seconds % 1 or 1.0)))


async def catch_up() -> None:
    """After every (re)subscription: read what the page has not seen, so nothing is missed."""
    newest = last_row()
    try:
        if not newest:  # first load: the latest messages
            await read_messages(HISTORY, newest_first=True)
        else:  # back from a disconnect: everything since
            await read_messages(MAX_ROWS, newest_first=False, bound=newest.dataset.created)
    except Exception as error:
        console.error("Could not read the messages: " + str(error))
    document.body.dataset.history = "true"


async def load_older() -> None:
    oldest = first_row()
    bound = oldest.dataset.created if oldest else None
    if await read_messages(HISTORY, newest_first=True, bound=bound) < HISTORY:
        document.getElementById("load-older").hidden = True


async def read_messages(wanted: int, newest_first: bool, bound=None) -> int:
    """Read up to ``wanted`` messages not shown yet, from ``bound`` (a ``date_created``) on,
    newest or oldest first, in pages of ``PAGE``; each page is shown as it arrives.

    Pages keep every frame small (the MicroPython page ran out of memory on 10,000 messages,
    1.3 MB of JSON, in one frame) and let the first rows show while older ones are on their
    way.
    Each page starts at the previous one's last ``date_created`` inclusive (two messages may
    share it), and is asked for as soon as that one arrives, while it renders; what is shown
    already is skipped. Returns how many new messages were shown.
    """

    def read_page(bound, limit):
        query = {
            "fields": FIELDS,
            "limit": limit + (1 if bound else 0),  # the bound's row comes again
            "sort": ["-date_created" if newest_first else "date_created"],
        }
        if bound:
            query["filter"] = {"date_created": {"_lte" if newest_first else "_gte": bound}}
        return query["limit"], directus.read("messages", query=query)  # sent now

    shown = 0
    limit, reading = read_page(bound, min(PAGE, wanted))
    while True:
        items = await reading
        if delivery["exactly_once"] is None:
            learn_delivery(items)
        fresh = [item for item in items if str(item.get("id")) not in rows][: wanted - shown]
        more = len(items) >= limit and bool(fresh) and shown + len(fresh) < wanted
        if more:  # the next page is read while this one renders
            bound = items[-1].get("date_created")
            limit, reading = read_page(bound, min(PAGE, wanted - shown - len(fresh)))
        await render_many(fresh)
        shown += len(fresh)
        if not more:
            break
    return shown


# ----- create_item, with an outbox that survives a reload -----


def check_item(text, user) -> None:
    """Refuse what Directus should never see, before anything is sent."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("create_item: text must be a non-empty string, got " + repr(text))
    if len(text) > MAX_TEXT_LENGTH:
        raise ValueError(
            "create_item: text is %d characters; the limit is %d." % (len(text), MAX_TEXT_LENGTH)
        )
    if not isinstance(user, str) or not user.strip():
        raise ValueError("create_item: user must be a non-empty string, got " + repr(user))


def saved_outbox() -> list:
    try:
        return json.loads(window.localStorage.getItem(OUTBOX_KEY) or "[]")
    except Exception:
        return []


def save_outbox(items: list) -> None:
    if items:
        window.localStorage.setItem(OUTBOX_KEY, json.dumps(items))
    else:
        window.localStorage.removeItem(OUTBOX_KEY)


class Outbox:
    """The page's writes that Directus has not acknowledged yet, saved in localStorage so that a
    reload or a closed tab does not lose them: the next visit sends them again (their ids make
    a second copy impossible).

    Saved behind, not on every message: a write acknowledged within OUTBOX_DELAY_MS, the usual
    case, never touches localStorage (which cost 1.1 ms of CPU per message, measured: a read
    and a write when sent, again when acknowledged). A write is saved at once when it cannot
    go out now, when the connection drops before its answer, once OUTBOX_DELAY_MS pass
    without one, and when the page goes away (``pagehide``: reload, navigation, closed tab).
    What another tab saved is left as it is.
    """

    def __init__(self):
        self.pending = {}  # id -> the write, in the order sent
        self.saved = set()  # ids this page has in localStorage
        self.timer = None
        self.save_later = js_function(self.on_timer)

    def add(self, data: dict) -> None:
        self.pending[data["id"]] = data
        if not directus.is_connected:
            self.save()
        elif self.timer is None:
            self.timer = set_timeout(self.save_later, OUTBOX_DELAY_MS)

    def done(self, item_id: str) -> None:
        """Stored, or refused for good: nothing left to send."""
        self.pending.pop(item_id, None)
        if item_id in self.saved:
            self.write(self.saved - {item_id})  # (and not the newer writes: not due yet)

    def take_over(self) -> list:
        """The writes a previous visit saved, which this page now sends."""
        items = saved_outbox()
        self.saved.update(data["id"] for data in items)
        return items

    def save(self) -> None:
        self.write(set(self.pending))

    def write(self, ids: set) -> None:
        """Have exactly the pending writes in ``ids`` in localStorage, beside other tabs' own."""
        mine = self.saved | set(self.pending)
        others = [data for data in saved_outbox() if data.get("id") not in mine]
        save_outbox(others + [data for key, data in self.pending.items() if key in ids])
        self.saved = {key for key in self.pending if key in ids}

    def on_timer(self) -> None:
        self.timer = None
        if self.pending:
            self.save()


outbox = Outbox()
window.onpagehide = js_function(lambda event: outbox.save() if outbox.pending else None)


# Whether Directus stores the ids the page chooses (the provisioned uuid key): then a write
# sent again after a lost reply cannot be stored twice. A Directus that numbers messages itself
# refuses a chosen id (FORBIDDEN): the page then sends without one and says that delivery is
# at-least-once. None until known.
delivery = {"exactly_once": None}


def learn_delivery(items: list) -> None:
    for item in items:
        if isinstance(item.get("id"), bool):
            continue
        if isinstance(item.get("id"), int):
            set_delivery(False)
        elif isinstance(item.get("id"), str):
            set_delivery(True)
        return


def set_delivery(exactly_once: bool) -> None:
    delivery["exactly_once"] = exactly_once
    note = document.getElementById("delivery")
    note.dataset.guarantee = "exactly-once" if exactly_once else "at-least-once"
    note.textContent = (
        "Each message is stored exactly once, even when sent again after a lost reply."
        if exactly_once
        else "This Directus numbers messages itself, so the page cannot choose their ids: a "
        "message sent again after a lost reply may be stored twice (at-least-once delivery)."
    )
    note.hidden = exactly_once


def send_item(data: dict):
    """Send ``data`` (``id`` is the page's own key) now; returns a ``Waiter`` of the stored item.

    On the wire first (``create()`` sends when called), then in the outbox, before anything
    else can run, so a reload cannot come in between. The answer is handled the moment it
    arrives (``add_done_callback``), with no turn of the event loop.
    """
    payload = data if delivery["exactly_once"] is not False else without_id(data)
    sending = directus.create("messages", payload, query={"fields": FIELDS})
    outbox.add(data)
    stored = Waiter()
    sending.add_done_callback(lambda done: on_answer(data, done, stored, False))
    return stored


def on_answer(data: dict, done, stored, without_id_already: bool) -> None:
    error = done.exception()
    if (
        not without_id_already
        and isinstance(error, DirectusError)
        and error.code == "FORBIDDEN"
        and delivery["exactly_once"] is None
    ):
        # Refused: the id (a Directus with its own numbering), or the create itself? Once more
        # without the id.
        again = directus.create("messages", without_id(data), query={"fields": FIELDS})
        again.add_done_callback(lambda done: on_answer(data, done, stored, True))
        return
    if error is None:
        item = done.result()
        if without_id_already:
            set_delivery(False)
        elif delivery["exactly_once"] is None:
            learn_delivery([item])
        outbox.done(data["id"])
        stored.set_result(item)
    elif isinstance(error, DirectusError):
        # Directus said no (FORBIDDEN, invalid...): sending it again would not help.
        outbox.done(data["id"])
        stored.set_exception(error)
    else:
        # No answer (timed out, or the connection gone for good): kept for the next visit.
        outbox.save()
        stored.set_exception(error)


def without_id(data: dict) -> dict:
    return {name: value for name, value in data.items() if name != "id"}


def create_item(text=None, user=None):
    """``create_item(text, user)`` from the console: a Promise of the created item.

    The item carries its own id, so a retry after a lost reply cannot create it twice. While
    disconnected it waits (in order, also across a reload) and is sent on reconnect.
    """

    try:
        check_item(text, user)  # at once: bad input never reaches the outbox or the socket
        stored = send_item({"id": new_id(), "text": text, "user": user})  # on the wire now
    except Exception as error:
        return window.Promise.reject(window.Error.new(str(error)))
    # Promise.withResolvers, not new Promise(executor): the executor's resolve and reject
    # would be arguments of a JS call, which MicroPython's FFI does not keep valid after the
    # call returns (seen: a rejection turning into a page error and a resolved Promise).
    deferred = window.Promise.withResolvers()
    unsettled.append(deferred)  # held until settled, whatever the interpreter's GC does

    def settle(done) -> None:
        unsettled.remove(deferred)
        error = done.exception()
        if error is None:
            deferred.resolve(handed_to_js(to_js(done.result())))
        else:
            deferred.reject(handed_to_js(window.Error.new(str(error))))

    stored.add_done_callback(settle)
    return deferred.promise


unsettled = []  # the Promises create_item returned and has not settled yet


def on_compose(event) -> None:
    event.preventDefault()
    form = event.target
    text, user = form.elements.text.value, form.elements.user.value
    try:
        check_item(text, user)
    except ValueError as error:
        form.querySelector(".error").textContent = str(error).replace("create_item: ", "")
        return
    form.querySelector(".error").textContent = ""
    form.elements.text.value = ""

    def on_stored(done) -> None:
        if done.exception() is not None:
            form.querySelector(".error").textContent = "Not sent: " + str(done.exception())

    send_item({"id": new_id(), "text": text, "user": user}).add_done_callback(on_stored)


document.getElementById("compose").addEventListener("submit", js_function(on_compose))
document.getElementById("load-older").addEventListener(
    "click", js_function(lambda event: spawn(load_older()))
)


# ----- the guide's "Log Messages" -----


def on_open(event):
    log("Connection is open")


def on_message(message):
    log("New message of type " + str(message.get("type")))
    data = message.get("data")
    if isinstance(data, list) and len(data) > 100:
        # Converting a whole history to JS objects only to log it would block the page.
        log("[" + str(len(data)) + " items]")
    else:
        log(to_js(data))


def on_close(event):
    log("Connection has closed")


def on_error(error):
    log("Connection has had an error")
    log(str(error))


# ----- the guide's "Subscribe to Changes" -----


async def follow(event: str, apply) -> None:
    def on_message(message: dict) -> None:
        for item in message.get("data") or []:
            apply(item)

    subscription = await directus.subscribe("messages", event=event, query={"fields": FIELDS})
    subscription.listen(on_message)


following = []  # the update and delete subscriptions, once made


def on_create(message: dict) -> None:
    """The guide's ``for await (const item of subscription)``, called as each message arrives.

    (``listen`` rather than ``async for``: the row shows one event-loop turn sooner, which in
    Pyodide is a browser task of 1.5-2 ms.)
    """
    if message.get("event") == "init":
        # (Re)subscribed: after a reconnect or a token renewal. From here on nothing is
        # missed; read back what was created before, while the page was not listening.
        document.body.dataset.subscribed = "true"
        if not following:
            # Edits and deletes are followed from here: sent with the first subscription,
            # they made Directus answer it 3-8 ms later (their permission checks run in
            # between). They still go out before the history read.
            following.append(spawn(follow("update", update)))
            following.append(spawn(follow("delete", remove)))  # delete events carry the ids
        spawn(catch_up())
    for item in message.get("data") or []:
        log(to_js(item))
        render(item)
    write_logs()  # the guide's lines for this message, right after its rows


# ----- the page, in the guide's order -----


async def start() -> None:
    """The guide's <script>: a client with a static token and realtime, its socket's events
    logged, new messages subscribed to and shown, ``create_item`` offered to the console.

    index.html runs ``from main import start`` and ``await start()``: imported, this file loads
    as MicroPython bytecode, which the page server compiles (stack/mpy.py), instead of being
    compiled at every load (7-10 ms). pyodide.html runs the same two lines.
    """
    global SETTINGS, HISTORY, MAX_ROWS, directus
    try:
        SETTINGS = await settings()
    except Exception as error:
        show_status("error", str(error))
        show_problem("settings", str(error))
        console.error(str(error))
        forget_secrets()
        raise
    HISTORY = SETTINGS.get("history") or HISTORY
    MAX_ROWS = max(MAX_ROWS, HISTORY)

    directus = create_client(SETTINGS)
    directus.on_state(on_state)
    # (Handler properties, not addEventListener: MicroPython's FFI calls window's methods with
    # the wrong `this`, and the browser refuses with "Illegal invocation".)
    window.ononline = js_function(lambda event: directus.set_online(True))
    window.onoffline = js_function(lambda event: directus.set_online(False))
    directus.on_websocket("open", on_open)
    directus.on_websocket("message", on_message)
    directus.on_websocket("close", on_close)
    directus.on_websocket("error", on_error)

    subscription = await directus.subscribe("messages", event="create", query={"fields": FIELDS})
    subscription.listen(on_create)
    window.create_item = js_function(create_item)
    connected = directus.connect()  # the socket opens now; the rest runs during its handshake
    forget_secrets()
    show_settings(SETTINGS)  # (its first look at localStorage took 1.4 ms: not before the socket)
    for data in outbox.take_over():  # writes a previous visit could not send
        send_item(data)
    try:
        await connected
    except Exception as error:
        console.error(str(error))

    try:
        await subscription.wait_closed()
    except Exception as error:
        console.error("The subscription ended: " + str(error))
        show_status("error", "the subscription ended: " + str(error))

"""The page's edge to the browser: PyScript's FFI, timers, storage, the address bar and tab
locks. The only module of ``page`` that imports ``pyscript``; the same code runs on
MicroPython (index.html) and Pyodide (pyodide.html).
"""

import json
import sys

from pyscript import window
from pyscript.ffi import create_proxy, to_js

MICROPYTHON = sys.implementation.name == "micropython"
TAB_LOCK = "directus-realtime:tab:"  # + a tab's id: held while the tab lives (Web Locks)

_kept = []  # every Python function handed to JS, kept alive for the page's life
_recently_returned = []


def js_function(function):
    """A JS-callable proxy of ``function`` that lives as long as the page.

    Python must hold the proxy too: MicroPython may otherwise collect it and hand its slot to
    another object, and JS then calls the wrong function.
    """

    def call(*args):
        return handed_to_js(function(*args))

    proxy = create_proxy(call)
    _kept.append(proxy)
    return proxy


def handed_to_js(value):
    """``value`` (a JS object), held in Python a while after it is handed to JS: MicroPython's
    GC does not see WebAssembly locals and may collect its handle mid-handover."""
    _recently_returned.append(value)
    del _recently_returned[:-32]
    return value


class Timer:
    """A one-shot ``setTimeout`` of ``callback``, with one JS proxy for its whole life."""

    def __init__(self, callback) -> None:
        self.proxy = js_function(callback)
        self.id = 0

    def start(self, ms: int) -> None:
        self.id = window.setTimeout(self.proxy, ms)

    def cancel(self) -> None:
        window.clearTimeout(self.id)


def next_task():
    """A Promise resolved from a browser task of its own: awaited between two slices of work,
    it lets the browser paint and handle input (``asyncio.sleep`` does not, on MicroPython)."""
    deferred = window.Promise.withResolvers()
    window.setTimeout(deferred.resolve, 0)
    return deferred.promise


def new_id() -> str:
    """A random UUID (version 4). ``crypto.randomUUID`` exists only in secure contexts (https,
    localhost); a page served over plain http elsewhere builds one from random bytes."""
    crypto = window.crypto
    if getattr(crypto, "randomUUID", None):
        return crypto.randomUUID()
    data = crypto.getRandomValues(window.Uint8Array.new(16))
    raw = [data[i] for i in range(16)]
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = "".join("%02x" % byte for byte in raw)
    return "-".join((text[:8], text[8:12], text[12:16], text[16:20], text[20:]))


def console_hand_over():
    """``hand_over`` for ``ConsoleLines``: one console.log per value, as a microtask (whose
    stack is one frame, not dozens of interpreter frames)."""
    log, queue = window.console.log, window.queueMicrotask

    def hand_over(value) -> None:
        queue(log.bind(None, value))

    return hand_over


def warn(text: str) -> None:
    window.console.warn(text)


def query_params(names) -> dict:
    params = window.URLSearchParams.new(window.location.search)
    return {name: str(params.get(name)) if params.has(name) else None for name in names}


def forget_secrets(names) -> None:
    """Take ``names`` out of the address bar (and so out of the history and any screenshot)."""
    params = window.URLSearchParams.new(window.location.search)
    if any(params.has(name) for name in names):
        for name in names:
            params.delete(name)
        query = params.toString()
        window.history.replaceState(
            None, "", window.location.pathname + ("?" + query if query else "")
        )


def read_storage(storage, key: str):
    """``storage.getItem(key)``, or None where the browser refuses storage."""
    try:
        raw = storage.getItem(key)
    except Exception:
        return None
    return raw if isinstance(raw, str) else None  # (JS null is not None on Pyodide)


def write_storage(storage, key: str, value: str) -> bool:
    """``storage.setItem(key, value)``; False where the browser refuses (full, or disabled)."""
    try:
        storage.setItem(key, value)
        return True
    except Exception:
        return False


def storages():
    """(sessionStorage, localStorage), or None for each the browser refuses."""
    found = []
    for name in ("sessionStorage", "localStorage"):
        try:
            found.append(getattr(window, name))
        except Exception:
            found.append(None)
    return found


def hold_tab_lock(tab: str) -> None:
    """Hold a Web Lock named for this tab as long as it lives: other tabs ask which tabs are
    alive (``live_tabs``), and the browser lets the lock go when the tab closes or crashes."""
    locks = getattr(window.navigator, "locks", None)
    if not locks:
        return
    forever = window.Promise.withResolvers()
    _kept.append(forever)
    locks.request(TAB_LOCK + tab, js_function(lambda lock: forever.promise))


async def live_tabs() -> set:
    """The ids of the tabs holding their lock (an empty set where Web Locks are missing, e.g.
    a page served over plain http from another host: every saved write is then taken over)."""
    locks = getattr(window.navigator, "locks", None)
    if not locks:
        return set()
    try:
        state = await locks.query()
        return {
            str(lock.name)[len(TAB_LOCK) :]
            for lock in state.held
            if str(lock.name).startswith(TAB_LOCK)
        }
    except Exception:
        return set()


async def fetch_json(url: str):
    """The JSON at ``url``, or None when it is not there."""
    try:
        response = await window.fetch(url, to_js({"cache": "no-store"}))
        if not response.ok:
            return None
        return json.loads(await response.text())
    except Exception:
        return None


async def answers(url: str) -> bool:
    """Whether anything answers at ``url`` (no-cors: whatever its CORS settings)."""
    try:
        await window.fetch(url, to_js({"mode": "no-cors"}))
        return True
    except Exception:
        return False

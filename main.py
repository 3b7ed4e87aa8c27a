"""The Directus guide "Connect to Realtime Data", in Python, in the browser.

Reads like the guide's <script>: create a client with a static token and the realtime
composable, log the socket's events, subscribe to new ``messages`` and show each one, and offer
``create_item(text, user)`` in the devtools console. The Directus URL and token come from the
query string (``?url=...&token=...``), else from the local stack that ``make run`` started.
"""

import asyncio
import uuid

from pyscript import document, window
from pyscript.ffi import create_proxy, to_js

from directus_realtime import create_directus, realtime, static_token

MAX_TEXT_LENGTH = 10_000
STATUS_TEXT = {
    "connecting": "Connecting…",
    "connected": "Connected",
    "reconnecting": "Reconnecting…",
    "offline": "Offline: waiting for the network",
    "error": "Error",
}

console = window.console
status = document.getElementById("status")
messages = document.getElementById("messages")


def show_status(state: str, detail: str = "") -> None:
    status.dataset.state = state
    status.textContent = STATUS_TEXT[state] + (": " + detail if detail else "")


async def settings() -> tuple[str, str]:
    """The Directus URL and token: query string first, else the local stack."""
    params = window.URLSearchParams.new(window.location.search)
    url, token = params.get("url"), params.get("token")
    if params.has("token"):
        # Keep the token out of the address bar, the history and any shared screenshot.
        params.delete("token")
        query = params.toString()
        window.history.replaceState(None, "", window.location.pathname + ("?" + query if query else ""))
    if url and token:
        return url, token
    response = await window.fetch("./local-stack.json")
    if not response.ok:
        raise RuntimeError(
            "No Directus to talk to: open this page as ?url=<Directus URL>&token=<static token>, "
            "or start the local one with `make run`."
        )
    local = (await response.json()).to_py()
    return url or local["directus_url"], token or local["token"]


def render(item: dict) -> None:
    """One ``li.message[data-id]`` per item; text goes in as text, never as HTML."""
    item_id = str(item.get("id"))
    if messages.querySelector('[data-id="' + window.CSS.escape(item_id) + '"]'):
        return  # already shown (a replayed or repeated event)
    row = document.createElement("li")
    row.className = "message"
    row.dataset.id = item_id
    for name in ("user", "text"):
        cell = document.createElement("span")
        cell.className = name
        cell.textContent = str(item.get(name) or "")
        row.append(cell)
    if item.get("date_created"):
        when = document.createElement("time")
        when.dateTime = item["date_created"]
        when.textContent = window.Date.new(item["date_created"]).toLocaleTimeString()
        row.append(when)
    messages.append(row)
    row.scrollIntoView(to_js({"block": "nearest"}))


def on_state(state: str, client) -> None:
    if state == "open":
        show_status("connected")
    elif state in ("connecting", "authenticating"):
        show_status("reconnecting" if client.ever_connected else "connecting")
    elif state == "reconnecting":
        asyncio.ensure_future(count_down(client))
    elif state in ("offline", "closed"):
        show_status("offline")
    elif state == "failed":
        show_status("error", str(client.failure.message if client.failure else "gave up"))


async def count_down(client) -> None:
    """Show the seconds to the next attempt while reconnecting."""
    while client.state == "reconnecting":
        seconds = client.retry_in or 0
        show_status("reconnecting", "next attempt in %.0f s" % seconds if seconds >= 1 else "")
        await asyncio.sleep(min(1.0, max(0.05, seconds % 1 or 1.0)))


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


try:
    DIRECTUS_URL, TOKEN = await settings()  # noqa: F704 (PyScript runs main.py in a loop)
except Exception as error:
    show_status("error", str(error))
    console.error(str(error))
    raise

directus = create_directus(DIRECTUS_URL).with_(static_token(TOKEN)).with_(realtime())
directus.on_state(on_state)


def create_item(text=None, user=None):
    """``create_item(text, user)`` from the console: a Promise of the created item."""

    def executor(resolve, reject):
        async def run():
            try:
                check_item(text, user)
                item = await directus.create(
                    "messages",
                    # Our own primary key makes a retried create harmless (exactly once).
                    {"id": str(uuid.uuid4()), "text": text, "user": user},
                    query={"fields": ["id", "user", "text", "date_created"]},
                )
                resolve(to_js(item))
            except Exception as error:
                reject(window.Error.new(str(error)))

        asyncio.ensure_future(run())

    proxy = create_proxy(executor)
    try:
        return window.Promise.new(proxy)
    finally:
        proxy.destroy()


window.create_item = create_proxy(create_item)


# The guide's "Log Messages" section.
def on_open(event):
    console.log("Connection is open")


def on_message(message):
    console.log("New message of type " + str(message.get("type")))
    console.log(to_js(message.get("data")))


def on_close(event):
    console.log("Connection has closed")


def on_error(error):
    console.log("Connection has had an error")
    console.log(str(error))


directus.on_websocket("open", on_open)
directus.on_websocket("message", on_message)
directus.on_websocket("close", on_close)
directus.on_websocket("error", on_error)

for name, online in (("online", True), ("offline", False)):
    window.addEventListener(name, create_proxy(lambda event, o=online: directus.set_online(o)))

# The guide's "Subscribe to Changes".
subscription = await directus.subscribe(  # noqa: F704
    "messages",
    event="create",
    query={"fields": ["id", "user", "text", "date_created"]},
)
try:
    await directus.connect()  # noqa: F704
except Exception as error:
    console.error(str(error))

try:
    async for message in subscription:  # noqa: F704
        if message.get("event") == "init":
            document.body.dataset.subscribed = "true"
        for item in message.get("data") or []:
            console.log(to_js(item))
            render(item)
except Exception as error:
    console.error("The subscription ended: " + str(error))

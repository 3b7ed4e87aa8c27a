"""A live counter on the ``directus_realtime`` library: every click on any open page adds a row
to the ``clicks`` collection, and every page shows the total as it changes.

Where to connect: ``?url=<Directus URL>&token=<static token>``, else the site's
``config.json`` (``make dist``'s names a Directus; the page server's is the local stack's, with
its token). The total is the collection's count read after each (re)subscription, plus each
click created after the largest id that count included, so nothing is counted twice.
"""

import json

from pyscript import document, window
from pyscript.ffi import create_proxy

from directus_realtime import create_directus, realtime, static_token

COLLECTION = "clicks"
# The client's states, as this page says them: (data-state, text).
STATES = {
    "connecting": ("connecting", "Connecting…"),
    "authenticating": ("connecting", "Signing in…"),
    "open": ("connected", "Connected"),
    "reconnecting": ("reconnecting", "Reconnecting…"),
    "offline": ("offline", "Offline"),
    "closed": ("offline", "Closed"),
    "failed": ("error", "Gave up: reload to try again"),
}


def _param(params, name):
    return str(params.get(name)) if params.has(name) else None


async def settings():
    """(url, token) from the address, else from ../../config.json (its token only for its URL)."""
    params = window.URLSearchParams.new(window.location.search)
    url, token = _param(params, "url"), _param(params, "token")
    if url and token:
        return url, token
    try:
        response = await window.fetch("../../config.json")
        config = json.loads(await response.text()) if response.ok else {}
    except Exception:
        config = {}
    if config.get("directus_url") and url in (None, config["directus_url"]):
        return config["directus_url"], token or config.get("token")
    return url, token


class Counter:
    def __init__(self) -> None:
        self.total = None  # None until the first count arrives
        self.counted_up_to = None  # the largest id the count included
        self.early = []  # ids created before the count arrived
        self.output = document.getElementById("total")
        self.status = document.getElementById("status")

    def say(self, state: str, text: str) -> None:
        self.status.dataset.state = state
        self.status.textContent = text

    def counted(self, count: int, largest) -> None:
        self.total, self.counted_up_to = count, largest or 0
        for item_id in self.early:
            self.created(item_id)
        self.early = []
        self.show()

    def created(self, item_id) -> None:
        if self.total is None:
            self.early.append(item_id)
        elif int(item_id) > self.counted_up_to:
            self.total += 1
            self.counted_up_to = int(item_id)

    def show(self) -> None:
        if self.total is not None:
            self.output.textContent = str(self.total)


async def start() -> None:
    counter = Counter()
    url, token = await settings()
    if not (url and token):
        counter.say("error", "Open this page as ?url=<Directus URL>&token=<static token>.")
        return
    directus = create_directus(url).with_(static_token(token)).with_(realtime())
    directus.on_state(lambda state, client: counter.say(*STATES.get(state, (state, state))))
    subscription = await directus.subscribe(COLLECTION, event="create", query={"fields": ["id"]})

    def on_count(reply) -> None:
        try:
            row = reply.result()[0]
        except Exception as error:
            counter.say("error", "Could not count the clicks: " + str(error))
            return
        counter.counted(int(row["count"]), int((row.get("max") or {}).get("id") or 0))

    def on_message(message: dict) -> None:
        if message.get("event") == "init":  # (re)subscribed: count again from here
            counter.total = None
            query = {"aggregate": {"count": "*", "max": "id"}}
            directus.read(COLLECTION, query=query).add_done_callback(on_count)
            return
        for item in message.get("data") or []:
            counter.created(item["id"])
        counter.show()

    subscription.listen(on_message)

    button = document.getElementById("click")

    def on_click(event) -> None:
        directus.create(COLLECTION, {})

    handler = create_proxy(on_click)
    button.addEventListener("click", handler)
    button.disabled = False
    window.counter_ready = True
    await directus.connect()
    await subscription.wait_closed()

"""The Directus guide "Connect to Realtime Data", in Python, in the browser.

``start()`` is the guide's ``<script>``, in its order: a client with a static token and the
realtime composable, the socket's four events logged with the guide's lines (each new item
too), the messages shown, and ``create_item(text, user)`` offered to the devtools console.
Under the list is one live query of ``messages`` (the library's ``client.live``): the latest
100, kept equal to the server's through every fault, with writes shown at once as pending.
Everything the page adds (where to connect, the status line and problem screens, the stores
that survive a reload) is a ``Page`` (the ``page`` package).

index.html runs ``from main import start`` and ``await start()`` on MicroPython (this file then
loads as bytecode); pyodide.html runs the same two lines on Pyodide.
"""

from pyscript import document, window

from directus_realtime import create_directus, realtime, static_token
from page.app import Page
from page.browser import js_function


async def start() -> None:
    window.performance.mark("main.py: imports done")  # (make bench's start-up breakdown)
    page = Page(document, window)
    config = await page.read_settings()  # ?url=&token=, the Settings panel, or `make run`'s
    if config is None:
        return  # the problem screen says what is missing and how to set it
    outbox = await page.outbox_store()  # writes a previous visit could not send are sent

    # "Connect via Directus Realtime"
    if config["token"]:
        directus = (
            create_directus(config["url"])
            .with_(static_token(config["token"]))
            .with_(realtime(outbox_store=outbox))
        )
    else:  # email and password, from the Settings panel
        directus = page.signed_in_client()
    page.use(directus)  # the status line and problem screens follow the connection

    # "Log Messages" (handlers first: the socket opens below, and its first events count)
    def on_open(event) -> None:
        page.log("Connection is open")

    def on_message(message: dict) -> None:
        page.log("New message of type " + str(message.get("type")))
        page.log_data(message.get("data"))
        # "Subscribe to Changes": for await (const item of subscription) console.log(item)
        if message.get("type") == "subscription" and message.get("event") == "create":
            for item in message.get("data") or []:
                page.log(item)  # handed to the console once its row is shown

    def on_close(event) -> None:
        page.log("Connection has closed")

    def on_error(error) -> None:
        page.log("Connection has had an error")
        page.log(str(error))

    directus.on_websocket("open", on_open)
    directus.on_websocket("message", on_message)
    directus.on_websocket("close", on_close)
    directus.on_websocket("error", on_error)
    # The socket opens now: the live query below (and its saved rows, read from storage) is
    # made while the socket opens, and subscribes once it is authenticated.
    connected = directus.connect()

    # The messages: one live query, shown by the page (rows by id, pending, current)
    live = directus.live("messages", query=page.query(), store=page.snapshots)
    page.show(live)

    # "Create an Item": createItem(text, user), from the devtools console
    def create_item(text=None, user=None):
        """Sends ``{text, user}`` through the live query; a Promise of the created item."""
        return page.create_item(text, user)

    window.create_item = js_function(create_item)

    page.started()  # the Settings panel
    try:
        await connected
    except Exception as error:
        window.console.error(str(error))  # (the status line and the problem screen say it too)

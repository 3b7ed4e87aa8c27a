"""The Directus guide "Connect to Realtime Data", in Python, in the browser.

``start()`` is the guide's ``<script>``, in its order: a client with a static token and the
realtime composable, the socket's four events logged with the guide's lines, new ``messages``
subscribed to (each logged and shown), and ``create_item(text, user)`` offered to the devtools
console. Everything the page adds (where to connect, the status line and problem screens, the
list of rows, an outbox that survives a reload) is a ``Page`` (the ``page`` package).

index.html runs ``from main import start`` and ``await start()`` on MicroPython (this file then
loads as bytecode); pyodide.html runs the same two lines on Pyodide.
"""

from pyscript import document, window

from directus_realtime import create_directus, realtime, static_token
from page.app import Page
from page.browser import js_function
from page.history import FIELDS


async def start() -> None:
    window.performance.mark("main.py: imports done")  # (make bench's start-up breakdown)
    page = Page(document, window)
    settings = await page.read_settings()  # ?url=&token=, the Settings panel, or `make run`'s
    if settings is None:
        return  # the problem screen says what is missing and how to set it

    # "Connect via Directus Realtime"
    if settings["token"]:
        directus = (
            create_directus(settings["url"])
            .with_(static_token(settings["token"]))
            .with_(realtime())
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

    def on_close(event) -> None:
        page.log("Connection has closed")

    def on_error(error) -> None:
        page.log("Connection has had an error")
        page.log(str(error))

    directus.on_websocket("open", on_open)
    directus.on_websocket("message", on_message)
    directus.on_websocket("close", on_close)
    directus.on_websocket("error", on_error)

    # "Subscribe to Changes": for await (const item of subscription) console.log(item)
    subscription = await directus.subscribe("messages", event="create", query={"fields": FIELDS})

    def on_create(message: dict) -> None:
        page.on_subscription(message)  # (re)subscribed: read back what came before
        for item in message.get("data") or []:
            page.log(item)
            page.show(item)
        page.flush_logs()  # the guide's lines for this message, right after its row

    subscription.listen(on_create)

    # "Create an Item": createItem(text, user), from the devtools console
    def create_item(text=None, user=None):
        """Sends ``{text, user}`` over the connection; a Promise of the created item."""
        return page.create_item(text, user)

    window.create_item = js_function(create_item)

    connected = directus.connect()  # the socket opens now
    page.started()  # the Settings panel, and writes a previous visit could not send
    try:
        await connected
    except Exception as error:
        window.console.error(str(error))
    try:
        await subscription.wait_closed()
    except Exception as error:
        page.ended(error)  # said in the status line and the console

"""Make the README's screenshots with Playwright, so they show what the page really does.

    .venv/bin/python docs/screenshots.py      # or: make screenshots

Starts the local stack when it is not running (and stops it again), and a Directus of its own
on a copy of the stack's database with the messages emptied, where it writes a conversation of
60 messages (the guide's three last), so the pictures show a long list as a user sees it. Writes
docs/*.png: the page in light and dark, on a phone, and an error screen.
"""

import json
import socket
import sqlite3
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import stack  # noqa: E402  (after the path is set)
from stack import directus  # noqa: E402
from stack.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

OUT = ROOT / "docs"
GUIDE = [
    ("Hello World!", "Ben"),
    ("Hello Universe!", "Rijk"),
    ("Hello Everyone Everywhere All At Once!", "Kevin"),
]
CHAT = [
    ("Ana", "Morning! Is the realtime demo up?"),
    ("Lea", "Yes, on the staging project since yesterday."),
    ("Ana", "Nice. Does it survive a flaky connection?"),
    ("Lea", "It reconnects and catches up: messages sent while you were away show up after."),
    ("Rijk", "And writes made offline wait in the outbox until the socket is back."),
    ("Ana", "Even across a reload?"),
    ("Rijk", "Even across a reload. They are sent once, not twice."),
    ("Kevin", "I tried it on my phone in the train, works fine."),
    ("Ben", "Python in the browser, still surprised every time."),
    ("Lea", "MicroPython boots in well under a second here."),
]


def create(info: dict, text: str, user: str) -> None:
    request = urllib.request.Request(
        info["directus_url"] + "/items/messages",
        data=json.dumps({"text": text, "user": user}).encode(),
        method="POST",
        headers={"Authorization": "Bearer " + info["token"], "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shoot(browser, url: str, name: str, ready: str, **context) -> None:
    page = browser.new_context(**context).new_page()
    page.goto(url)
    page.wait_for_selector(ready, timeout=60_000)
    page.wait_for_timeout(300)  # let the last rows paint
    page.screenshot(path=str(OUT / name))
    page.context.close()
    print("wrote", OUT / name)


def conversation() -> list[tuple[str, str]]:
    """60 messages: the chat above over and over, numbered, then the guide's three."""
    out = []
    while len(out) < 57:
        for user, text in CHAT:
            out.append((f"{text} ({len(out) + 1})", user))
    return out[:57] + GUIDE


def own_directus(info: dict, tmp: Path):
    """A Directus on an emptied copy of the stack's database, with the conversation."""
    db = directus.copy_of_main_db(tmp)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM messages")
    cors = directus.app_origins(info["app_port"])
    server = directus.start_directus(
        free_port(), db, {"CORS_ORIGIN": cors}, log_file=tmp / "directus.log"
    )
    for text, user in conversation():
        create({**info, "directus_url": server.url}, text, user)
    return server


def main() -> int:
    info, started_here = stack.ensure_up(quiet=False)
    server = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            server = own_directus(info, Path(tmp))
            query = urllib.parse.urlencode({"url": server.url, "token": info["token"]})
            ready = 'body[data-history="true"]'
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                app = info["app_url"] + "?" + query
                size = {"width": 1000, "height": 700}
                shoot(browser, app, "page-light.png", ready, viewport=size)
                shoot(browser, app, "page-dark.png", ready, viewport=size, color_scheme="dark")
                shoot(
                    browser,
                    app,
                    "page-phone.png",
                    ready,
                    viewport={"width": 390, "height": 760},
                    device_scale_factor=1,
                )
                unreachable = f"{info['app_url']}?url=http://127.0.0.1:{free_port()}&token=x"
                shoot(browser, unreachable, "error-unreachable.png", "#problem:not([hidden])")
                browser.close()
            directus.stop(server)
    finally:
        if started_here:
            stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Make the README's screenshots with Playwright, so they show what the page really does.

    .venv/bin/python docs/screenshots.py      # or: make screenshots

Starts the local stack when it is not running (and stops it again), creates the guide's three
messages, and writes docs/*.png: the page in light and dark, on a phone, and an error screen.
"""

import json
import socket
import sys
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import stack  # noqa: E402  (after the path is set)
from stack.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

OUT = ROOT / "docs"
GUIDE = [
    ("Hello World!", "Ben"),
    ("Hello Universe!", "Rijk"),
    ("Hello Everyone Everywhere All At Once!", "Kevin"),
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


def main() -> int:
    info, started_here = stack.ensure_up(quiet=False)
    try:
        for text, user in GUIDE:
            create(info, text, user)
        ready = 'body[data-history="true"]'
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            app = info["app_url"]
            size = {"width": 900, "height": 600}
            shoot(browser, app, "page-light.png", ready, viewport=size)
            shoot(browser, app, "page-dark.png", ready, viewport=size, color_scheme="dark")
            shoot(
                browser,
                app,
                "page-phone.png",
                ready,
                viewport={"width": 390, "height": 700},
                device_scale_factor=1,
            )
            unreachable = f"{app}?url=http://127.0.0.1:{free_port()}&token=x"
            shoot(browser, unreachable, "error-unreachable.png", "#problem:not([hidden])")
            browser.close()
    finally:
        if started_here:
            stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())

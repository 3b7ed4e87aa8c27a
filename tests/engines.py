"""The page in each browser engine, behind one small interface (tests/e2e/test_engines.py,
tests/e2e/test_visual.py, tests/e2e/test_offline.py).

- Chromium: Debian's ``chromium`` through Playwright (as every other e2e test).
- Firefox: Debian's ``firefox-esr`` through Playwright's ``moz-firefox`` channel, which speaks
  WebDriver BiDi to the browser's own implementation (Playwright's patched Firefox cannot be
  downloaded here). ``page.on("websocket")`` never fires there: nothing here relies on it.
- WebKit (Safari's engine): Debian's WebKitGTK MiniBrowser through its WebDriver
  (``WebKitWebDriver``) and Selenium. MiniBrowser has no headless mode: it draws on an Xvfb
  display that ``Display`` starts on a free number and stops by pid. Its window is at least 447
  px wide, and its colour scheme follows the GTK theme (``GTK_THEME=Adwaita:dark``).
- Dark in Firefox: Playwright's ``color_scheme`` does nothing over BiDi (Firefox ESR 153), so a
  second Firefox starts with a dark system theme (its preferences).

A ``Session`` is one page in a fresh profile (its own storage and service workers). Scripts are
function bodies that read their arguments from ``args`` (an array) and ``return`` a value;
``run_async`` bodies may ``await``.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from stack import procs
from stack.browser import CHROMIUM, CHROMIUM_ARGS

FIREFOX = "/usr/lib/firefox-esr/firefox-esr"
WEBKIT_DRIVER = "/usr/bin/WebKitWebDriver"
MINIBROWSER = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
XVFB = shutil.which("Xvfb") or "/usr/bin/Xvfb"
ENGINES = ("chromium", "firefox", "webkit")
POLL_S = 0.05
DARK_FIREFOX = {"ui.systemUsesDarkTheme": 1, "layout.css.prefers-color-scheme.content-override": 2}


def missing(engine: str) -> str | None:
    """What is not installed for ``engine`` (None when it can run); `make browsers` installs it."""
    needed = {
        "chromium": [CHROMIUM],
        "firefox": [FIREFOX],
        "webkit": [WEBKIT_DRIVER, MINIBROWSER, XVFB],
    }[engine]
    absent = [path for path in needed if not Path(path).exists()]
    return ", ".join(absent) if absent else None


class Session:
    """One page of one engine, in a profile of its own."""

    engine = ""

    def goto(self, url: str) -> None:
        raise NotImplementedError

    def reload(self) -> None:
        raise NotImplementedError

    def run(self, body: str, *args: Any) -> Any:
        raise NotImplementedError

    def run_async(self, body: str, *args: Any) -> Any:
        raise NotImplementedError

    def set_viewport(self, width: int, height: int) -> tuple[int, int]:
        """Resize to ``width`` x ``height`` CSS pixels (as near as the engine allows); returns
        the viewport it got."""
        raise NotImplementedError

    def screenshot(self) -> bytes:
        """The viewport as PNG."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def wait_for(self, body: str, *args: Any, timeout: float = 15.0, what: str = "") -> Any:
        """Poll ``body`` until it returns something truthy; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.run(body, *args)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.engine}: timed out after {timeout:.0f} s waiting for {what or body}"
                )
            time.sleep(POLL_S)

    def create_item(self, *args: Any) -> dict:
        """``window.create_item(*args)``: {ok, value} or {ok: false, message}."""
        return self.run_async(
            """try { return {ok: true, value: await window.create_item(...args)}; }
               catch (error) { return {ok: false, message: String(error && error.message)}; }""",
            *args,
        )

    def rendered_ids(self) -> list[str]:
        return self.run(
            "return [...document.querySelectorAll('#messages li.message')]"
            ".map(row => row.dataset.id);"
        )

    def state(self) -> str:
        return self.run("return document.getElementById('status').dataset.state;")


class PlaywrightSession(Session):
    def __init__(self, engine: str, browser: Any, **context: Any) -> None:
        self.engine = engine
        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.page.on("console", lambda message: self.console.append(message.text))

    def goto(self, url: str) -> None:
        self.page.goto(url, wait_until="domcontentloaded")

    def reload(self) -> None:
        self.page.reload(wait_until="domcontentloaded")

    def run(self, body: str, *args: Any) -> Any:
        return self.page.evaluate("(args) => {" + body + "\n}", list(args))

    def run_async(self, body: str, *args: Any) -> Any:
        return self.page.evaluate("async (args) => {" + body + "\n}", list(args))

    def wait_for(self, body: str, *args: Any, timeout: float = 15.0, what: str = "") -> Any:
        try:
            handle = self.page.wait_for_function(
                "(args) => {" + body + "\n}", arg=list(args), timeout=timeout * 1000
            )
        except Exception as error:
            raise AssertionError(
                f"{self.engine}: timed out after {timeout:.0f} s waiting for {what or body}"
            ) from error
        return handle.json_value()

    def set_offline(self, offline: bool) -> None:
        self.context.set_offline(offline)

    def set_viewport(self, width: int, height: int) -> tuple[int, int]:
        self.page.set_viewport_size({"width": width, "height": height})
        return width, height

    def screenshot(self) -> bytes:
        return self.page.screenshot(animations="disabled", caret="hide")

    def close(self) -> None:
        self.context.close()


class WebKitSession(Session):
    engine = "webkit"

    def __init__(self, display: str, dark: bool = False) -> None:
        from selenium import webdriver
        from selenium.webdriver.webkitgtk.options import Options
        from selenium.webdriver.webkitgtk.service import Service

        env = dict(os.environ, DISPLAY=display)
        env.pop("WAYLAND_DISPLAY", None)
        if dark:
            env["GTK_THEME"] = "Adwaita:dark"  # (what prefers-color-scheme follows)
        options = Options()
        options.binary_location = MINIBROWSER
        options.add_argument("--automation")
        service = Service(executable_path=WEBKIT_DRIVER, port=free_port(), env=env)
        self.driver = webdriver.WebKitGTK(options=options, service=service)
        self.driver.set_script_timeout(30)
        self.driver.set_page_load_timeout(30)

    def goto(self, url: str) -> None:
        self.driver.get(url)

    def reload(self) -> None:
        self.driver.refresh()

    def run(self, body: str, *args: Any) -> Any:
        return self.driver.execute_script("const args = Array.from(arguments);\n" + body, *args)

    def run_async(self, body: str, *args: Any) -> Any:
        return self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];\n"
            "const args = Array.from(arguments).slice(0, -1);\n"
            "(async () => {"
            + body
            + "\n})().then(done, (error) => done({__error: String(error)}));",
            *args,
        )

    def set_viewport(self, width: int, height: int) -> tuple[int, int]:
        # The window's toolbar takes part of its height, and the X server resizes the window
        # after set_window_size returns (a CI run once read the old height): resize, wait for
        # the viewport to change, and grow the window by what the toolbar took.
        outer = height
        for _ in range(3):
            inner = self._resize(width, outer)
            if inner == (width, height):
                break
            outer += height - inner[1]
        return inner

    def _resize(self, width: int, height: int) -> tuple[int, int]:
        """The window made ``width`` x ``height``; the viewport once it has changed (or 5 s)."""
        before = self.run("return [innerWidth, innerHeight];")
        size = self.driver.get_window_size()
        if (size["width"], size["height"]) != (width, height):
            self.driver.set_window_size(width, height)
            deadline = time.monotonic() + 5
            while self.run("return [innerWidth, innerHeight];") == before:
                if time.monotonic() >= deadline:
                    break
                time.sleep(POLL_S)
            time.sleep(0.1)  # (a toolbar laid out after the first resize event)
        return tuple(self.run("return [innerWidth, innerHeight];"))

    def screenshot(self) -> bytes:
        return self.driver.get_screenshot_as_png()

    def close(self) -> None:
        self.driver.quit()


class Display:
    """An Xvfb display on a free number, for MiniBrowser; ``stop()`` ends it by pid."""

    def __init__(self, log: Path) -> None:
        self.proc = None
        for number in range(90, 190):
            if Path(f"/tmp/.X{number}-lock").exists() or Path(f"/tmp/.X11-unix/X{number}").exists():
                continue
            argv = [XVFB, f":{number}", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"]
            proc = procs.spawn(argv, env=dict(os.environ), cwd=log.parent, log_file=log)
            if procs.wait_until(
                lambda n=number: Path(f"/tmp/.X11-unix/X{n}").exists(),
                timeout=5,
                alive=lambda p=proc: p.poll() is None,
            ):
                self.proc, self.name = proc, f":{number}"
                return
            procs.stop_pid(proc.pid)  # (another server took the number first)
        raise RuntimeError("no free X display for Xvfb; see " + str(log))

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop_pid(self.proc.pid)
            self.proc = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Engine:
    """One engine for a test module: ``session(dark=False)`` opens a page; ``close()`` ends the
    browser (and the display) it started."""

    def __init__(self, name: str, playwright: Any, tmp: Path, browser: Any = None) -> None:
        self.name = name
        self.playwright = playwright
        self.dark_browser = None
        self.browser = browser  # (a Chromium already running: not closed here)
        self.owned = browser is None
        self.display = None
        if browser is not None:
            pass
        elif name == "chromium":
            self.browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
        elif name == "firefox":
            self.browser = self._firefox()
        else:
            self.display = Display(tmp / "xvfb.log")

    def _firefox(self, prefs: dict | None = None) -> Any:
        return self.playwright.firefox.launch(
            channel="moz-firefox", executable_path=FIREFOX, headless=True, firefox_user_prefs=prefs
        )

    def session(self, dark: bool = False, **context: Any) -> Session:
        if self.name == "firefox" and dark:
            # Over BiDi, Playwright's color_scheme changes nothing in Firefox ESR: a browser of
            # its own whose system theme is dark.
            if self.dark_browser is None:
                self.dark_browser = self._firefox(DARK_FIREFOX)
            return PlaywrightSession(self.name, self.dark_browser, **context)
        if self.browser is not None:
            scheme = {"color_scheme": "dark" if dark else "light"}
            return PlaywrightSession(self.name, self.browser, **scheme, **context)
        return WebKitSession(self.display.name, dark=dark)

    def close(self) -> None:
        if self.browser is not None and self.owned:
            self.browser.close()
        if self.dark_browser is not None:
            self.dark_browser.close()
        if self.display is not None:
            self.display.stop()


def png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(data)).size

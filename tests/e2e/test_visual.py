"""What the user sees: the page with a long list, in Chromium, Firefox and WebKit, at a desktop
and a phone width, in light and dark, compared with the references in tests/visual/.

The page talks to a Directus of this module's (a copy of the stack's database with its messages
emptied, then the same 150 messages created), so every run shows the same rows, two chunks of
them (page/rows.py), scrolled to the 40th row: the first chunk, whose paint containment once
made it paint over the sticky header and compose form, is under both. The rows' times are
hidden (they are the time of the run). A screenshot matches its reference when at most
``MAX_CHANGED`` of its pixels differ by more than ``PIXEL_TOLERANCE`` in a channel (font
antialiasing may move) from the reference's pixel there and the ones above and below it (the
rows move by a pixel with a fractional scroll position). Besides the pixels, the sticky header
and compose form must be what a click at their centre hits, with the list scrolled under them
(the rows were painted over the header once: its z-index was auto and each chunk of rows a
stacking context).

``UPDATE_VISUAL=1`` writes the references instead of comparing (look at them before committing:
an image viewer shows them). A failed comparison leaves the screenshot and a diff image beside
the test's temporary folder, named in the message.
"""

from __future__ import annotations

import io
import os
import sqlite3
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from stack import directus, procs
from stack.api import DirectusAPI
from tests.engines import Engine, missing
from tests.pools import reserve_port

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

REFERENCES = Path(__file__).resolve().parent.parent / "visual"
PORTS = range(8260, 8280)
PIXEL_TOLERANCE = 24  # per channel, of 255
MAX_CHANGED = 0.01  # of the pixels (a shift of one pixel up or down is not a change)
SIZES = {"desktop": (1000, 700), "phone": (390, 700)}
USERS = ["Ben", "Rijk", "Kevin", "Ana", "Lea"]
WORDS = (
    "the realtime guide works in Python too, and each message arrives in a few milliseconds "
    "over one WebSocket while the list keeps its order"
).split()
# The times are hidden, and all made one text first: hidden text still takes its width, and the
# width of "9:05:01 AM" and "12:59:58 PM" moved the rows' text (wrapped one word earlier).
HIDE_TIMES = (
    "for (const t of document.querySelectorAll('.message time')) t.textContent = '00:00:00';"
    "const s = document.createElement('style');"
    "s.textContent = '.message time { visibility: hidden !important; }"
    " * { caret-color: transparent !important; }';"
    "document.head.append(s); return true;"
)


COUNT = 150


def messages(count: int = COUNT) -> list[dict]:
    """The same ``count`` messages every run: names and sentences of several lengths."""
    out = []
    for n in range(count):
        length = 3 + (n * 7) % 17
        text = " ".join(WORDS[(n + k) % len(WORDS)] for k in range(length))
        out.append({"user": USERS[n % len(USERS)], "text": f"{n + 1}. {text.capitalize()}"})
    return out


@pytest.fixture(scope="module")
def visual_directus(stack, tmp_path_factory) -> Iterator[str]:
    """A Directus with exactly ``messages()``; its URL."""
    tmp = tmp_path_factory.mktemp("visual")
    db = directus.copy_of_main_db(tmp)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM messages")
    cors = directus.app_origins(stack["app_port"])
    server = directus.start_directus(
        reserve_port(PORTS), db, {"CORS_ORIGIN": cors}, log_file=tmp / "directus.log"
    )
    try:
        api = DirectusAPI(server.url, stack["token"])
        for item in messages():  # (one by one: their date_created keeps their order)
            api.post("/items/messages", item)
        yield server.url
    finally:
        directus.stop(server)


@pytest.fixture(scope="module", params=["chromium", "firefox", "webkit"])
def engine(request, playwright, browser, tmp_path_factory) -> Iterator[Engine]:
    absent = missing(request.param)
    if absent:
        pytest.fail(f"{request.param} is not installed ({absent}): `make browsers` installs it")
    running = browser if request.param == "chromium" else None
    engine = Engine(
        request.param, playwright, tmp_path_factory.mktemp(request.param), browser=running
    )
    try:
        yield engine
    finally:
        engine.close()


def compare(actual: bytes, name: str, out: Path) -> None:
    reference = REFERENCES / name
    if os.environ.get("UPDATE_VISUAL"):
        REFERENCES.mkdir(exist_ok=True)
        # (a palette of 256 colours: a third of the bytes, within the tolerance)
        image = Image.open(io.BytesIO(actual)).convert("RGB")
        image.quantize(256, dither=Image.Dither.NONE).save(reference, optimize=True)
        return
    assert reference.is_file(), f"no reference {reference}: run with UPDATE_VISUAL=1"
    got = Image.open(io.BytesIO(actual)).convert("RGB")
    want = Image.open(reference).convert("RGB")
    kept = out / name
    got.save(kept)
    assert got.size == want.size, f"{name}: {got.size} instead of {want.size}; see {kept}"
    # A pixel differs when it differs from the reference's pixel there and from the ones just
    # above and below it: a fractional scroll puts the rows a pixel up or down (each row border
    # then differs over the width of the list: 1-1.6 % of the pixels in Firefox).
    diff = ImageChops.difference(got, want)
    for dy in (1, -1):
        diff = ImageChops.darker(diff, ImageChops.difference(got, ImageChops.offset(want, 0, dy)))
    red, green, blue = (c.point(lambda v: 255 if v > PIXEL_TOLERANCE else 0) for c in diff.split())
    changed = ImageChops.lighter(ImageChops.lighter(red, green), blue).histogram()[255]
    share = changed / (got.size[0] * got.size[1])
    if share > MAX_CHANGED:
        diff.point(lambda v: 255 if v > PIXEL_TOLERANCE else 0).save(out / ("diff-" + name))
        raise AssertionError(
            f"{name}: {share:.2%} of the pixels differ (at most {MAX_CHANGED:.2%}); "
            f"see {kept} and {out / ('diff-' + name)}"
        )


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", list(SIZES))
def test_the_page_with_a_long_list_looks_as_it_should(
    engine, visual_directus, stack, size, scheme, tmp_path
):
    page = engine.session(dark=scheme == "dark")
    try:
        width, height = page.set_viewport(*SIZES[size])
        query = urllib.parse.urlencode(
            {"url": visual_directus, "token": stack["token"], "history": COUNT}
        )
        page.goto(stack["app_url"] + "?" + query)
        page.wait_for(
            "return document.body.dataset.history === 'true'"
            " && document.querySelectorAll('#messages li.message').length === args[0]"
            " && document.getElementById('status').dataset.state === 'connected';",
            COUNT,
            timeout=60,
            what="all the messages, connected",
        )
        assert page.run("return matchMedia('(prefers-color-scheme: dark)').matches;") == (
            scheme == "dark"
        )
        page.run(HIDE_TIMES)
        # The page follows the newest row at the next animation frame after a batch: scroll to
        # the 40th row until that has happened and the row stays in view.
        for _ in range(10):
            page.run("document.querySelectorAll('#messages li.message')[39].scrollIntoView();")
            procs.wait_until(lambda: False, timeout=0.3)  # (a frame or two for the last paint)
            top = page.run(
                "return document.querySelectorAll('#messages li.message')[39]"
                ".getBoundingClientRect().top;"
            )
            if 0 <= top < height / 2:
                break
        chunks = page.run("return document.querySelectorAll('#messages .chunk').length;")
        assert chunks == 2, f"{chunks} chunks of rows"

        # The sticky bars are above the rows scrolled under them.
        hits = page.run(
            """const at = (el) => { const r = el.getBoundingClientRect();
                 return document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2); };
               return [!!at(document.querySelector('.bar')).closest('.bar'),
                       !!at(document.querySelector('#compose')).closest('#compose'),
                       scrollY > 0];"""
        )
        assert hits == [True, True, True], f"header hit, compose hit, scrolled: {hits}"

        compare(page.screenshot(), f"{engine.name}-{size}-{scheme}.png", tmp_path)
        assert [width, height] == page.run("return [innerWidth, innerHeight];")
    finally:
        page.close()

"""page/rows.py's ``MessageList`` over a small fake DOM: where rows go, and how often the
list's layout is read (each read after an insertion makes the browser lay the list out)."""

from page.rows import CHUNK_ROWS, MessageList


class Data:
    pass


class Style:
    pass


class JSMethod:
    def bind(self, *args):
        return lambda: None


class Node:
    def __init__(self, document, tag: str) -> None:
        self.scrollIntoView = JSMethod()
        self.document = document
        self.tag = tag
        self.children = []
        self.parentElement = None
        self.dataset = Data()
        self.style = Style()
        self.className = ""
        self.attributes = {}
        self.textContent = ""
        self.dateTime = ""

    # (the calls MessageList makes)
    def setAttribute(self, name, value) -> None:
        self.attributes[name] = value

    def cloneNode(self, deep: bool):
        copy = Node(self.document, self.tag)
        copy.className = self.className
        copy.attributes = dict(self.attributes)
        if deep:
            for child in self.children:
                copy.append(child.cloneNode(True))
        return copy

    def append(self, node) -> None:
        node.parentElement = self
        self.children.append(node)

    def prepend(self, node) -> None:
        node.parentElement = self
        self.children.insert(0, node)

    def after(self, node) -> None:
        siblings = self.parentElement.children
        node.parentElement = self.parentElement
        siblings.insert(siblings.index(self) + 1, node)

    def _sibling(self, step: int):
        if self.parentElement is None:
            return None
        siblings = self.parentElement.children
        at = siblings.index(self) + step
        return siblings[at] if 0 <= at < len(siblings) else None

    @property
    def firstChild(self):
        return self.children[0] if self.children else None

    @property
    def lastChild(self):
        return self.children[-1] if self.children else None

    firstElementChild = firstChild
    lastElementChild = lastChild

    @property
    def nextSibling(self):
        return self._sibling(1)

    @property
    def previousElementSibling(self):
        return self._sibling(-1)

    @property
    def childElementCount(self) -> int:
        return len(self.children)

    def getBoundingClientRect(self):
        self.document.layout_reads += 1
        return type("Rect", (), {"bottom": 0})()


class Document:
    def __init__(self) -> None:
        self.layout_reads = 0
        self.messages = Node(self, "div")

    def getElementById(self, name):
        assert name == "messages"
        return self.messages

    def createElement(self, tag):
        return Node(self, tag)


class Window:
    innerHeight = 800

    def __init__(self) -> None:
        self.performance = type("Performance", (), {"now": staticmethod(lambda: 0.0)})()
        formatter = type("Format", (), {"format": staticmethod(lambda date: "12:00:00")})()
        self.Intl = type("Intl", (), {})()
        self.Intl.DateTimeFormat = type("DTF", (), {"new": staticmethod(lambda *a: formatter)})
        self.Date = type("Date", (), {"new": staticmethod(lambda text: text)})
        self.frames = []

    def requestAnimationFrame(self, callback) -> int:
        self.frames.append(callback)
        return len(self.frames)

    def cancelAnimationFrame(self, frame) -> None:
        pass


def message(n: int, stored: bool = True) -> dict:
    item = {"id": "id-%d" % n, "user": "u", "text": "t%d" % n}
    if stored:
        item["date_created"] = "2026-12-06T00:%02d:%02d.000Z" % divmod(n, 60)
    return item


def make():
    document = Document()
    rows = MessageList(document, Window(), lambda value: value, None)
    return document, rows


def shown_ids(document) -> list:
    return [row.dataset.id for chunk in document.messages.children for row in chunk.children]


def test_a_batch_reads_the_layout_once_and_shows_its_rows_in_date_order():
    document, rows = make()
    rows.show_each([message(3), message(2), message(1)])  # (newest first, as Directus sends)
    assert document.layout_reads == 1
    assert shown_ids(document) == ["id-1", "id-2", "id-3"]
    assert len(document.messages.children) == 1  # one chunk, put in with one call


def test_a_batch_of_more_than_a_chunk_goes_in_as_several_chunks():
    document, rows = make()
    rows.show_each([message(n) for n in range(CHUNK_ROWS + 5)])
    assert document.layout_reads == 1
    assert [len(chunk.children) for chunk in document.messages.children] == [CHUNK_ROWS, 5]


def test_a_batch_among_shown_rows_puts_each_in_its_place_with_one_layout_read():
    document, rows = make()
    rows.show_each([message(1), message(5)])
    rows.show_each([message(3), message(2), message(5), message(9, stored=False)])
    assert document.layout_reads == 2  # once per batch, not once per row
    # stored rows in date order, a pending write (no date_created yet) with the newest
    assert shown_ids(document) == ["id-1", "id-2", "id-3", "id-5", "id-9"]


def test_one_row_still_reads_the_layout_itself():
    document, rows = make()
    rows.show(message(1))
    rows.show(message(2))
    assert document.layout_reads == 2
    assert shown_ids(document) == ["id-1", "id-2"]

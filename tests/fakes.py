"""Stand-ins for what the page's pure modules take as inputs (page/outbox.py, page/logs.py):
values and recorders, no browser."""


class Timer:
    """A one-shot timer as page/browser.py's ``Timer``: records ``start``/``cancel``; ``fire()``
    runs the callback as the browser would when it is due."""

    def __init__(self, callback) -> None:
        self.callback = callback
        self.calls = []  # ("start", ms) and ("cancel",)

    def start(self, ms) -> None:
        self.calls.append(("start", ms))

    def cancel(self) -> None:
        self.calls.append(("cancel",))

    def fire(self) -> None:
        self.callback()

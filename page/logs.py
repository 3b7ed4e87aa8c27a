"""The guide's console lines, handed to the console right after the row they are about.

A console line costs a fraction of a millisecond with DevTools open, and a new message writes
three before its row is shown: they wait in ``ConsoleLines`` until the message is handled
(``flush()``, called after the row), or until a timer for messages that show no row.
``hand_over(value)`` gives one value to the console (a microtask in the browser, so logging
never delays the row); ``timer(callback)`` makes a one-shot timer with ``start(ms)`` and
``cancel()``. Tested in CPython.
"""


class ConsoleLines:
    def __init__(self, hand_over, timer) -> None:
        self.hand_over = hand_over
        self.lines = []  # what log() was given and the console has not been handed yet
        self.timer = timer(self.flush)

    def log(self, value) -> None:
        self.lines.append(value)
        if len(self.lines) == 1:
            self.timer.start(0)

    def flush(self) -> None:
        if not self.lines:
            return
        self.timer.cancel()
        batch, self.lines = self.lines, []
        for value in batch:
            self.hand_over(value)

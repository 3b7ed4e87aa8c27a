"""The live query's last rows in ``localStorage``, so that a reload with no network shows what
the page last showed (marked as not current) instead of an empty list.

One snapshot per Directus URL (the rows of one Directus never show as another's). The library
makes the snapshot (the query's rows and its marks) and calls ``save`` after changes; this
store writes behind, at most once per ``SAVE_DELAY_MS``, and at once on ``flush`` (the page
going away or offline). It keeps the first ``MAX_ROWS`` rows of the window: ``localStorage``
holds a few megabytes per site, shared with the writes waiting to be sent, and a window of
10,000 messages is 1.6 MB of JSON. A snapshot that holds one of ``secrets`` (the token, the
password) is never written: storage must not keep a credential, whatever the library put into
it.
Storage, the timer and the console are inputs: tested in CPython.
"""

import json

PREFIX = "directus-realtime:snapshot:"  # + the Directus URL
SAVE_DELAY_MS = 1000
MAX_ROWS = 1000  # about 160 kB of messages
# Rows the write-behind serialises per browser task: all at once was a long task on MicroPython
# with a long window held (its allocations make it collect the whole heap again and again).
SLICE_ROWS = 200


class SnapshotStore:
    def __init__(self, storage, url: str, timer, warn, secrets=()) -> None:
        self.storage = storage
        self.key = PREFIX + url
        self.warn = warn
        self.secrets = [secret for secret in secrets if secret]
        self.latest = None  # the snapshot not written yet
        self.parts = []  # its rows serialised so far by the write-behind
        self.timer = timer(self.write_some)
        self.armed = False

    def load(self):
        """The snapshot saved last (a dict), or None."""
        try:
            raw = self.storage.getItem(self.key) if self.storage else None
        except Exception:
            return None
        if not isinstance(raw, str) or not raw:
            return None
        try:
            snapshot = json.loads(raw)
        except Exception:  # not only ValueError: deep nesting raises RecursionError
            snapshot = None
        if not isinstance(snapshot, dict):
            self.warn("A saved list of messages of the wrong shape was dropped.")
            self.remove()
            return None
        return snapshot

    def save(self, snapshot: dict) -> None:
        self.latest = snapshot
        self.parts = []
        if not self.armed:
            self.armed = True
            self.timer.start(SAVE_DELAY_MS)

    def write_some(self) -> None:
        """The write-behind: ``SLICE_ROWS`` rows serialised per task, then the snapshot
        written."""
        self.armed = False
        rows = self.latest.get("rows") if isinstance(self.latest, dict) else None
        if isinstance(rows, list) and self.storage:
            done, last = len(self.parts), min(len(rows), MAX_ROWS)
            self.parts.extend([json.dumps(row) for row in rows[done : done + SLICE_ROWS]])
            if done + SLICE_ROWS < last:
                self.armed = True
                self.timer.start(0)
                return
        self.flush()

    def flush(self) -> None:
        self.armed = False
        parts, self.parts = self.parts, []
        if self.latest is None or not self.storage:
            return
        snapshot, self.latest = self.latest, None
        try:
            raw = dumps(snapshot, parts)
        except Exception as error:
            self.warn("The list of messages could not be saved: " + str(error))
            return
        if any(secret in raw for secret in self.secrets):
            self.warn("The list of messages was not saved: it held a credential.")
            return
        try:
            self.storage.setItem(self.key, raw)
        except Exception as error:  # full, or refused
            self.warn("The list of messages could not be saved for a reload: " + str(error))

    def remove(self) -> None:
        try:
            self.storage.removeItem(self.key)
        except Exception:
            pass


def dumps(snapshot: dict, done=()) -> str:
    """``snapshot`` as JSON, its rows cut at ``MAX_ROWS`` and written one by one: MicroPython's
    ``json.dumps`` takes time that grows with the square of its output, one row's output
    does not. ``done``: its first rows already serialised."""
    rows = snapshot.get("rows")
    if not isinstance(rows, list):
        return json.dumps(snapshot)
    rest = dict(snapshot)
    rest.pop("rows")
    head = json.dumps(rest)
    parts = list(done)[:MAX_ROWS]
    parts.extend([json.dumps(row) for row in rows[len(parts) : MAX_ROWS]])
    body = ",".join(parts)
    if head == "{}":
        return '{"rows": [' + body + "]}"
    return head[:-1] + ', "rows": [' + body + "]}"

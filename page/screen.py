"""What the page says: the status line, the problem screen, the delivery note, the line about
writes waiting, and the Settings panel's form. The texts are plain data (``STATUS_TEXT``,
``PROBLEMS``, ``problem_text``), tested in CPython; ``Screen`` puts them into the DOM
(``document`` is an input).
"""

STATUS_TEXT = {
    "connecting": "Connecting…",
    "connected": "Connected",
    "reconnecting": "Reconnecting…",
    "offline": "Offline: waiting for the network",
    "error": "Error",
}

PROBLEMS = {
    "settings": (
        "No Directus to talk to",
        "Open Settings and enter your Directus URL and a static token (or email and password).",
    ),
    "bad-url": (
        "That Directus URL cannot work",
        "{reason} Open Settings and enter the URL of your Directus project.",
    ),
    "unreachable": (
        "Directus does not answer at {url}",
        "Check that it is running and that the URL in Settings is right. "
        "The page keeps trying and connects as soon as it answers.",
    ),
    "realtime-off": (
        "Directus answers at {url}, but not over WebSocket",
        "Realtime is off, or this page's origin is not allowed. On the Directus server set "
        "WEBSOCKETS_ENABLED=true, and CORS_ENABLED=true with CORS_ORIGIN including {origin}. "
        "The page keeps trying.",
    ),
    "auth": (
        "Directus refused the sign-in",
        "{reason} Check the token (or email and password) in Settings; the user needs a "
        "policy that can read messages.",
    ),
    "gave-up": ("The page stopped trying to connect", "{reason} Reload the page to try again."),
}


def status_text(state: str, detail: str = "") -> str:
    return STATUS_TEXT[state] + (": " + detail if detail else "")


def problem_text(kind: str, url: str, origin: str, reason: str = "") -> tuple:
    """(title, what to do) of the problem screen ``kind``."""
    title, todo = PROBLEMS[kind]
    fields = {"url": url, "origin": origin, "reason": reason.rstrip(".") + "." if reason else ""}
    return title.format(**fields), todo.format(**fields)


def delivery_text(exactly_once: bool) -> str:
    if exactly_once:
        return "Each message is stored exactly once, even when sent again after a lost reply."
    return (
        "This Directus numbers messages itself, so the page cannot choose their ids: a "
        "message sent again after a lost reply may be stored twice (at-least-once delivery)."
    )


class Screen:
    def __init__(self, document, origin: str) -> None:
        self.document = document
        self.origin = origin
        self.url = ""  # the Directus the problem texts name
        self.waiting_text = ""  # what #waiting says (hidden when empty)
        self.status_line = document.getElementById("status")

    def status(self, state: str, detail: str = "") -> None:
        self.status_line.dataset.state = state
        self.status_line.textContent = status_text(state, detail)

    def problem(self, kind, reason: str = "") -> None:
        """The problem screen: what happened and what to do; None hides it."""
        panel = self.document.getElementById("problem")
        if kind is None:
            panel.hidden = True
            panel.dataset.kind = ""
            return
        title, todo = problem_text(kind, self.url, self.origin, reason)
        panel.querySelector("h2").textContent = title
        panel.querySelector("p").textContent = todo
        panel.dataset.kind = kind
        panel.hidden = False
        if kind in ("settings", "bad-url", "auth"):
            self.document.getElementById("settings").open = True

    def delivery(self, exactly_once: bool) -> None:
        note = self.document.getElementById("delivery")
        note.dataset.guarantee = "exactly-once" if exactly_once else "at-least-once"
        note.textContent = delivery_text(exactly_once)
        note.hidden = exactly_once

    def waiting(self, text: str) -> None:
        """The line under the compose form about writes that wait ("" hides it)."""
        if text == self.waiting_text:
            return  # (called after every answer: the DOM is touched only on a change)
        self.waiting_text = text
        note = self.document.getElementById("waiting")
        note.textContent = text
        note.hidden = not text

    def compose_error(self, text: str) -> None:
        self.document.querySelector("#compose .error").textContent = text

    def show_settings(self, values: dict, remembered: bool) -> None:
        form = self.document.getElementById("settings-form").elements
        form.url.value = values.get("url") or ""
        form.email.value = values.get("email") or ""
        if values.get("email") and not values.get("token"):
            form.method.value = "login"
        form.remember.checked = remembered

    def settings_form(self, form) -> dict:
        """The Settings form's values, as ``page.settings.from_form`` takes them."""
        fields = form.elements
        return {
            "url": fields.url.value,
            "method": fields.method.value,
            "token": fields.token.value,
            "email": fields.email.value,
            "password": fields.password.value,
            "remember": bool(fields.remember.checked),
        }

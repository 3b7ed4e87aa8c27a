"""How every Playwright user here (tests, benchmark, screenshots) launches Chromium.

Debian's chromium (``make test`` installs it); ``playwright install`` cannot download browsers
on this network. The flags keep it from reaching for Google's services, which a closed network
refuses many times a second.
"""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]

"""``make bench`` (``python -m bench``): our PyScript page side by side with the guide's JS page.

Both pages run in Debian's Chromium (Playwright, headless, one browser), against the local
stack's Directus, taking turns (ABBA...) so that drift on the machine hits both alike:

- start-up: navigation to ``body[data-subscribed]`` (the create subscription's init arrived),
  cold cache (a fresh browser context) and warm cache (a second navigation in it);
- create-to-render latency: in the page, from ``create_item(text, user)`` to the row in
  ``#messages`` (a MutationObserver), 200 sequential messages;
- a 10,000-message history (``?history=10000``): navigation to ``body[data-history]``, the
  longest main-thread task (``longtask`` entries), then the JS heap (CDP, after a GC) and the
  wasm memory.

Every time is ``performance.now()`` in the page (navigation-relative), recorded by
``bench/instrument.js`` (an init script). The guide's page is ``bench/reference/``. The result
is printed as Markdown tables and written into bench/README.md (bench/report.py), with a line
of its run history; README.md gets the headline figures.
"""

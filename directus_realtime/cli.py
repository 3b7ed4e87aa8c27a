"""A terminal client on the same core as the page: ``directus-realtime`` (``pip install .``),
or ``python -m directus_realtime.cli`` from a checkout. See ``EPILOG`` for its use.
"""

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from . import RealtimeClient

DESCRIPTION = "Follow and write a Directus collection over its realtime WebSocket."
EPILOG = """examples:
  directus-realtime tail messages              print every event as JSON lines
  directus-realtime tail messages --limit 5    stop after 5 events
  directus-realtime create messages '{"text": "Hi", "user": "Ben"}'

The URL and token come from --url / --token, else DIRECTUS_URL / DIRECTUS_TOKEN,
else the local stack's var/stack.json.
"""


def _defaults() -> tuple[str | None, str | None]:
    stack = Path(__file__).resolve().parent.parent / "var" / "stack.json"
    url, token = os.environ.get("DIRECTUS_URL"), os.environ.get("DIRECTUS_TOKEN")
    if (not url or not token) and stack.exists():
        info = json.loads(stack.read_text())
        url, token = url or info.get("directus_url"), token or info.get("token")
    return url, token


async def tail(client: RealtimeClient, collection: str, event: str | None, limit: int) -> int:
    client.on_state(lambda state, c: print("# " + state, file=sys.stderr, flush=True))
    subscription = await client.subscribe(collection, event=event, query={"fields": ["*"]})
    await client.connect()
    seen = 0
    async for message in subscription:
        print(json.dumps(message), flush=True)
        if message.get("event") != "init":
            seen += 1
        if limit and seen >= limit:
            subscription.unsubscribe()
    client.disconnect()
    return 0


async def create(client: RealtimeClient, collection: str, data: str) -> int:
    await client.connect()
    print(json.dumps(await client.create(collection, json.loads(data))))
    client.disconnect()
    return 0


def main(argv: list[str] | None = None) -> int:
    url, token = _defaults()
    parser = argparse.ArgumentParser(
        prog="directus-realtime",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", default=url, help="Directus URL (default: %(default)s)")
    parser.add_argument("--token", default=token, help="static or access token")
    commands = parser.add_subparsers(dest="command", required=True)
    tail_cmd = commands.add_parser("tail", help="print a collection's events as JSON lines")
    tail_cmd.add_argument("collection")
    tail_cmd.add_argument("--event", choices=["create", "update", "delete"], default=None)
    tail_cmd.add_argument("--limit", type=int, default=0, help="stop after N events")
    create_cmd = commands.add_parser("create", help="create an item over the socket")
    create_cmd.add_argument("collection")
    create_cmd.add_argument("data", help="the item as JSON")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("no Directus URL: pass --url, set DIRECTUS_URL, or run `make up`")
    client = RealtimeClient(args.url, access_token=args.token)
    try:
        if args.command == "tail":
            return asyncio.run(tail(client, args.collection, args.event, args.limit))
        return asyncio.run(create(client, args.collection, args.data))
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        print("error: " + str(error), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

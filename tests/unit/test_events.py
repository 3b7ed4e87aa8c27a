"""What the core hands its driver: actions and reports, shown by ``repr``, each carried out by
one entry of the client's dispatch table; debug logging shows them when asked for."""

import asyncio
import logging

from directus_realtime import events, protocol
from directus_realtime.client import _HANDLERS, RealtimeClient
from directus_realtime.window import Change
from tests.unit.test_client import FakeTransport, run


def test_events_are_actions_or_reports_with_a_repr():
    assert repr(protocol.SendText('{"type":"ping"}')) == 'SendText(text=\'{"type":"ping"}\')'
    assert repr(protocol.RequestDone(3, {"data": 1})) == "RequestDone(key=3, reply={'data': 1})"
    assert isinstance(protocol.OpenSocket("ws://x"), events.Action)
    assert isinstance(protocol.StateChanged("open", "authenticating"), events.Report)
    assert protocol.Closed(1005) == protocol.Closed(1005) != protocol.Closed(1006)


def test_every_event_class_has_one_handler_in_the_client():
    kinds = {
        c
        for c in vars(events).values()
        if isinstance(c, type) and issubclass(c, (events.Action, events.Report))
    } - {events.Action, events.Report}
    assert set(_HANDLERS) == kinds
    assert all(callable(getattr(RealtimeClient, name)) for name in _HANDLERS.values())


def test_debug_logging_shows_each_event(caplog):
    async def scenario():
        client = RealtimeClient("http://d.test", access_token="T", transport=FakeTransport())
        with caplog.at_level(logging.DEBUG, logger="directus_realtime"):
            client.connect()
            await asyncio.sleep(0)
        client.disconnect()

    run(scenario())
    logged = [r.getMessage() for r in caplog.records if r.name == "directus_realtime"]
    assert any(line.startswith("StateChanged(") for line in logged)
    assert any(line.startswith("OpenSocket(url='ws://d.test/websocket')") for line in logged)


def test_a_change_says_what_it_holds():
    change = Change("check", [{"id": 1}], [], ["2"], True)
    assert repr(change) == "Change(check: +1 ~0 -1, current)"

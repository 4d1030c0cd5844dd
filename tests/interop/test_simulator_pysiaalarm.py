"""What the panel simulator puts on the wire, read by pysiaalarm, an independent DC-09 receiver.

The frames are captured by a small TCP receiver in the test that records the raw bytes and answers
with our encoder's ACK. pysiaalarm uses the ASCII bytes of its key string as the AES key, so the
encrypted panels here get printable keys.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from pysiaalarm.account import SIAAccount
from pysiaalarm.event import SIAEvent
from pysiaalarm.utils.enums import ResponseType

from safecity.receivers.dc09_codec import Dc09Decoder, Dc09Message, encode_ack
from safecity.simulate.panels import CONTACT_ID_EQUIVALENT, PanelAccount, PanelEvent, PanelSimulator, demo_accounts

KEY_TEXT = "ABCDEF0123456789"
_TEMPLATE = demo_accounts(1)[0]
PANELS = [  # one panel per protocol and encryption
    replace(_TEMPLATE, number=number, protocol=protocol, key=KEY_TEXT.encode("ascii") if encrypted else None)
    for number, protocol, encrypted in (
        ("1A01", "SIA-DCS", False), ("1A02", "SIA-DCS", True), ("1A03", "ADM-CID", False), ("1A04", "ADM-CID", True),
    )
]
THEIRS = {p.number: SIAAccount(p.number, KEY_TEXT if p.key else None) for p in PANELS}
REPORTS = [PanelEvent("PA", "015"), PanelEvent("BA", "003"), PanelEvent("OP", "002"), PanelEvent("FR", "011"),
           PanelEvent("AT"), PanelEvent("RP"), None]  # None: a link test


class Capture:
    """A receiver that keeps every frame as it arrived and ACKs it with our encoder."""

    def __init__(self, panels: list[PanelAccount]) -> None:
        self.keys = {p.number: p.dc09_account() for p in panels}
        self.raw: dict[tuple[str, int], bytes] = {}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = Dc09Decoder(self.keys.get)
        try:
            while data := await reader.read(4096):
                decoder.feed(data)
                for frame in decoder.frames():
                    assert isinstance(frame, Dc09Message), frame
                    self.raw[(frame.account_id or "", frame.sequence)] = frame.raw
                    key = self.keys[frame.account_id or ""].key
                    writer.write(encode_ack(frame, now=datetime.now(UTC), key=key))
        finally:
            writer.close()


@pytest.fixture
async def captured() -> tuple[PanelSimulator, Capture]:
    capture = Capture(PANELS)
    server = await asyncio.start_server(capture.serve, "127.0.0.1", 0)
    sim = PanelSimulator("127.0.0.1", server.sockets[0].getsockname()[1], PANELS, rate_per_s=0,
                         link_test_interval_s=0, connections=2, ack_timeout_s=2, seed=3)
    for panel in PANELS:
        for report in REPORTS:
            sim.enqueue(panel.number, report)
    await sim.start()
    try:
        assert await sim.drain(10), sim.stats.summary()
    finally:
        await sim.close()
        server.close()
        await server.wait_closed()
    return sim, capture


def test_pysiaalarm_reads_every_simulated_frame_as_the_simulator_meant_it(
    captured: tuple[PanelSimulator, Capture],
) -> None:
    sim, capture = captured
    assert len(sim.acked) == len(PANELS) * len(REPORTS) == len(capture.raw)
    seen = set()
    for record in sim.acked:
        raw = capture.raw[(record.account, record.sequence)]
        event = SIAEvent.from_line(raw.decode("ascii").strip(), THEIRS)
        seen.add((event.message_type.value, event.encrypted))
        assert event.valid_message  # its CRC agrees with ours
        assert event.response is ResponseType.ACK  # its timestamp check too
        assert (event.account, event.sequence) == (record.account, f"{record.sequence:04d}")
        assert event.encrypted == record.encrypted
        if record.event is None:
            assert event.message_type.value == "NULL" and event.code == "RP"
        elif record.protocol_id == "SIA-DCS":
            assert (event.code, event.message, event.ri) == (record.event.code, record.event.number, "1")
        else:
            qualifier, code = CONTACT_ID_EQUIVALENT[record.event.code]
            assert (event.event_qualifier, event.event_type) == (str(int(qualifier)), code)
            assert (event.ri, event.partition) == (record.event.number or "000", "01")
    assert seen == {(kind, encrypted) for kind in ("SIA-DCS", "ADM-CID", "NULL") for encrypted in (False, True)}

"""The SIA DC-03 event block as DC-09 ``SIA-DCS`` messages carry it: ``#1234|Nri1/BA01/BA02``.

After the optional ``#account|`` comes ``N`` (new event), then ``/``-separated items: lower-case
modifiers that stay in force for the items after them (``ri`` area, ``id`` user, ``ti`` time, ``pi``…),
and upper-case two-letter event codes each followed by its zone or other number, optionally named
between carets (``CL0^FRONT DOOR^``). A bare number repeats the previous code for another zone.
Panels differ in the details (``Npi0/AT``, ``36214|NRP``, ``Nri1CL0``), so the reading is lenient in
form and strict in vocabulary: anything it cannot place is an error, which the receiver answers with DUH.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from safecity.receivers.sia_codes import SIA_CODES, SiaCode


class SiaDataError(ValueError):
    """A SIA-DCS data block that cannot be read."""


@dataclass(frozen=True, slots=True)
class SiaEvent:
    """One event of a SIA block; `zone` is the number after the code (zone, user, area… by code)."""

    code: str
    zone: str | None = None
    area: str | None = None
    user: str | None = None
    time: str | None = None
    zone_name: str | None = None
    modifiers: tuple[tuple[str, str], ...] = ()  # every modifier in force, ri/id/ti included
    new_event: bool = True

    @property
    def definition(self) -> SiaCode | None:
        return SIA_CODES.get(self.code)


@dataclass(frozen=True, slots=True)
class SiaReport:
    account: str | None
    events: tuple[SiaEvent, ...]
    text: str | None = None


_ACCOUNT_PREFIX = re.compile(r"#?([0-9A-Fa-f]*)\|")
_TOKEN = re.compile(
    r"(?P<separator>/)"
    r"|(?P<modifier>[a-z]{2})(?P<modifier_value>[0-9:.\-]*)(?:\^[^^]*\^)?"
    r"|(?P<code>[A-Z]{2})(?P<zone>[0-9]*)(?:\^(?P<zone_name>[^^]*)\^)?"
    r"|(?P<number>[0-9]+)(?:\^(?P<number_name>[^^]*)\^)?"
    r"|\|A(?P<text>.*)"  # trailing ASCII text
    r'|\*"(?P<xtext>[^"]*)"NM'  # the extended-SIA text form
)


def _parse_items(body: str, new_event: bool) -> tuple[tuple[SiaEvent, ...], str | None]:
    events: list[SiaEvent] = []
    modifiers: dict[str, str] = {}
    text: str | None = None
    position = 0
    while position < len(body):
        token = _TOKEN.match(body, position)
        if token is None or token.end() == position:
            raise SiaDataError(f"cannot read SIA data at {body[position:position + 12]!r}")
        position = token.end()
        if token["modifier"]:
            modifiers[token["modifier"]] = token["modifier_value"]
        elif token["code"] or token["number"]:
            if token["code"]:
                code, zone, name = token["code"], token["zone"], token["zone_name"]
            elif events:
                code, zone, name = events[-1].code, token["number"], token["number_name"]
            else:
                raise SiaDataError("a zone number before any event code")
            events.append(
                SiaEvent(
                    code=code,
                    zone=zone or None,
                    area=modifiers.get("ri"),
                    user=modifiers.get("id"),
                    time=modifiers.get("ti"),
                    zone_name=name,
                    modifiers=tuple(modifiers.items()),
                    new_event=new_event,
                )
            )
        elif token["text"] is not None or token["xtext"] is not None:
            text = token["text"] if token["text"] is not None else token["xtext"]
    return tuple(events), text


def parse_sia_data(data: str) -> SiaReport:
    """Read a SIA-DCS data block; raises `SiaDataError`. An empty block gives no events."""
    prefix = _ACCOUNT_PREFIX.match(data)
    account = (prefix[1].upper() or None) if prefix else None
    body = data[prefix.end() :] if prefix else data
    if body[:1] in ("N", "O"):
        # "N"/"O" flags a new/old event block, unless it is the first letter of a code ("NL1", "OP2").
        try:
            events, text = _parse_items(body[1:], new_event=body[0] == "N")
        except SiaDataError:
            pass
        else:
            return SiaReport(account, events, text)
    events, text = _parse_items(body, new_event=True)
    return SiaReport(account, events, text)


def format_sia_data(account: str | None, events: Sequence[SiaEvent], text: str | None = None) -> str:
    """Write a SIA-DCS data block, emitting a modifier only when it changes (``ti``, ``id``, ``ri``)."""
    items: list[str] = []
    in_force: dict[str, str | None] = {}
    for event in events:
        for name, value in (("ti", event.time), ("id", event.user), ("ri", event.area)):
            if value is not None and in_force.get(name) != value:
                items.append(f"{name}{value}")
                in_force[name] = value
        name_part = f"^{event.zone_name}^" if event.zone_name else ""
        items.append(f"{event.code}{event.zone or ''}{name_part}")
    block = ("N" if events else "") + "/".join(items)
    if text is not None:
        block += f"|A{text}"
    return block if account is None else f"#{account}|{block}"

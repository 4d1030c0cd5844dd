"""Pure rules of the alarm queue: episodes, operator work states, link-test supervision.

No I/O and no clock reads: callers pass `now`. The service applies these decisions to the store
and the event log; tests drive them directly and with hypothesis.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from safecity.alarms.taxonomy import Priority


class AlarmError(Exception):
    """Base of the alarm domain's errors."""


class AlarmStateError(AlarmError):
    """The command does not fit the alarm's current state or owner."""


class AlarmStatus(StrEnum):
    NEW = "new"  # in the queue, nobody works it
    CLAIMED = "claimed"  # one operator works it (acknowledged)
    CLOSED = "closed"


class Resolution(StrEnum):
    REAL_ALARM = "real_alarm"
    DISPATCHED = "dispatched"
    FALSE_ALARM = "false_alarm"
    USER_ERROR = "user_error"
    TECHNICAL_FAULT = "technical_fault"
    TEST = "test"
    CANCELLED_BY_KEYHOLDER = "cancelled_by_keyholder"
    DUPLICATE = "duplicate"


class ActionKind(StrEnum):
    CALLED_KEYHOLDER = "called_keyholder"
    CALLED_OBJECT = "called_object"
    DISPATCHED_UNIT = "dispatched_unit"
    NOTIFIED_POLICE = "notified_police"
    NOTIFIED_FIRE_SERVICE = "notified_fire_service"
    VIDEO_VERIFIED = "video_verified"
    NOTE = "note"


# A queue item's rank: the most urgent signal of the episode decides.
QUEUE_PRIORITIES = frozenset({Priority.LIFE_SAFETY, Priority.PROPERTY, Priority.TROUBLE})


@dataclass(frozen=True, slots=True)
class Signal:
    """One decoded event of an account, as the queue sees it."""

    event_id: str
    account: str
    code: str
    zone: str | None
    category: str
    priority: Priority
    is_restore: bool
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Episode:
    """An alarm in the queue: the signals of one account that arrived close together."""

    id: str
    account: str
    priority: Priority
    status: AlarmStatus
    opened_at: datetime
    last_signal_at: datetime
    first_code: str
    first_zone: str | None
    category: str
    signal_count: int = 1
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    closed_at: datetime | None = None
    resolution: Resolution | None = None
    incident_requested: bool = False


class SignalDecision(StrEnum):
    OPEN_EPISODE = "open_episode"
    JOIN_EPISODE = "join_episode"
    RECORD_ONLY = "record_only"  # restores, open/close, tests: history, not the queue


def decide_signal(signal: Signal, open_episode: Episode | None, window: timedelta) -> SignalDecision:
    """Where a new signal goes: a new alarm, the account's open alarm, or only the history.

    A signal joins the open episode while it is still open and the last signal came less than
    `window` ago, so a panel reporting zone after zone raises one alarm, not twenty.
    """
    if (
        open_episode is not None
        and open_episode.status != AlarmStatus.CLOSED
        and signal.received_at - open_episode.last_signal_at <= window
    ):
        return SignalDecision.JOIN_EPISODE
    if signal.is_restore or signal.priority not in QUEUE_PRIORITIES:
        return SignalDecision.JOIN_EPISODE if _joinable(signal, open_episode) else SignalDecision.RECORD_ONLY
    return SignalDecision.OPEN_EPISODE


def _joinable(signal: Signal, episode: Episode | None) -> bool:
    return episode is not None and episode.status != AlarmStatus.CLOSED and signal.account == episode.account


def open_episode(episode_id: str, signal: Signal) -> Episode:
    return Episode(
        id=episode_id,
        account=signal.account,
        priority=signal.priority,
        status=AlarmStatus.NEW,
        opened_at=signal.received_at,
        last_signal_at=signal.received_at,
        first_code=signal.code,
        first_zone=signal.zone,
        category=signal.category,
    )


def join_episode(episode: Episode, signal: Signal) -> Episode:
    """Add a signal; a more urgent one raises the episode's priority (never lowers it)."""
    more_urgent = not signal.is_restore and signal.priority < episode.priority
    return replace(
        episode,
        priority=signal.priority if more_urgent else episode.priority,
        category=signal.category if more_urgent else episode.category,
        last_signal_at=max(episode.last_signal_at, signal.received_at),
        signal_count=episode.signal_count + 1,
    )


def claim(episode: Episode, operator: str, now: datetime, *, take_over: bool = False) -> Episode:
    """An operator takes the alarm; nobody else may work it until released or closed.

    `take_over` (a supervisor's right) moves a claimed alarm to another operator.
    """
    if episode.status == AlarmStatus.CLOSED:
        raise AlarmStateError(f"alarm {episode.id} is closed")
    if episode.status == AlarmStatus.CLAIMED and episode.claimed_by != operator and not take_over:
        raise AlarmStateError(f"alarm {episode.id} is worked by {episode.claimed_by}")
    return replace(episode, status=AlarmStatus.CLAIMED, claimed_by=operator, claimed_at=now)


def release(episode: Episode, operator: str) -> Episode:
    _require_owner(episode, operator)
    return replace(episode, status=AlarmStatus.NEW, claimed_by=None, claimed_at=None)


def require_owner(episode: Episode, operator: str) -> None:
    """Actions, escalation and closing are for the operator who claimed the alarm."""
    _require_owner(episode, operator)


def _require_owner(episode: Episode, operator: str) -> None:
    if episode.status != AlarmStatus.CLAIMED:
        raise AlarmStateError(f"alarm {episode.id} must be claimed first (it is {episode.status})")
    if episode.claimed_by != operator:
        raise AlarmStateError(f"alarm {episode.id} is worked by {episode.claimed_by}")


def close(episode: Episode, operator: str, resolution: Resolution, now: datetime) -> Episode:
    _require_owner(episode, operator)
    return replace(episode, status=AlarmStatus.CLOSED, closed_at=now, resolution=resolution)


def escalate(episode: Episode, operator: str) -> Episode:
    _require_owner(episode, operator)
    if episode.incident_requested:
        raise AlarmStateError(f"alarm {episode.id} was already escalated")
    return replace(episode, incident_requested=True)


def queue_order(episodes: Iterable[Episode]) -> list[Episode]:
    """Open alarms, life safety first, then oldest first within a priority."""
    return sorted(
        (e for e in episodes if e.status != AlarmStatus.CLOSED),
        key=lambda e: (int(e.priority), e.opened_at, e.id),
    )


# -- supervision -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SupervisionProfile:
    """A link-test interval and the grace before a missed one counts (EN 50136 reporting time)."""

    interval: timedelta
    grace: timedelta

    @classmethod
    def for_interval(cls, interval_s: int) -> SupervisionProfile:
        # grace: a tenth of the interval, at least 30 s, so one lost UDP datagram or a retry does not alarm
        return cls(timedelta(seconds=interval_s), timedelta(seconds=max(30, interval_s // 10)))


@dataclass(frozen=True, slots=True)
class LinkState:
    """What supervision knows of one account: its profile, last sign of life, current failure."""

    account: str
    profile: SupervisionProfile
    last_seen: datetime | None
    failed_at: datetime | None = None


def link_deadline(link: LinkState, watching_since: datetime) -> datetime:
    """When the account's reporting time runs out.

    Silence before `watching_since` (when this receiver started) is not the panel's fault: after a
    receiver outage every clock starts again, so the outage does not raise a storm of failures.
    """
    seen = watching_since if link.last_seen is None else max(link.last_seen, watching_since)
    return seen + link.profile.interval + link.profile.grace


def overdue_links(links: Iterable[LinkState], now: datetime, watching_since: datetime) -> list[tuple[str, datetime]]:
    """Accounts whose reporting time has run out and that are not already failed: (account, deadline)."""
    out: list[tuple[str, datetime]] = []
    for link in links:
        if link.failed_at is not None or link.profile.interval <= timedelta(0):
            continue
        deadline = link_deadline(link, watching_since)
        if now > deadline:
            out.append((link.account, deadline))
    return out

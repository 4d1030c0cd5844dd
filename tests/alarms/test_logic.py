"""The alarm queue's pure rules: episodes, ownership, ordering, link supervision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safecity.alarms import logic
from safecity.alarms.logic import (
    AlarmStateError,
    AlarmStatus,
    LinkState,
    Resolution,
    Signal,
    SignalDecision,
    SupervisionProfile,
)
from safecity.alarms.taxonomy import Priority

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=10)


def signal(
    n: int = 1, *, at: datetime = T0, priority: Priority = Priority.PROPERTY, restore: bool = False,
    account: str = "1234", code: str = "BA",
) -> Signal:
    return Signal(f"ev{n}", account, code, "01", "burglary", priority, restore, at)


def test_first_alarm_signal_opens_an_episode() -> None:
    assert logic.decide_signal(signal(), None, WINDOW) is SignalDecision.OPEN_EPISODE


def test_signals_within_the_window_join_one_episode_and_raise_its_priority() -> None:
    episode = logic.open_episode("a1", signal())
    later = signal(2, at=T0 + timedelta(minutes=3), priority=Priority.LIFE_SAFETY, code="PA")
    assert logic.decide_signal(later, episode, WINDOW) is SignalDecision.JOIN_EPISODE
    joined = logic.join_episode(episode, later)
    assert joined.priority is Priority.LIFE_SAFETY
    assert joined.signal_count == 2
    assert joined.last_signal_at == later.received_at


def test_a_restore_never_lowers_or_raises_priority() -> None:
    episode = logic.open_episode("a1", signal(priority=Priority.LIFE_SAFETY))
    restored = logic.join_episode(episode, signal(2, restore=True, priority=Priority.INFO))
    assert restored.priority is Priority.LIFE_SAFETY


def test_signal_after_the_window_opens_a_new_episode() -> None:
    episode = logic.open_episode("a1", signal())
    late = signal(2, at=T0 + WINDOW + timedelta(seconds=1))
    assert logic.decide_signal(late, episode, WINDOW) is SignalDecision.OPEN_EPISODE


def test_info_signal_without_an_open_alarm_is_history_only() -> None:
    opening = signal(priority=Priority.INFO, code="OP")
    assert logic.decide_signal(opening, None, WINDOW) is SignalDecision.RECORD_ONLY


def test_restore_after_the_window_still_attaches_to_the_open_alarm() -> None:
    episode = logic.open_episode("a1", signal())
    restore = signal(2, at=T0 + timedelta(hours=1), restore=True, priority=Priority.INFO)
    assert logic.decide_signal(restore, episode, WINDOW) is SignalDecision.JOIN_EPISODE


def test_a_claimed_alarm_cannot_be_claimed_by_another_operator() -> None:
    episode = logic.claim(logic.open_episode("a1", signal()), "olga", T0)
    with pytest.raises(AlarmStateError, match="worked by olga"):
        logic.claim(episode, "timur", T0)
    taken = logic.claim(episode, "sardor", T0, take_over=True)
    assert taken.claimed_by == "sardor"


def test_only_the_claiming_operator_closes_and_escalates() -> None:
    episode = logic.open_episode("a1", signal())
    with pytest.raises(AlarmStateError, match="claimed first"):
        logic.close(episode, "olga", Resolution.FALSE_ALARM, T0)
    claimed = logic.claim(episode, "olga", T0)
    with pytest.raises(AlarmStateError):
        logic.escalate(claimed, "timur")
    escalated = logic.escalate(claimed, "olga")
    with pytest.raises(AlarmStateError, match="already escalated"):
        logic.escalate(escalated, "olga")
    closed = logic.close(escalated, "olga", Resolution.DISPATCHED, T0)
    assert closed.status is AlarmStatus.CLOSED
    with pytest.raises(AlarmStateError, match="closed"):
        logic.claim(closed, "olga", T0)


@given(st.lists(st.tuples(st.sampled_from(list(Priority)), st.integers(0, 10_000)), min_size=1, max_size=40))
def test_queue_puts_life_safety_first_then_oldest(items: list[tuple[Priority, int]]) -> None:
    episodes = [
        logic.open_episode(f"a{i}", signal(i, at=T0 + timedelta(seconds=s), priority=p))
        for i, (p, s) in enumerate(items)
    ]
    ordered = logic.queue_order(episodes)
    keys = [(int(e.priority), e.opened_at) for e in ordered]
    assert keys == sorted(keys)
    assert len(ordered) == len(episodes)


def test_late_link_test_raises_comm_failure_once() -> None:
    profile = SupervisionProfile.for_interval(90)
    link = LinkState("1234", profile, last_seen=T0)
    deadline = T0 + timedelta(seconds=90 + 30)
    assert logic.overdue_links([link], deadline, T0) == []
    assert logic.overdue_links([link], deadline + timedelta(seconds=1), T0) == [("1234", deadline)]
    failed = LinkState("1234", profile, last_seen=T0, failed_at=deadline)
    assert logic.overdue_links([failed], deadline + timedelta(hours=1), T0) == []


def test_receiver_outage_does_not_blame_panels() -> None:
    profile = SupervisionProfile.for_interval(90)
    links = [LinkState(str(n), profile, last_seen=T0) for n in range(1000)]
    restarted = T0 + timedelta(hours=2)
    assert logic.overdue_links(links, restarted + timedelta(seconds=60), restarted) == []
    assert len(logic.overdue_links(links, restarted + timedelta(seconds=121), restarted)) == 1000


def test_unsupervised_accounts_never_fail() -> None:
    link = LinkState("1234", SupervisionProfile(timedelta(0), timedelta(0)), last_seen=None)
    assert logic.overdue_links([link], T0 + timedelta(days=30), T0) == []

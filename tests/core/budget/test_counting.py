"""The count_tokens endpoint is asked no faster than its own rate limit, and not after a failure."""

from __future__ import annotations

from core.budget.counting import COUNTS_PER_MINUTE, PAUSE_AFTER_FAILURE_S, CountGate, gate_for


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_at_most_the_limit_is_asked_in_any_rolling_minute() -> None:
    clock = Clock()
    gate = CountGate(per_minute=3, clock=clock)
    assert gate.take()
    clock.now += 30
    assert [gate.take() for _ in range(3)] == [True, True, False]
    clock.now += 29.9
    assert not gate.take()
    clock.now += 0.1  # the first count is a minute old: one more, not two
    assert gate.take() and not gate.take()


def test_a_failure_pauses_counting_for_a_while() -> None:
    clock = Clock()
    gate = CountGate(clock=clock)
    gate.failed()
    assert not gate.take()
    clock.now += PAUSE_AFTER_FAILURE_S
    assert gate.take()


def test_one_gate_per_client_below_the_lowest_tier() -> None:
    class Transport:
        pass

    first, second = Transport(), Transport()
    assert gate_for(first) is gate_for(first) and gate_for(first) is not gate_for(second)
    assert COUNTS_PER_MINUTE <= 100  # the lowest usage tier's count_tokens limit

"""The tests' own helpers: a wait that runs out fails the test that waited; the campaign's
quantiles are Prometheus' and its order check knows a takeover from a transition out of
order."""

from __future__ import annotations

import datetime

import pytest
from helpers import wait_until
from helpers.campaign import out_of_order, quantile

from pipelines.ledger import HistoryEntry, State


def test_wait_until_returns_the_first_answer_done():
    answers = iter(range(10))
    assert wait_until(lambda: next(answers), lambda n: n >= 2, timeout=5, interval=0.01) == 2


def test_wait_until_fails_naming_what_it_awaited_and_the_last_answer():
    with pytest.raises(AssertionError, match=r"^waited 0.2 s for the moon: the last answer "
                                             r"was 'not yet'\nthe log$"):
        wait_until(lambda: "not yet", lambda answer: answer == "done", timeout=0.2,
                   interval=0.05, what="the moon", detail=lambda: "the log")
    with pytest.raises(AssertionError, match=r"for .*<lambda> until .*never: the last answer "
                                             r"was 0$"):
        def never(_answer: int) -> bool:
            return False

        wait_until(lambda: 0, never, timeout=0.1, interval=0.05)


def test_quantile_interpolates_within_the_bucket_as_histogram_quantile_does():
    buckets = [(0.1, 0.0), (0.5, 50.0), (1.0, 90.0), (float("inf"), 100.0)]
    assert quantile(buckets, 0.5) == pytest.approx(0.5)
    assert quantile(buckets, 0.25) == pytest.approx(0.3)
    assert quantile(buckets, 0.7) == pytest.approx(0.75)
    assert quantile(buckets, 0.99) == 1.0  # in the +Inf bucket: its lower bound
    assert quantile([], 0.5) == 0.0


def _history(*states: State) -> list[HistoryEntry]:
    at = datetime.datetime(2026, 12, 7, tzinfo=datetime.UTC)
    return [HistoryEntry(at + datetime.timedelta(seconds=n), state, "run", None, "")
            for n, state in enumerate(states)]


def test_out_of_order_allows_a_takeover_and_notes_but_not_a_skipped_state():
    assert out_of_order(_history(State.LANDED, State.VALIDATED, State.LANDED, State.VALIDATED,
                                 State.LOADED, State.LOADED, State.DELIVERED)) == 0
    assert out_of_order(_history(State.LANDED, State.LOADED, State.DELIVERED)) == 1
    assert out_of_order(_history(State.LANDED, State.DELIVERED, State.VALIDATED)) == 2

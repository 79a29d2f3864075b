"""The tests' own helpers: a wait that runs out fails the test that waited."""

from __future__ import annotations

import pytest
from helpers import wait_until


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

"""The suite's one way to wait for something a real server (or a real bridge) does in its own
time: CouchDB evicts its authentication cache, compacts and upgrades password hashes in the
background, the bridge's reaper runs on its interval, a process exits after a signal.

Where the code under test takes a clock (``now=``), a test passes one instead of waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimedOut(AssertionError):
    """What a test fails with when the condition never came true."""


def wait_until(condition: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.1,
               what: str = "") -> T:
    """Call ``condition`` every ``interval`` seconds until it answers something truthy, and
    return that answer; fail the test (:class:`WaitTimedOut`, an ``AssertionError``) if it
    still answers something falsy after ``timeout`` seconds. ``what`` says, for the failure
    message, what was waited for ("the deleted user is refused")."""
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        answer = condition()
        tries += 1
        if answer:
            return answer
        if time.monotonic() >= deadline:
            waited_for = what or getattr(condition, "__qualname__", repr(condition))
            raise WaitTimedOut(f"waited {timeout:g} s ({tries} tries) until {waited_for}; "
                               f"the last answer was {answer!r}")
        time.sleep(interval)

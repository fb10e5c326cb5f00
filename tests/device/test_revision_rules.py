"""CouchDB's revision rules as the device applies them, and the clock estimate."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from carecouch.revs import Leaf, conflicts, new_rev, revisions_object, revisions_path
from carecouch.revs import winning_leaf as winner
from mobile_stub.clock import ClockEstimator


def test_winner_is_live_then_highest_pos_then_highest_id() -> None:
    assert winner([Leaf("3-a", deleted=True), Leaf("2-b")]).rev == "2-b"
    assert winner([Leaf("2-z"), Leaf("3-a")]).rev == "3-a"
    assert winner([Leaf("3-a"), Leaf("3-b")]).rev == "3-b"
    assert winner([Leaf("4-a", True), Leaf("4-b", True)]).rev == "4-b"
    assert conflicts([Leaf("3-a"), Leaf("3-b"), Leaf("4-c", True)]) == ["3-a"]


def test_new_revisions_continue_their_parent_and_are_deterministic() -> None:
    first = new_rev(None, {"a": 1}, False)
    assert first.startswith("1-") and len(first) == 2 + 32
    second = new_rev(first, {"a": 2}, False)
    assert second.startswith("2-") and second == new_rev(first, {"a": 2}, False)
    assert new_rev(first, {"a": 2}, True) != second


def test_revisions_objects_round_trip() -> None:
    path = ["3-c", "2-b", "1-a"]
    assert revisions_object(path) == {"start": 3, "ids": ["c", "b", "a"]}
    assert revisions_path(revisions_object(path)) == path


def test_clock_offset_from_date_headers() -> None:
    device_now = 1_800_000_000.0
    clock = ClockEstimator(now=lambda: device_now)
    assert clock.offset_ms() is None
    # The server is 5 s ahead; Date truncates to the second.
    clock.observe(formatdate(device_now + 5.3, usegmt=True))
    assert clock.offset_ms() == pytest.approx(5000, abs=500)
    clock.observe("not a date")  # ignored, never fatal
    assert clock.offset_ms() == pytest.approx(5000, abs=500)
    assert ClockEstimator(offset_ms=1234).offset_ms() == 1234

"""UTC timestamps in the one format every carecouch document uses."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> str:
    """ISO 8601 UTC with microseconds, fixed width, so the strings sort by time."""
    return format_utc(datetime.now(UTC))


def format_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(text: str) -> datetime:
    """An ISO 8601 UTC time (``...Z`` or ``+00:00``) as an aware datetime; ValueError else."""
    moment = datetime.fromisoformat(text) if isinstance(text, str) else None
    offset = moment.utcoffset() if moment is not None else None
    if moment is None or offset is None or offset:
        raise ValueError(f"not an ISO 8601 UTC time: {text!r}")
    return moment

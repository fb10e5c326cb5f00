"""Reading request bodies: every malformed input becomes a 400 in the one error shape."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import request

from .errors import ApiError

T = TypeVar("T")
MAX_BODY = 64 * 1024
MAX_EXACT_INT = 2**53


def body() -> dict[str, Any]:
    """The request's JSON object (an empty body counts as ``{}``)."""
    raw = request.get_data(cache=True)
    if len(raw) > MAX_BODY:
        raise ApiError(413, "request.too_large", f"the body exceeds {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw, parse_constant=_not_json, parse_float=_finite,
                           parse_int=_exact_int, object_pairs_hook=_unique_keys)
        # A lone surrogate ("\\ud800") parses, but it is not Unicode text: CouchDB refuses
        # it, and that refusal would surface as a 5xx instead of this request's 400.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError) as exc:
        raise ApiError(400, "request.bad_json", f"the body is not JSON ({exc})") from exc
    except RecursionError as exc:  # "[[[[...": nesting deeper than any request needs
        raise ApiError(400, "request.bad_json", "the body nests too deeply") from exc
    if not isinstance(value, dict):
        raise ApiError(400, "request.bad_json", "the body must be a JSON object")
    return value


# Python's json module is laxer than JSON (RFC 8259). What it lets through and CouchDB does
# not would fail later, as a 5xx: NaN and Infinity, numbers too large for a double. Integers
# stay within what a JavaScript device and the validation functions read exactly (RFC 8259
# section 6). A repeated key is refused too, so that what was signed reads only one way.
def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:20]} is too large")
    return number


def _exact_int(text: str) -> int:
    number = int(text)
    if abs(number) > MAX_EXACT_INT:
        raise ValueError(f"the integer {text[:20]} is beyond +-2**53")
    return number


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, item in pairs:
        if key in found:
            raise ValueError(f"the key {key[:40]!r} is given twice")
        found[key] = item
    return found


def only(data: dict[str, Any], *allowed: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ApiError(400, "request.unknown_field", f"unknown field {unknown[0]!r} (expected "
                       f"{', '.join(allowed) or 'none'})", {"field": unknown[0]})


def text(data: dict[str, Any], name: str, *, required: bool = True, min_length: int = 1,
         max_length: int = 200, pattern: re.Pattern[str] | None = None) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ApiError(400, "request.missing_field", f"{name} is required", {"field": name})
        return None
    if not isinstance(value, str):
        raise ApiError(400, "request.bad_field", f"{name} must be a string", {"field": name})
    if not min_length <= len(value.strip()) <= max_length:
        raise ApiError(400, "request.bad_field", f"{name} must be {min_length}-{max_length} "
                       "characters", {"field": name})
    if pattern is not None and not pattern.fullmatch(value):  # no trailing "\n"
        raise ApiError(400, "request.bad_field", f"{name} has a form that is not allowed",
                       {"field": name})
    return value


def required_text(data: dict[str, Any], name: str, **kwargs: Any) -> str:
    value = text(data, name, required=True, **kwargs)
    assert value is not None
    return value


def checked(value: str, check: Callable[[str], T], field: str) -> T:
    """``check(value)``; its ValueError becomes a 400 naming the field."""
    try:
        return check(value)
    except ValueError as exc:
        raise ApiError(400, "request.bad_field", str(exc), {"field": field}) from exc

"""Reading the access-policy YAML file IT edits, with the line of every mistake.

The file is parsed to YAML nodes (not plain Python values) so that each check can name the
line it refers to: a policy that would lock a ward out, or let a role write what it must not,
is refused before it is used, with ``policy.yaml:14: unknown record type 'obs'``. The model it
produces, and what it grants a user, live in :mod:`carecouch.policy`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import yaml

from .errors import CarecouchError

T = TypeVar("T")

_DURATION = re.compile(r"^([0-9]{1,7})\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class PolicyError(CarecouchError):
    """A policy file that cannot be used; ``str`` is ``<file>:<line>: <reason>``."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line
        self.reason = message


def line_of(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


class Reader:
    """Typed access to YAML nodes; every refusal names the file and line."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: yaml.Node | None, message: str) -> PolicyError:
        return PolicyError(self.source, line_of(node) if node is not None else None, message)

    def compose(self, text: str) -> yaml.Node:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            raise PolicyError(self.source, line, f"not valid YAML ({exc.problem or exc})") from exc
        except yaml.YAMLError as exc:
            raise PolicyError(self.source, None, f"not valid YAML ({exc})") from exc
        if root is None:
            raise PolicyError(self.source, None, "the policy file is empty")
        return root

    def mapping(self, node: yaml.Node, what: str, allowed: tuple[str, ...],
                required: tuple[str, ...] = ()) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """``{key: (key node, value node)}``; unknown, repeated and missing keys refused."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        found: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, f"{what}: keys must be plain words")
            key = str(key_node.value)
            if key not in allowed:
                raise self.fail(key_node, f"{what}: unknown key {key!r} (expected "
                                f"{', '.join(allowed)})")
            if key in found:
                raise self.fail(key_node, f"{what}: key {key!r} given twice")
            found[key] = (key_node, value_node)
        for key in required:
            if key not in found:
                raise self.fail(node, f"{what}: {key!r} is required")
        return found

    def text(self, node: yaml.Node, what: str, *, max_length: int = 200) -> str:
        if (not isinstance(node, yaml.ScalarNode)
                or node.tag == "tag:yaml.org,2002:null" and node.style is None):
            raise self.fail(node, f"{what} must be a single value")
        value = str(node.value).strip()
        if not value or len(value) > max_length:
            raise self.fail(node, f"{what} must be 1-{max_length} characters")
        return value

    def checked(self, node: yaml.Node, what: str, check: Callable[[str], T]) -> T:
        """``check(text)``; a ValueError it raises becomes this node's refusal."""
        value = self.text(node, what)
        try:
            return check(value)
        except ValueError as exc:
            raise self.fail(node, str(exc)) from exc

    def texts(self, node: yaml.Node, what: str,
              check: Callable[[str], str] | None = None) -> tuple[str, ...]:
        """A list of values (a single value counts as a list of one); repeats refused."""
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        values: list[str] = []
        for item in items:
            value = self.checked(item, what, check) if check else self.text(item, what)
            if value in values:
                raise self.fail(item, f"{what}: {value!r} is listed twice")
            values.append(value)
        return tuple(values)

    def flag(self, node: yaml.Node, what: str) -> bool:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:bool":
            return str(node.value).lower() in ("true", "yes", "on")
        raise self.fail(node, f"{what} must be true or false")

    def duration(self, node: yaml.Node, what: str, *, low: int, high: int) -> int:
        """``90s``, ``30m``, ``8h``, ``3d`` -> seconds, within ``[low, high]``."""
        raw = self.text(node, what)
        seconds = duration_seconds(raw)
        if seconds is None:
            raise self.fail(node, f"{what} must be a duration such as 90s, 30m, 8h or 3d, "
                            f"not {raw!r}")
        if not low <= seconds <= high:
            raise self.fail(node, f"{what} must be between {format_duration(low)} and "
                            f"{format_duration(high)}")
        return seconds


    def amount(self, node: yaml.Node, what: str, *, low: int = 1) -> int:
        """A count or a size: ``20000``, ``500MB``, ``2GB`` (powers of 1000) or ``512MiB``,
        ``1GiB`` (of 1024), at least ``low``."""
        raw = self.text(node, what)
        match = _AMOUNT.match(raw)
        if not match:
            raise self.fail(node, f"{what} must be a number, or a size such as 500MB or "
                            f"512MiB, not {raw!r}")
        value = int(match.group(1)) * _SIZES[match.group(2) or ""]
        if value < low:
            raise self.fail(node, f"{what} must be at least {low}")
        return value


_AMOUNT = re.compile(r"^\s*(\d{1,15})\s*(kB|KB|MB|GB|KiB|MiB|GiB)?\s*$")
_SIZES = {"": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10,
          "MiB": 2**20, "GiB": 2**30}

def duration_seconds(text: str) -> int | None:
    """``90s``, ``30m``, ``8h``, ``3d`` -> seconds; None for anything else."""
    match = _DURATION.match(text.strip())
    return int(match.group(1)) * _UNITS[match.group(2)] if match else None


def format_duration(seconds: int) -> str:
    """The largest whole unit: 28800 -> ``8h``, 90 -> ``90s``."""
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"

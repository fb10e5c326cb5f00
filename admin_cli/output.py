"""Output shared by every command group: tables for people, ``--json`` for scripts, progress.

Data goes to stdout; progress and diagnostics go to stderr, so ``--json`` output can be piped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from carecouch.clock import format_utc, parse_utc

from .errors import BadUsage

F = TypeVar("F", bound=Callable[..., Any])



def _json_too(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """A command's ``--json``, or ``carecouch --json`` before the command."""
    return value or bool(ctx.find_root().params.get("as_json"))


json_option = click.option("--json", "as_json", is_flag=True, callback=_json_too,
                           help="Print JSON (for scripts) instead of a table.")
quiet_option = click.option("-q", "--quiet", is_flag=True,
                            help="No progress bar on stderr.")


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))


def note(message: str) -> None:
    """A diagnostic line for people (stderr)."""
    click.echo(message, err=True)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
                 right: Sequence[str] = ()) -> str:
    """Plain-text columns; headers named in ``right`` (numbers) are right-aligned."""
    text = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in text)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if h in right else v.ljust(w)
                 for v, w, h in zip(values, widths, headers, strict=True)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(r) for r in text)])


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
               right: Sequence[str] = ()) -> None:
    click.echo(render_table(headers, rows, right))


def human_size(size: int | None) -> str | None:
    if size is None:
        return None
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return None  # pragma: no cover


@contextmanager
def progress(length: int, label: str, *, quiet: bool) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr; yields the function to call once per finished item."""
    if quiet or length <= 1:
        yield lambda: None
        return
    # sys.stderr read now, not at import: click's test runner swaps it per invocation.
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield lambda: bar.update(1)


def since_time(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An ISO 8601 UTC time (or a date: its midnight), in the form the trail's ids sort by."""
    if value is None:
        return None
    text = f"{value}T00:00:00Z" if len(value) == 10 else value
    try:
        return format_utc(parse_utc(text))
    except ValueError:
        raise BadUsage(f"--since takes an ISO 8601 UTC time such as 2026-01-31T09:30:00Z "
                       f"or a date such as 2026-01-31, not {value!r}") from None


caseloads_option = click.option(
    "--caseload", "caseloads", multiple=True, metavar="ID",
    help="Only this caseload (repeatable; default: every active caseload).")


def since_option(what: str) -> Callable[[F], F]:
    """``--since TIME``: only ``what`` at or after an ISO 8601 UTC time (or a date)."""
    return click.option("--since", metavar="TIME", callback=since_time,
                        help=f"Only {what} at or after this ISO 8601 UTC time (or date).")

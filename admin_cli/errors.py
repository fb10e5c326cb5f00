"""Turn library errors into one-line messages and exit codes (0 ok, 1 failed, 2 bad usage)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from carecouch.cli_support import EXIT_FAILED, OneLineUsage, OneLineUsageGroup, plural
from carecouch.errors import (
    CarecouchError,
    CouchForbidden,
    CouchUnauthorized,
    CouchUnreachable,
)
from carecouch.ids import InvalidCaseloadId


class CommandFailed(click.ClickException):
    """The operation was attempted and failed: ``error: <message>`` and exit 1."""

    exit_code = EXIT_FAILED

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


class BadUsage(OneLineUsage):
    """Bad input on the command line: ``error: <message>`` on one line and exit 2."""


class NotOk(click.exceptions.Exit):
    """The command did its work and what it reports is not OK (a server that is not running,
    an alert rule in breach): exit 1 with nothing more printed, since the report says it."""

    def __init__(self) -> None:
        super().__init__(EXIT_FAILED)


def unread(errors: Mapping[str, str]) -> CommandFailed:
    """The failure of a command that went on past caseloads it could not read (each already
    named in a note)."""
    were = "was" if len(errors) == 1 else "were"
    return CommandFailed(f"{plural(len(errors), 'caseload')} {were} not read (see above)")


def explain(exc: CarecouchError) -> str:
    """One line a person can act on."""
    if isinstance(exc, CouchUnreachable):
        return f"{exc.reason} (is the server running? `carecouch server status`)"
    if isinstance(exc, CouchUnauthorized):
        return (f"CouchDB refused the credentials ({exc.reason}); check COUCHDB_USER and "
                "COUCHDB_PASSWORD")
    if isinstance(exc, CouchForbidden):
        return f"CouchDB refused ({exc}); is COUCHDB_USER a server admin?"
    return str(exc)


class CarecouchGroup(OneLineUsageGroup):
    """A click group that reports carecouch errors in one line instead of a traceback, and
    bad usage in one line too (exit 2)."""

    usage_error = BadUsage

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvalidCaseloadId as exc:  # an id typed on the command line
            raise BadUsage(str(exc)) from exc
        except CarecouchError as exc:
            raise CommandFailed(explain(exc)) from exc
        except OSError as exc:  # a data dir or manifest we cannot read or write
            where = f": {exc.filename}" if exc.filename else ""
            raise CommandFailed(f"{exc.strerror or exc}{where}") from exc

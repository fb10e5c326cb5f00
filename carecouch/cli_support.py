"""What the command-line programs (``carecouch``, ``carecouch-device``, ``carecouch-bridge``)
share: bad usage as one line and exit 2, and counts with their nouns agreeing."""

from __future__ import annotations

from typing import Any

import click

EXIT_FAILED = 1
EXIT_USAGE = 2
# A group run without a command shows its help (click 8.2 and later raise this usage error to
# do it; earlier ones exit without one): left to click, as is a usage error already one line.
_PASS_THROUGH: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(click.exceptions, "NoArgsIsHelpError", None),) if t is not None)


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``"1 document"``, ``"2 documents"``; ``plural_noun`` where adding "s" is wrong
    (``plural(n, "breach", "breaches")``)."""
    return f"{count} {noun if count == 1 else plural_noun or noun + 's'}"


class OneLineUsage(click.UsageError):
    """Bad usage: ``<prefix><message>`` on one line of stderr (with :attr:`point_at_help`,
    naming the command's ``--help``) and exit 2, instead of click's usage block."""

    exit_code = EXIT_USAGE
    prefix = "error: "
    point_at_help = False

    def show(self, file: Any = None) -> None:
        where = (f" (see `{self.ctx.command_path} --help`)"
                 if self.point_at_help and self.ctx else "")
        click.echo(f"{self.prefix}{self.format_message()}{where}", err=True, file=file)


class OneLineUsageGroup(click.Group):
    """A program's root group: every usage error, its own options' or a subcommand's, is
    reported as :attr:`usage_error` (one line, exit 2)."""

    usage_error: type[OneLineUsage] = OneLineUsage

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            if isinstance(exc, (OneLineUsage, *_PASS_THROUGH)):
                raise
            raise self.usage_error(exc.format_message(), exc.ctx) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            if isinstance(exc, (OneLineUsage, *_PASS_THROUGH)):
                raise
            raise self.usage_error(exc.format_message(), exc.ctx) from exc

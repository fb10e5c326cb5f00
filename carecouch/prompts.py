"""Asking a person at a terminal, for every command line of carecouch.

A command run by a script has no terminal. click would then print ``GetPassWarning`` (a
hidden prompt with no terminal) or a bare ``Aborted!`` (end of input), which tells nobody what
to do. Here a question is read from stdin when there is no terminal (a script may pipe the
answer), and no answer at all ends in one line that says how to do without the prompt.
"""

from __future__ import annotations

import sys

import click

from .errors import CarecouchError


class NoAnswer(CarecouchError):
    """A question needed an answer and none came; the message says how to give it."""


def _interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def confirm(question: str, refusal: str) -> None:
    """Ask ``question``; unless the answer is yes, raise :class:`NoAnswer` with ``refusal``
    (and, when no answer came, how to confirm without a prompt: ``--yes``)."""
    try:
        if click.confirm(question, default=False, err=True):
            return
    except click.Abort:
        click.echo("", err=True)  # end the prompt's line
        raise NoAnswer(f"{refusal} (no answer: without a terminal, give --yes)") from None
    raise NoAnswer(refusal)


def typed(prompt: str) -> str:
    """A line typed at the prompt (``""`` when none came)."""
    try:
        value: str = click.prompt(prompt, default="", show_default=False, err=True)
    except click.Abort:
        click.echo("", err=True)
        return ""
    return value


def secret(prompt: str, *, repeat: bool = False, otherwise: str) -> str:
    """A hidden answer (a passphrase). Without a terminal it is read, unechoed, as one line
    from stdin; with none there, :class:`NoAnswer` says ``otherwise`` (e.g. the variable to
    set instead)."""
    if _interactive():
        try:
            value: str = click.prompt(prompt, hide_input=True, confirmation_prompt=repeat,
                                      err=True)
        except click.Abort:
            click.echo("", err=True)
            raise NoAnswer(f"no {prompt.lower()} given; {otherwise}") from None
        return value
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line.strip():
        raise NoAnswer(f"no terminal to ask for the {prompt.lower()}; {otherwise}")
    return line.rstrip("\r\n")

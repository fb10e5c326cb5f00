"""``carecouch audit``: read the audit trail."""

from __future__ import annotations

import click

from .audit_break_glass import break_glass


@click.group()
def audit() -> None:
    """Read the audit trail: who did what, when and why."""


audit.add_command(break_glass)

"""Every conflicts and audit command explains itself."""

from __future__ import annotations

import click

from admin_cli.cmd_audit import audit
from admin_cli.cmd_conflicts import conflicts


def test_every_command_has_help() -> None:
    for group in (conflicts, audit):
        assert group.help
        assert isinstance(group, click.Group)
        for name, command in group.commands.items():
            assert command.help and len(command.help) > 20, name
            for param in command.params:
                if isinstance(param, click.Option):
                    assert param.help, f"{name} {param.name}"

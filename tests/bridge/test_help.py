"""Every policy, credentials, fleet and carecouch-bridge command explains itself, and so does
every option."""

from __future__ import annotations

import click
import pytest

from admin_cli.cmd_audit import audit
from admin_cli.cmd_credentials import credentials
from admin_cli.cmd_fleet import fleet
from admin_cli.cmd_policy import policy
from bridge.cli import main as bridge_cli


@pytest.mark.parametrize("group", [policy, credentials, fleet, bridge_cli], ids=lambda g: g.name)
def test_every_command_has_help(group: click.Group) -> None:
    assert group.help
    for name, command in group.commands.items():
        assert command.help and len(command.help) > 20, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.name}"


def test_break_glass_is_an_audit_command() -> None:
    command = audit.commands["break-glass"]
    assert command.help and "review" in command.help

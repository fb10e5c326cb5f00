"""Every command and subcommand of the three programs explains itself: ``--help`` exits 0 with
the command's summary line and no traceback, the command's help says what it does, and every
option says what it means. The walk finds the commands itself, so a new one is covered the day
it is added."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from admin_cli.cmd_audit import audit
from admin_cli.main import cli as carecouch
from bridge.cli import main as carecouch_bridge
from mobile_stub.cli import main as carecouch_device

PROGRAMS: dict[str, click.Group] = {
    "carecouch": carecouch,
    "carecouch-bridge": carecouch_bridge,
    "carecouch-device": carecouch_device,
}
# The command groups whose every command's help was held to more than a few words (the
# admin CLI's caseload, conflicts, audit, policy, credentials and fleet, and the bridge's).
WORDY = {("carecouch", "caseload"), ("carecouch", "conflicts"), ("carecouch", "audit"),
         ("carecouch", "policy"), ("carecouch", "credentials"), ("carecouch", "fleet"),
         ("carecouch-bridge",)}


def walk(path: tuple[str, ...], command: click.Command
         ) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk((*path, name), sub)


COMMANDS = [(path, command) for program, group in PROGRAMS.items()
            for path, command in walk((program,), group)]


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_explains_itself(path: tuple[str, ...], command: click.Command) -> None:
    program, *words = path
    result = CliRunner().invoke(PROGRAMS[program], [*words, "--help"], prog_name=program)
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 0, output
    assert "Traceback" not in output and result.exception is None, output
    assert result.stdout.startswith(f"Usage: {' '.join(path)} "), result.stdout
    summary = (command.help or "").strip().split("\n\n")[0]
    assert summary, f"{' '.join(path)} has no help text"
    # click rewraps the text (and breaks words at hyphens): compared without whitespace
    assert "".join(summary.split()) in "".join(result.stdout.split()), result.stdout
    if path[:-1] in WORDY:
        assert command.help and len(command.help) > 20, " ".join(path)
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{' '.join(path)} {param.name}"


def test_the_walk_reaches_every_program_and_their_commands() -> None:
    walked = {" ".join(path) for path, _ in COMMANDS}
    assert {"carecouch caseload create", "carecouch conflicts list", "carecouch fleet check",
            "carecouch-bridge serve", "carecouch-bridge keygen"} <= walked
    assert {"enrol", "login", "lease", "record"} <= set(carecouch_device.commands)
    assert {"carecouch-device lease claim", "carecouch-device record new"} <= walked


def test_break_glass_is_an_audit_command() -> None:
    command = audit.commands["break-glass"]
    assert command.help and "review" in command.help

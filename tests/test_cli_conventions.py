"""What every command line keeps to: bad usage is one ``error:`` line and exit 2 (not click's
usage block), ``--json`` before or after the command, counts with their nouns agreeing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from admin_cli.main import cli
from carecouch.cli_support import plural
from mobile_stub.cli import main as device_cli


@pytest.mark.parametrize("args", [
    ["--bogus"],                                 # the program's own option
    ["nosuch"],                                  # no such command
    ["caseload", "list", "--status", "bogus"],   # a subcommand's option value
    ["caseload", "show"],                        # a missing argument
])
def test_bad_usage_is_one_error_line_and_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: "), line


def test_the_device_says_bad_usage_in_one_line_too() -> None:
    result = CliRunner().invoke(device_cli, ["--bogus"])
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("carecouch-device: error: No such option"), line


def test_a_group_without_its_command_shows_its_help() -> None:
    result = CliRunner().invoke(cli, ["caseload"])
    assert result.exit_code == 2
    assert "Commands:" in result.output and "error:" not in result.output


@pytest.mark.parametrize("args", [["--json", "server", "status"], ["server", "status", "--json"]])
def test_json_before_or_after_the_command(args: list[str], tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, args, env={"CARECOUCH_DATA_DIR": str(tmp_path / "none")})
    assert result.exit_code == 1  # no server runs there: reported, not an error line
    assert json.loads(result.stdout)["status"] == "stopped"
    assert "error:" not in result.stderr


def test_device_json_after_any_command(tmp_path: Path) -> None:
    store = str(tmp_path / "no-store.sqlite")
    for command in (["offline"], ["lease", "claim", "task:1234abcd"], ["show", "x"]):
        before = CliRunner().invoke(device_cli, ["--store", store, "--json", *command])
        after = CliRunner().invoke(device_cli, ["--store", store, *command, "--json"])
        assert after.exit_code != 2, after.stderr  # accepted, not bad usage
        assert (before.exit_code, before.stderr) == (after.exit_code, after.stderr)


def test_plural() -> None:
    assert plural(1, "document") == "1 document"
    assert plural(0, "document") == "0 documents"
    assert plural(2, "conflict") == "2 conflicts"
    assert plural(1, "breach", "breaches") == "1 breach"
    assert plural(3, "breach", "breaches") == "3 breaches"

"""Entry point of the ``carecouch`` command."""

from __future__ import annotations

import click

from carecouch import __version__
from carecouch.config import load_env_file

from .cmd_audit import audit
from .cmd_caseload import caseload
from .cmd_conflicts import conflicts
from .cmd_credentials import credentials
from .cmd_fleet import fleet
from .cmd_policy import policy
from .cmd_server import server
from .errors import CarecouchGroup


@click.group(cls=CarecouchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="carecouch")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON (for scripts), as the command's own --json does.")
def cli(as_json: bool) -> None:
    """carecouch: provision caseload databases and review conflicted clinical records.

    Connects to COUCHDB_URL as COUCHDB_USER / COUCHDB_PASSWORD (read from the environment or
    a .env file in the current directory, or the file named by CARECOUCH_ENV_FILE).
    """
    # Before any subcommand parses its options, so their envvar= defaults see .env too.
    load_env_file()


cli.add_command(server)
cli.add_command(caseload)
cli.add_command(conflicts)
cli.add_command(audit)
cli.add_command(policy)
cli.add_command(credentials)
cli.add_command(fleet)

"""``carecouch server``: the embedded CouchDB-protocol server for development, demo and tests."""

from __future__ import annotations

import json
from pathlib import Path

import click

from carecouch import embedded

from .context import AppContext, pass_app
from .errors import NotOk
from .output import json_option

DEFAULT_DATA_DIR = ".local/couch"

data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR, envvar="CARECOUCH_DATA_DIR", show_default=True,
    help="Where the server keeps its databases, log and state file.")


@click.group()
def server() -> None:
    """Run the embedded server (PouchDB Server with carecouch's CouchDB 3.5 fixes)."""


@server.command()
@click.option("--port", type=click.IntRange(0, 65535), default=5984, show_default=True,
              envvar="CARECOUCH_PORT", help="Port on 127.0.0.1 (0 picks a free one).")
@data_dir_option
@pass_app
def start(app: AppContext, port: int, data_dir: Path) -> None:
    """Start the server in the background, create the admin, wait until it answers.

    The admin is COUCHDB_USER / COUCHDB_PASSWORD. Prints the server's URL.
    """
    settings = app.settings
    state = embedded.start(data_dir, port, settings.user, settings.password)
    click.echo(state.url)
    click.echo(f"started embedded server (pid {state.pid}, data in {state.data_dir})", err=True)


@server.command()
@data_dir_option
def stop(data_dir: Path) -> None:
    """Stop the server that runs on DATA_DIR (and only that one)."""
    state = embedded.stop(data_dir)
    if state is None:
        click.echo(f"no server was running for {data_dir.resolve()}", err=True)
    else:
        click.echo(f"stopped embedded server at {state.url} (pid {state.pid})", err=True)


@server.command()
@data_dir_option
@json_option
def status(data_dir: Path, as_json: bool) -> None:
    """Say whether the server on DATA_DIR runs; exit 1 if it is stopped or died."""
    current, state = embedded.status(data_dir)
    if as_json:
        click.echo(json.dumps({
            "status": current, "url": state.url if state else None,
            "pid": state.pid if state else None, "data_dir": str(data_dir.resolve()),
        }))
    elif current == "running" and state is not None:
        click.echo(f"running at {state.url} (pid {state.pid}, data in {state.data_dir})")
    elif current == "dead" and state is not None:
        click.echo(f"the server at {state.url} (pid {state.pid}) died; server log tail:\n"
                   f"{embedded.log_tail(data_dir)}")
    else:
        click.echo(f"stopped (no server for {data_dir.resolve()})")
    if current != "running":
        raise NotOk()

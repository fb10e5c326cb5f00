"""``carecouch-bridge``: run the bridge, make its keys.

``serve`` is for development and the local stack (Werkzeug's threaded server); production runs
the same app under gunicorn (docker-compose.yml). Errors are one line on stderr; exit 0
success, 1 failure, 2 bad usage.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from carecouch import __version__
from carecouch.config import load_env_file
from carecouch.errors import CarecouchError
from carecouch.signing import (
    generate_private_key,
    public_key_pem,
    write_private_key,
)


class _Failed(click.ClickException):
    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"carecouch-bridge: error: {self.format_message()}", err=True, file=file)


class _Group(click.Group):
    """Library errors as one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CarecouchError as exc:
            raise _Failed(str(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="carecouch-bridge")
def main() -> None:
    """carecouch-bridge: short-lived CouchDB credentials and exclusive-record leases.

    Settings come from the environment, or ./.env (or the file named by CARECOUCH_ENV_FILE);
    see docs/configuration.md.
    """
    load_env_file()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              envvar="CARECOUCH_BRIDGE_PORT", help="Port to listen on (0 picks a free one).")
@click.option("--pid-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the process id here while serving (./dev uses it to stop the bridge).")
def serve(host: str, port: int, pid_file: Path | None) -> None:
    """Serve the bridge API (development server; use gunicorn in production)."""
    from werkzeug.serving import make_server

    from .app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    app = create_app()
    server = make_server(host, port, app, threaded=True)
    if pid_file is not None:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{os.getpid()}\n")
    click.echo(f"http://{host}:{server.server_port}")
    click.echo(f"carecouch-bridge serving on {host}:{server.server_port} (pid {os.getpid()})",
               err=True)
    sys.stdout.flush()
    _stop_on_signals()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        app.extensions["carecouch"].close()
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)


def _stop_on_signals() -> None:
    """Stop serving on SIGINT and on SIGTERM (what `docker stop` and service managers send).
    A process started in the background by a non-interactive shell inherits SIGINT ignored,
    and Python then leaves it ignored: the bridge would outlive every Ctrl-C and test run."""
    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


@main.command()
@click.argument("private_key", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--public", "public_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the public key (PEM) here.")
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
def keygen(private_key: Path, public_out: Path | None, force: bool) -> None:
    """Write a new Ed25519 private key (PEM, mode 600) to PRIVATE_KEY.

    For CARECOUCH_BRIDGE_SIGNING_KEY_FILE. Refuses to overwrite a key unless --force: devices
    trust the public key of the one in use.
    """
    if private_key.exists() and not force:
        raise _Failed(f"{private_key} exists; use --force to replace the key")
    key = generate_private_key()
    write_private_key(private_key, key)
    if public_out is not None:
        public_out.parent.mkdir(parents=True, exist_ok=True)
        public_out.write_bytes(public_key_pem(key.public_key()))
    click.echo(f"wrote {private_key}" + (f" and {public_out}" if public_out else ""), err=True)

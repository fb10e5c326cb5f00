"""``carecouch-device``: the reference field device on the command line.

A thin layer over the library (:mod:`mobile_stub.device`, :mod:`mobile_stub.session`,
:mod:`mobile_stub.replication`, :mod:`mobile_stub.store`): errors become one line on stderr;
exit 0 success, 1 the operation failed, 2 bad usage. Whatever the command, when the bridge
answered that this device was revoked, the store is wiped before the command ends.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from carecouch import __version__
from carecouch.cli_support import OneLineUsage, OneLineUsageGroup
from carecouch.config import load_env_file
from carecouch.errors import CarecouchError

from .commands import cmd_bridge, cmd_lease, cmd_record, cmd_records, cmd_store, cmd_sync
from .commands.context import DEFAULT_STORE, DeviceContext
from .errors import RecordRefused


class _Failed(click.ClickException):
    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"carecouch-device: error: {self.format_message()}", err=True, file=file)


class _Usage(OneLineUsage):
    """Bad usage in one line too (exit 2), pointing at the command's help."""

    prefix = "carecouch-device: error: "
    point_at_help = True


class _DeviceGroup(OneLineUsageGroup):
    """Library errors as one line, not a traceback; a revoked device wiped."""

    usage_error = _Usage

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
        except RecordRefused as exc:
            if isinstance(ctx.obj, DeviceContext) and ctx.obj.as_json:
                click.echo(json.dumps({"refused": exc.refusal.to_json()}, indent=2))
            raise _Failed(str(exc)) from exc
        except CarecouchError as exc:
            _wipe_if_revoked(ctx)
            raise _Failed(str(exc)) from exc
        except click.exceptions.Exit:
            _wipe_if_revoked(ctx)
            raise
        _wipe_if_revoked(ctx)
        return result


def _wipe_if_revoked(ctx: click.Context) -> None:
    """A lost or stolen device must not keep patient data or keys once the bridge has said
    so: wipe now, after the operation that heard it has stopped using the store."""
    device = ctx.obj
    if isinstance(device, DeviceContext) and device.revoked is not None:
        reason = device.revoked
        device.wipe()
        raise _Failed(f"{reason} — so this device has wiped its store (keys, credentials "
                      "and every record on it)")


@click.group(cls=_DeviceGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="carecouch-device")
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path),
              help=f"The device's encrypted store file (default: $CARECOUCH_DEVICE_STORE, "
                   f"else {DEFAULT_STORE}).")
@click.option("--json", "as_json", is_flag=True, help="Print data as JSON.")
@click.pass_context
def main(ctx: click.Context, store_path: Path | None, as_json: bool) -> None:
    """carecouch-device: the reference field device (offline store, replication).

    Start with `init`, then `enrol --bridge URL` and `login` (identity token from --token or
    CARECOUCH_DEVICE_IDP_TOKEN). A store that is not enrolled syncs as CARECOUCH_DEVICE_USER /
    CARECOUCH_DEVICE_PASSWORD (development). The store's passphrase comes from
    CARECOUCH_DEVICE_PASSPHRASE or a prompt. Variables may also come from ./.env (or the file
    named by CARECOUCH_ENV_FILE).
    """
    load_env_file()  # before anything reads the environment
    if store_path is None:
        store_path = Path(os.environ.get("CARECOUCH_DEVICE_STORE") or DEFAULT_STORE)
    device = DeviceContext(store_path, as_json=as_json)
    ctx.obj = device
    ctx.call_on_close(device.close)


def _json_too(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    device = ctx.find_object(DeviceContext)
    if value and device is not None:
        device.as_json = True


def _accept_json(command: click.Command) -> None:
    """``--json`` after any command, as before it (``carecouch-device --json status``)."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _accept_json(sub)
    elif not any("--json" in p.opts for p in command.params if isinstance(p, click.Option)):
        command.params.append(click.Option(
            ["--json"], is_flag=True, expose_value=False, callback=_json_too,
            help="Print data as JSON (as `carecouch-device --json` does)."))


for command in (cmd_store.init, cmd_store.wipe, cmd_store.offline, cmd_store.online,
                cmd_bridge.enrol, cmd_bridge.login, cmd_bridge.break_glass, cmd_lease.lease,
                cmd_sync.sync, cmd_sync.retry, cmd_sync.discard, cmd_sync.correct,
                cmd_records.status, cmd_records.show, cmd_records.put, cmd_records.attachment,
                cmd_record.record):
    main.add_command(command)
    _accept_json(command)

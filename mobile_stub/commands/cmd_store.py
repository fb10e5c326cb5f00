"""The store itself: ``init``, ``wipe``, and simulated connectivity ``offline`` / ``online``."""

from __future__ import annotations

import json

import click

from carecouch.couch import split_credentials

from ..replication import ReplicationFilter
from ..store import DeviceStore
from ..store.schema import sidecar_files
from .context import DeviceContext, pass_device, passphrase


@click.command()
@click.option("--server", "server_url", required=True, metavar="URL",
              help="CouchDB server the databases replicate with (no credentials in it).")
@click.option("--db", "databases", required=True, multiple=True, metavar="NAME",
              help="Database to hold a copy of (repeatable), e.g. caseload_north-1.")
@click.option("--filter", "design_filter", metavar="DDOC/NAME",
              help="Pull through this design-document filter.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Query parameter for --filter (repeatable).")
@click.option("--selector", metavar="JSON", help="Pull only documents matching this Mango "
              "selector (filter=_selector).")
@pass_device
def init(ctx: DeviceContext, server_url: str, databases: tuple[str, ...],
         design_filter: str | None, params: tuple[str, ...], selector: str | None) -> None:
    """Create the encrypted store (asks for a passphrase, or CARECOUCH_DEVICE_PASSPHRASE)."""
    base = _checked_url(server_url)
    replication_filter = _filter(design_filter, params, selector)
    store = DeviceStore.create(ctx.store_path, passphrase(confirm=True))
    try:
        for name in databases:
            store.add_database(name, base, replication_filter.canonical()
                               if replication_filter else None)
        ctx.emit({"store": str(ctx.store_path), "device_id": store.device_id,
                  "server": base, "databases": list(databases)},
                 lambda d: f"created {d['store']} (device {d['device_id']}) holding "
                           f"{', '.join(d['databases'])} from {d['server']}")
    finally:
        store.close()


def _checked_url(url: str) -> str:
    try:
        base, user, password = split_credentials(url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--server") from exc
    if user or password:
        raise click.BadParameter("give the URL without credentials; they come from "
                                 "CARECOUCH_DEVICE_USER / CARECOUCH_DEVICE_PASSWORD",
                                 param_hint="--server")
    return base


def _filter(name: str | None, params: tuple[str, ...], selector: str | None
            ) -> ReplicationFilter | None:
    if name and selector:
        raise click.UsageError("give --filter or --selector, not both")
    try:
        if selector:
            return ReplicationFilter.mango(json.loads(selector))
        if name:
            pairs = [p.split("=", 1) for p in params]
            if any(len(pair) != 2 for pair in pairs):
                raise click.BadParameter("use KEY=VALUE", param_hint="--param")
            return ReplicationFilter.design(name, **{k: v for k, v in pairs})
    except ValueError as exc:  # bad JSON or a malformed filter
        raise click.UsageError(str(exc)) from exc
    if params:
        raise click.UsageError("--param needs --filter")
    return None


@click.command()
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Say what would be destroyed, destroy nothing.")
@pass_device
def wipe(ctx: DeviceContext, yes: bool, dry_run: bool) -> None:
    """Destroy the store's key and then every file of the store. Irreversible."""
    files = [p for p in [ctx.store_path, *sidecar_files(ctx.store_path)] if p.exists()]
    store = ctx.store(unlock=False)
    if dry_run:
        ctx.emit({"would_destroy": [str(p) for p in files]},
                 lambda d: "would destroy: " + ", ".join(d["would_destroy"]))
        return
    if not yes:
        click.confirm(f"Destroy the device store at {ctx.store_path} and every unsynced "
                      "record in it?", abort=True, err=True)
    store.wipe()
    ctx._store = None
    ctx.emit({"wiped": str(ctx.store_path)}, lambda d: f"wiped {d['wiped']}")


@click.command()
@pass_device
def offline(ctx: DeviceContext) -> None:
    """Simulate no network: the replicator refuses to send anything until `online`."""
    ctx.store(unlock=False).set_offline(True)
    ctx.emit({"offline": True}, lambda _: "offline: sync will not use the network")


@click.command()
@pass_device
def online(ctx: DeviceContext) -> None:
    """Leave offline mode."""
    ctx.store(unlock=False).set_offline(False)
    ctx.emit({"offline": False}, lambda _: "online")

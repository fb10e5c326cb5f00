"""The store itself: ``init``, ``wipe``, and simulated connectivity ``offline`` / ``online``."""

from __future__ import annotations

import json

import click

from carecouch import prompts
from carecouch.couch import Timeouts
from carecouch.errors import CarecouchError, ConfigError
from carecouch.records import load_registry

from ..device import Device
from ..replication import ReplicationFilter, ReplicatorOptions, RetryPolicy
from ..rules import DeviceRules
from ..store import DeviceStore
from ..store.schema import sidecar_files
from .context import DeviceContext, checked_url, credentials_from_env, pass_device, passphrase


@click.command()
@click.option("--server", "server_url", metavar="URL",
              help="CouchDB server the databases replicate with (no credentials in it). "
                   "Not for a device that will enrol: the bridge names them.")
@click.option("--db", "databases", multiple=True, metavar="NAME",
              help="Database to hold a copy of (repeatable), e.g. caseload_north-1.")
@click.option("--filter", "design_filter", metavar="DDOC/NAME",
              help="Pull through this design-document filter.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Query parameter for --filter (repeatable).")
@click.option("--selector", metavar="JSON", help="Pull only documents matching this Mango "
              "selector (filter=_selector).")
@pass_device
def init(ctx: DeviceContext, server_url: str | None, databases: tuple[str, ...],
         design_filter: str | None, params: tuple[str, ...], selector: str | None) -> None:
    """Create the encrypted store (asks for a passphrase, or CARECOUCH_DEVICE_PASSPHRASE).

    Then either `enrol` with the bridge (which names the databases), or, for development
    against a plain CouchDB, give --server and --db here."""
    if bool(server_url) != bool(databases):
        raise click.UsageError("give --server and --db together (or neither, and enrol "
                               "with the bridge)")
    base = checked_url(server_url, "--server", "CARECOUCH_DEVICE_USER / "
                       "CARECOUCH_DEVICE_PASSWORD") if server_url else ""
    replication_filter = _filter(design_filter, params, selector)
    if replication_filter and not databases:
        raise click.UsageError("--filter and --selector need --db")
    store = DeviceStore.create(ctx.store_path, passphrase(confirm=True))
    try:
        for name in databases:
            store.add_database(name, base, replication_filter.canonical()
                               if replication_filter else None)
        rules = _learn_rules(store, databases)
        ctx.emit({"store": str(ctx.store_path), "device_id": store.device_id,
                  "server": base or None, "databases": list(databases), "rules": rules},
                 lambda d: f"created {d['store']} (device {d['device_id']})" + (
                     f" holding {', '.join(d['databases'])} from {d['server']}"
                     if d["databases"] else "; next: carecouch-device enrol --bridge URL"))
    finally:
        store.close()


def _learn_rules(store: DeviceStore, databases: tuple[str, ...]) -> dict[str, str]:
    """Read each database's rules now, if the server answers at once, so the first edit is
    checked as the server will check it; otherwise the shipped rules stand in until the
    first sync (mobile_stub/rules.py)."""
    sources: dict[str, str] = {}
    try:
        device = Device(store, credentials_from_env(),
                        options=ReplicatorOptions(retry=RetryPolicy(attempts=1),
                                                  timeouts=Timeouts(connect=3.0, read=10.0)))
    except ConfigError:
        device = None
    for name in databases:
        if device is not None:
            try:
                device.learn_rules(name)
            except (CarecouchError, OSError):
                pass
        sources[name] = DeviceRules(store, load_registry()).source(name)
    return sources


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
    ctx.store(unlock=False)  # no store (or a wiped one) is an error, even for a dry run
    if dry_run:
        ctx.emit({"would_destroy": [str(p) for p in files]},
                 lambda d: "would destroy: " + ", ".join(d["would_destroy"]))
        return
    if not yes:
        prompts.confirm(f"Destroy the device store at {ctx.store_path} and every unsynced "
                        "record in it?", "not confirmed; the store was kept")
    ctx.wipe()
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

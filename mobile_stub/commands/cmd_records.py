"""Looking and saving whole documents: ``status``, ``show`` and ``put`` (``record`` edits
field by field)."""

from __future__ import annotations

import json
from typing import Any

import click

from carecouch.cli_support import plural
from carecouch.records import load_registry

from .. import reports as fleet_reports
from ..replication import checkpoint_restarts, last_sync, recovery
from ..store import Rejections
from ..working_set import REASON_TEXT, removal_record
from .context import DeviceContext, db_option, pass_device


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@pass_device
def status(ctx: DeviceContext, as_json: bool) -> None:
    """Pending changes, last sync, refused writes and conflicts of every database; for an
    enrolled device, the credential and snapshot expiry, the offline-window deadline and the
    leases held."""
    ctx.as_json = ctx.as_json or as_json
    store = ctx.store()
    registry = load_registry()
    removed = removal_record(store)
    data: dict[str, Any] = {"device_id": store.device_id, "offline": store.offline,
                            "clock_offset_ms": store.clock_offset_ms, "databases": [],
                            "bridge": ctx.session().describe() if ctx.enrolled() else None,
                            "released": {name: entry for name, entry in removed.items()
                                         if entry.get("released")},
                            "sync_reports_queued": len(fleet_reports.queued(store))}
    for name in store.database_names():
        local = store.database(name)
        data["databases"].append({
            "name": name, "server": local.server_url,
            "filter": json.loads(local.filter_json) if local.filter_json else None,
            **local.counts(), "conflicts": local.conflicted_ids(),
            "rejected": [{**r.to_json(), "ways_out": recovery.ways_out(r, registry)}
                         for r in Rejections(local).list()],
            "last_sync": last_sync(store, name),
            "checkpoint_restarts": checkpoint_restarts(store, name),
            "removed": removed.get(name, {"total": {}})})
    ctx.emit(data, _status_text)


RESTART_REASONS = {
    "server_missing": "the server's copy of the checkpoint was gone (deleted, or the "
                      "database was recreated)",
    "server_altered": "the server's copy of the checkpoint was not the one this device wrote "
                      "(someone else rewrote it; ask IT to look)",
}


def _status_text(data: dict[str, Any]) -> str:
    lines = [f"device {data['device_id']}: {'OFFLINE' if data['offline'] else 'online'}, "
             f"server clock offset {data['clock_offset_ms']} ms, "
             f"{data['sync_reports_queued']} sync reports waiting for the bridge"]
    if data["bridge"]:
        lines += _bridge_text(data["bridge"])
    for db in data["databases"]:
        last = db["last_sync"]
        when = f"{last['state']} at {last['ended_at']}" if last else "never"
        lines.append(f"{db['name']} ({db['server']}): {plural(db['docs'], 'doc')}, "
                     f"{db['conflicted']} "
                     f"conflicted; this device's edits: {db['saved']} saved, {db['sent']} "
                     f"sent, {db['confirmed']} confirmed, {db['refused']} refused; last sync "
                     f"{when}")
        if last and last.get("message"):
            lines.append(f"  last sync: {last['message']}")
        lines += [f"  checkpoint: {e['direction']} at {e['at']} started from the beginning: "
                  f"{RESTART_REASONS.get(e['trust'], e['trust'])}"
                  for e in db["checkpoint_restarts"]]
        lines += _removed_text(db["removed"])
        lines += [f"  conflict: {doc_id}" for doc_id in db["conflicts"]]
        lines += [f"  refused: {r['id']} {r['rev']}: {r['reason']} (way out: "
                  f"{' | '.join(r['ways_out'])})" for r in db["rejected"]]
    for name, entry in data["released"].items():
        lines.append(f"{name}: no longer granted; its records were removed from this device "
                     f"at {entry['last']['at']} ({plural(entry['last']['records'], 'record')})")
    return "\n".join(lines)


def _removed_text(removed: dict[str, Any]) -> list[str]:
    """What minimisation took off the device (mobile_stub/working_set.py), and why."""
    total = removed.get("total") or {}
    parts = [f"{count} {REASON_TEXT[reason]}" for reason, count in sorted(total.items())
             if count]
    lines = [f"  removed from this device: {', '.join(parts)}"] if parts else []
    last = removed.get("last") or {}
    if last.get("held_back"):
        lines.append("  kept although outside the working set: "
                     f"{plural(last['held_back'], 'record')} with changes the server has not "
                     "confirmed (removed once it has)")
    return lines


def _bridge_text(bridge: dict[str, Any]) -> list[str]:
    head = f"bridge {bridge['bridge']}: "
    if not bridge["logged_in"]:
        return [head + "enrolled, not logged in (run `carecouch-device login`)"]
    lines = [head + f"logged in as {bridge['username']}, credentials expire "
             f"{bridge['credential_expires_at']}"
             + (" (EXPIRED)" if bridge.get("credential_expired") else "")]
    if "snapshot_error" in bridge:
        return [*lines, f"  policy snapshot REFUSED: {bridge['snapshot_error']}; log in again"]
    snapshot = bridge["snapshot"]
    lines.append(f"  policy {snapshot['policy_version']} issued {snapshot['issued_at']}; "
                 f"offline work allowed until {bridge['offline_until']}"
                 + (" (PASSED: log in again)" if bridge["offline_window_passed"] else ""))
    lines.append(f"  may write: {', '.join(snapshot['record_types']) or 'nothing'}")
    lines += [f"  lease: {held['record']} until {held['expires_at']}" if "error" not in held
              else f"  lease: {held['record']}: {held['error']}" for held in bridge["leases"]]
    lines += [f"  BREAK-GLASS access to {g['caseload']} at {g['at']}: REVIEW PENDING"
              if g["review"] == "pending" else
              f"  break-glass access to {g['caseload']} at {g['at']}: reviewed, {g['review']}"
              for g in bridge.get("break_glass", [])]
    return lines


@click.command()
@click.argument("doc_id")
@db_option
@click.option("--rev", metavar="REV", help="A leaf revision (default: the winner).")
@pass_device
def show(ctx: DeviceContext, doc_id: str, database: str | None, rev: str | None) -> None:
    """Print a record with its conflicts, and where this device's edit of it stands: saved
    on the device, sent, confirmed (the server holds it) or refused (and why)."""
    local = ctx.store().database(ctx.database(database))
    doc = local.get(doc_id, rev, conflicts=True)
    state = local.state(doc_id, doc["_rev"])
    refused = [r for r in Rejections(local).list() if r.doc_id == doc_id and
               r.rev == doc["_rev"]]
    data = {"record": doc, "state": str(state) if state else "from the server",
            "refusal": refused[0].to_json() if refused else None,
            "body_on_device": len(doc) > 2 or bool(doc.get("_deleted"))}
    ctx.emit(data, _show_text)


STATES = {
    "saved": "saved on this device, not yet sent",
    "sent": "sent; the server has not yet confirmed it",
    "confirmed": "confirmed: the server holds this revision",
    "refused": "REFUSED by the server",
    "from the server": "as the server has it",
}


def _show_text(data: dict[str, Any]) -> str:
    doc = data["record"]
    head = f"{doc['_id']} {doc['_rev']}: {STATES[data['state']]}"
    if data["refusal"]:
        head += f" ({data['refusal']['reason']})"
    if not data["body_on_device"]:
        head += "; its content is read back from the server at the next sync"
    return head + "\n" + json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False)


@click.command()
@click.argument("source", type=click.File("r"), default="-")
@db_option
@pass_device
def put(ctx: DeviceContext, source: Any, database: str | None) -> None:
    """Save a record from JSON (file or stdin) as a local edit; no _id: a new record of its
    type. Stamps at, clock_offset_ms, device and author."""
    try:
        doc = json.load(source)
    except ValueError as exc:
        raise click.UsageError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise click.UsageError("a record is a JSON object")
    device = ctx.device()
    name = ctx.database(database)
    if "_id" not in doc:
        if not isinstance(doc.get("type"), str):
            raise click.UsageError("a new record needs a string `type` (its id is <type>:<uuid>)")
        saved = device.new_record(name, doc.pop("type"), doc)
        result = {"id": saved["_id"], "rev": saved["_rev"]}
    else:
        result = {"id": doc["_id"], "rev": device.edit(name, doc)}
    ctx.emit(result, lambda r: f"{r['id']} {r['rev']}")


@click.command()
@click.argument("doc_id")
@click.argument("name")
@click.option("--out", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, writable=True, allow_dash=True),
              help="Where to write the data ('-': standard output).")
@db_option
@pass_device
def attachment(ctx: DeviceContext, doc_id: str, name: str, out: str,
               database: str | None) -> None:
    """Write an attachment of a record (a wound photo) to FILE. Once the policy's attachment
    retention has taken its data off this device, it is fetched from the server again
    (online) and kept for another retention period."""
    content = ctx.device().attachment(ctx.database(database), doc_id, name)
    with click.open_file(out, "wb") as sink:
        sink.write(content)
    if out != "-":
        ctx.emit({"id": doc_id, "attachment": name, "bytes": len(content), "out": out},
                 lambda d: f"wrote {plural(d['bytes'], 'byte')} of {d['attachment']} to "
                           f"{d['out']}")

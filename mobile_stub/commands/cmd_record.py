"""``record new|update|complete``: a clinician's work, field by field (``put`` saves a whole
JSON document). Every edit is stamped and checked against the policy by the library."""

from __future__ import annotations

from typing import Any

import click

from .. import leases
from .context import DeviceContext, db_option, field_values, pass_device

_set_option = click.option(
    "--set", "values", multiple=True, metavar="FIELD=VALUE",
    help="FIELD=VALUE (repeatable); VALUE is read as JSON when it is JSON (71, true, "
         "[\"a\"]) and as text otherwise.")


# The NEWS2 chart's clinical response to each band (Royal College of Physicians, 2017).
RESPONSES = {
    "low": "low: continue routine monitoring; a registered nurse assesses (score 1-4)",
    "low-medium": "LOW-MEDIUM: a 3 in one parameter; urgent review by a clinician able to "
                  "escalate, monitor at least hourly",
    "medium": "MEDIUM: urgent response: review by a clinician competent in acute illness, "
              "monitor at least hourly",
    "high": "HIGH: emergency response: review by a critical-care team, continuous "
            "monitoring",
}


def _saved(ctx: DeviceContext, doc_id: str, rev: str,
           news2: dict[str, Any] | None = None) -> None:
    data: dict[str, Any] = {"id": doc_id, "rev": rev}
    if news2 is not None:
        data["news2"] = news2
    ctx.emit(data, lambda r: f"{r['id']} {r['rev']}")
    if news2 is not None and (news2["response"] != "low" or not ctx.as_json):
        # Flagged at once, offline: the score is worked out on the device.
        click.echo(f"NEWS2 {news2['score']} — {RESPONSES[news2['response']]}", err=True)


@click.group()
def record() -> None:
    """Record clinical work: new records, care-plan updates, completing a leased record."""


@record.command()
@click.argument("record_type")
@click.option("--subject", required=True, metavar="PATIENT",
              help="The patient the record is about, e.g. patient-0042.")
@_set_option
@db_option
@pass_device
def new(ctx: DeviceContext, record_type: str, subject: str, values: tuple[str, ...],
        database: str | None) -> None:
    """Create a record of RECORD_TYPE (e.g. observation) with the fields given.

    It is checked at once by the caseload's own record rules, which the server will run on
    it; a refusal names every problem and nothing is saved. An observation's NEWS2 is worked
    out from its vitals (leave `news2` out) and its clinical response shown.

    Exclusive records (order sign-offs, controlled-drug checks) are created by the bridge, so
    this needs the network for them; claim the lease next (`lease claim`)."""
    device, fields = ctx.device(), field_values(values)
    spec = device.registry.types.get(record_type)
    if spec is not None and spec.record_class == "exclusive" and ctx.enrolled():
        saved = leases.create(ctx.session(), device, ctx.database(database), record_type,
                              subject, fields)
    else:
        saved = device.new_record(ctx.database(database), record_type,
                                  {**fields, "subject": subject})
    _saved(ctx, saved["_id"], saved["_rev"], device.news2(ctx.database(database), saved))


@record.command()
@click.argument("doc_id")
@_set_option
@click.option("--unset", "remove", multiple=True, metavar="FIELD",
              help="A field to remove (repeatable).")
@db_option
@pass_device
def update(ctx: DeviceContext, doc_id: str, values: tuple[str, ...], remove: tuple[str, ...],
           database: str | None) -> None:
    """Change fields of a record, e.g. a care plan (each change is stamped with who and
    when, as the record rules require)."""
    if not values and not remove:
        raise click.UsageError("nothing to change: give --set or --unset")
    rev = ctx.device().update(ctx.database(database), doc_id, field_values(values), remove)
    _saved(ctx, doc_id, rev)


@record.command()
@click.argument("doc_id")
@click.option("--status", required=True, metavar="STATUS",
              help="The terminal status, e.g. signed, witnessed.")
@_set_option
@db_option
@pass_device
def complete(ctx: DeviceContext, doc_id: str, status: str, values: tuple[str, ...],
             database: str | None) -> None:
    """Complete an exclusive record you hold a lease on (works offline; the lease token is
    checked on the device, and again by the server when it syncs)."""
    rev = ctx.device().complete(ctx.database(database), doc_id, status, field_values(values))
    _saved(ctx, doc_id, rev)

"""``carecouch audit verify``: which revisions no enrolled device (or the bridge) provably
wrote (added to ``carecouch audit``)."""

from __future__ import annotations

import click

from carecouch.conflicts.finder import caseload_scope
from carecouch.conflicts.trail import read_trail
from carecouch.errors import CouchForbidden, CouchUnauthorized
from carecouch.records import load_registry
from carecouch.signer_keys import signer_keys
from carecouch.verify import Accounted, Report, verify_caseload

from .context import AppContext, pass_app
from .errors import CommandFailed
from .output import (
    caseloads_option,
    echo_json,
    echo_table,
    json_option,
    progress,
    quiet_option,
    since_option,
)


@click.command()
@caseloads_option
@since_option("revisions dated")
@json_option
@quiet_option
@pass_app
def verify(app: AppContext, caseloads: tuple[str, ...], since: str | None, as_json: bool,
           quiet: bool) -> None:
    """Check every revision against the enrolled devices' keys (and the bridge's): list the
    unsigned, unknown-key and bad-signature ones; exit 1 when there is any.

    Revisions conflict review wrote are accounted for by their resolutions. Needs a server
    admin (the device registry and the audit trail are admin only).
    """
    try:
        keys = signer_keys(app.client)
    except (CouchUnauthorized, CouchForbidden) as exc:
        raise CommandFailed("audit verify reads the device registry, which only server admins "
                            f"can ({exc.reason})") from exc
    registry = load_registry()
    scope = caseload_scope(app.client, caseloads)
    trail = read_trail(app.client, scope)
    report = Report()
    with progress(len(scope), "checking caseloads", quiet=quiet) as tick:
        for caseload in scope:
            accounted = Accounted.of([e for e in trail.entries if e.caseload == caseload])
            verify_caseload(app.client, caseload, keys, accounted, registry, report,
                            since=since)
            tick()
    if as_json:
        echo_json({"checked": report.checked, "counts": report.counts,
                   "flagged": [f.to_json() for f in report.flagged]})
    else:
        if report.flagged:
            echo_table(["CASELOAD", "DOCUMENT", "REV", "PROVENANCE", "AUTHOR", "DEVICE", "AT",
                        "WHY"],
                       [[f.caseload, f.doc_id, f.rev, f.kind, f.author, f.device, f.at,
                         f.reason] for f in report.flagged])
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(report.counts.items()))
        click.echo(f"{report.checked} revision{'' if report.checked == 1 else 's'} checked"
                   + (f": {counts}" if counts else ""))
    if report.flagged:
        raise CommandFailed(f"{len(report.flagged)} revision"
                            f"{'' if len(report.flagged) == 1 else 's'} not provably from the "
                            "device they name")

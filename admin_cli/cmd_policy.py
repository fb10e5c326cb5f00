"""``carecouch policy``: check the bridge's access-policy file, explain what a user gets.

Thin: the policy model and its checks are :mod:`carecouch.policy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import click

from carecouch.cli_support import plural
from carecouch.policy import Grant, load_policy
from carecouch.policy_file import format_duration
from carecouch.registry import CaseloadRegistry
from carecouch.working_set import Scope, grant_scope, over_limits

from .context import AppContext, pass_app
from .output import echo_json, human_size, json_option

POLICY_VARIABLE = "CARECOUCH_BRIDGE_POLICY"


@click.group()
def policy() -> None:
    """Check the bridge's access policy and explain what it grants (docs/bridge.md)."""


@policy.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@json_option
def check(file: Path, as_json: bool) -> None:
    """Check policy FILE completely, offline; a mistake is reported with its line.

    Exit 0 when the bridge would accept it, 1 when not.
    """
    loaded = load_policy(file)
    if as_json:
        echo_json({"file": str(file), "ok": True, "version": loaded.version,
                   "rules": [r.name for r in loaded.rules]})
        return
    click.echo(f"{file}: OK (version {loaded.version}, {plural(len(loaded.rules), 'rule')}, "
               f"credentials {format_duration(loaded.credential_lifetime)}, offline "
               f"{format_duration(loaded.offline_grace)})")


@policy.command()
@click.argument("user")
@click.option("--group", "groups", multiple=True, metavar="NAME",
              help="An identity-provider group the user is in (repeatable).")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False, exists=True,
                                                         path_type=Path),
              envvar=POLICY_VARIABLE, required=True,
              help=f"The policy file (default: ${POLICY_VARIABLE}).")
@json_option
@pass_app
def explain(app: AppContext, user: str, groups: tuple[str, ...], policy_file: Path,
            as_json: bool) -> None:
    """What USER (in the --group groups) would get from the bridge, and why.

    Reads the caseloads (and their teams) from the registry on the server.
    """
    loaded = load_policy(policy_file)
    grant = loaded.evaluate(user, groups, CaseloadRegistry(app.client).caseloads())
    scopes = grant_scope(app.client, grant, loaded.registry, datetime.now(UTC))
    if as_json:
        echo_json({"policy_version": loaded.version, **grant.as_json(),
                   "scope": {c: v.to_json() for c, v in scopes.items()},
                   "over_limits": over_limits(grant, scopes)})
        return
    _print(grant, loaded.version, scopes)


def _print(grant: Grant, version: str, scopes: Mapping[str, Scope]) -> None:
    def line(key: str, value: object) -> None:
        click.echo(f"{key:<20} {value}")

    line("user", f"{grant.user} (groups: {', '.join(grant.groups) or '-'})")
    line("policy version", version)
    line("matching rules", ", ".join(grant.rules) or "none: no credentials")
    line("clinical roles", (", ".join(grant.clinical_roles) or "-")
         + (" (each in the caseloads of the rule that grants it)" if grant.caseloads else ""))
    line("resolver", "yes" if grant.resolver else "no")
    narrowed = " (narrowed below what the roles admit)" if grant.narrowed else ""
    line("record types", (", ".join(grant.record_types) or "-") + narrowed)
    line("credentials last", format_duration(grant.credential_lifetime))
    line("offline for", format_duration(grant.offline_grace))
    line("leases last", format_duration(grant.lease_lifetime))
    glass = f"yes, for {format_duration(grant.break_glass_lifetime)}" if grant.break_glass \
        else "no"
    line("break-glass", glass)
    line("policy admin", "yes" if grant.admin else "no")
    line("CouchDB roles", ", ".join(grant.couch_roles()) or "-")
    for caseload in grant.caseloads.values():
        f = caseload.filter
        window = f"from the last {format_duration(f.time_window)}" if f.time_window \
            else "of all time"
        click.echo(f"caseload {caseload.id}: as {', '.join(caseload.clinical_roles) or '-'}"
                   + (" and resolver" if caseload.resolver else "")
                   + f", may write {', '.join(caseload.record_types) or 'nothing'}"
                   + (" (narrowed)" if caseload.narrowed else ""))
        click.echo(f"  holds types {', '.join(f.types) if f.types else 'all'}"
                   f"; append-only records {window}"
                   + (f"; pinned {', '.join(f.pinned_subjects)}" if f.pinned_subjects else ""))
        held = scopes.get(caseload.id)
        if held is not None:
            click.echo(f"  a device would hold {plural(held.documents, 'document')}, "
                       f"{human_size(held.bytes)}")
        for reason in caseload.reasons:
            click.echo(f"  because {reason}")
    caps = [plural(grant.limits["max_documents"], "document")] \
        if "max_documents" in grant.limits else []
    if "max_bytes" in grant.limits:
        caps.append(plural(grant.limits["max_bytes"], "byte"))
    if caps:
        line("device cap", "at most " + " and ".join(caps) + " (all caseloads)")
    for problem in over_limits(grant, scopes):
        click.echo(f"TOO LARGE: a device would hold {problem}: the bridge refuses credentials")
    for text in grant.notes:
        click.echo(f"note: {text}")

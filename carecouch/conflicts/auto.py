"""``conflicts auto``'s plan: what the policy resolves in each caseload, and what it leaves.

Caseloads are read a few at a time; one that cannot be read, or a record the policy cannot
plan, is reported and does not stop the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from carecouch.couch import CouchClient
from carecouch.errors import CarecouchError
from carecouch.parallel import DEFAULT_WORKERS, map_parallel
from carecouch.records import Registry

from .branches import Conflict
from .errors import ConflictReviewError
from .finder import read_caseload
from .identity import Resolver
from .plan import Plan, plan_auto
from .policy import Decision, decide


@dataclass
class AutoPlan:
    plans: list[Plan] = field(default_factory=list)
    review: list[dict[str, Any]] = field(default_factory=list)  # left for a person
    errors: dict[str, str] = field(default_factory=dict)  # caseload -> why it was not read


def _review(conflict: Conflict, decision: Decision, reason: str | None = None
            ) -> dict[str, Any]:
    return {"caseload": conflict.caseload, "doc": conflict.doc_id,
            "class": conflict.record_class, "action": decision.label,
            "reason": reason or decision.reason, "proposal": decision.proposal}


def plan_caseloads(client: CouchClient, caseloads: Sequence[str], registry: Registry, *,
                   resolver: Resolver, now: str, workers: int = DEFAULT_WORKERS,
                   tick: Callable[[], None] | None = None) -> AutoPlan:
    def one(caseload: str) -> list[Conflict]:
        return read_caseload(client, caseload, registry, for_writing=True)

    out = AutoPlan()
    results = map_parallel(one, list(caseloads), workers=workers, tick=tick)
    for caseload, result in zip(caseloads, results, strict=True):
        if isinstance(result, CarecouchError):
            out.errors[caseload] = str(result)
            continue
        for conflict in result:
            decision = decide(conflict, registry)
            try:
                plan = plan_auto(conflict, registry, resolver=resolver, now=now,
                                 decision=decision)
            except ConflictReviewError as exc:  # e.g. a record an admin wrote by hand
                out.review.append(_review(conflict, decision, f"cannot be planned: {exc}"))
                continue
            if plan is None:
                out.review.append(_review(conflict, decision))
            else:
                out.plans.append(plan)
    return out

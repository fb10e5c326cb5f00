"""Revision arithmetic shared by the store and the replicator (CouchDB's MVCC rules).

A revision is ``<pos>-<id>``: ``pos`` counts edits from 1, ``id`` identifies the edit. A document
is a tree of revisions; its leaves are the current versions (more than one live leaf is a
conflict). These functions are pure, so the rules are tested and read in one place.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class Leaf:
    """A leaf revision with what the winner rule needs."""

    rev: str
    deleted: bool = False


def parse_rev(rev: str) -> tuple[int, str]:
    """``"3-abc"`` -> ``(3, "abc")``; ``ValueError`` for anything else."""
    pos, sep, rev_id = rev.partition("-")
    if not sep or not rev_id or not pos.isdigit() or int(pos) < 1:
        raise ValueError(f"not a revision: {rev!r}")
    return int(pos), rev_id


def rev_pos(rev: str) -> int:
    return parse_rev(rev)[0]


def winner_key(leaf: Leaf) -> tuple[bool, int, str]:
    """CouchDB's order: a live leaf beats a deleted one, then higher pos, then higher id."""
    pos, rev_id = parse_rev(leaf.rev)
    return (not leaf.deleted, pos, rev_id)


def winning_leaf(leaves: Iterable[Leaf]) -> Leaf:
    return max(leaves, key=winner_key)


def conflicts(leaves: Iterable[Leaf]) -> list[str]:
    """The live leaves that lost (CouchDB's ``_conflicts``), best first."""
    ordered = sorted(leaves, key=winner_key, reverse=True)
    return [leaf.rev for leaf in ordered[1:] if not leaf.deleted]


def revisions_path(revisions: Mapping[str, Any]) -> list[str]:
    """A ``_revisions`` object -> full revisions, newest first."""
    start = int(revisions["start"])
    return [f"{start - i}-{rev_id}" for i, rev_id in enumerate(revisions["ids"])]


def revisions_object(path: list[str]) -> dict[str, Any]:
    """Newest-first full revisions -> ``_revisions`` (``{"start": pos, "ids": [...]}``)."""
    return {"start": rev_pos(path[0]), "ids": [parse_rev(rev)[1] for rev in path]}


def new_rev(parent: str | None, body: Mapping[str, Any], deleted: bool) -> str:
    """The revision for an edit: next ``pos``, id = md5 of parent, deletion flag and body.

    Deterministic like CouchDB's (not byte-identical to it): the same edit of the same parent
    yields the same revision everywhere, so identical duplicates collapse instead of
    conflicting.
    """
    pos = rev_pos(parent) + 1 if parent else 1
    canonical = json.dumps([parent, deleted, body], sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return f"{pos}-{hashlib.md5(canonical.encode('utf-8')).hexdigest()}"

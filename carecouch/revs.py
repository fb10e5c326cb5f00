"""Revision arithmetic (CouchDB's MVCC rules), for the device and for conflict resolution.

A revision is ``<pos>-<id>``: ``pos`` counts edits from 1, ``id`` identifies the edit. A document
is a tree of revisions; its leaves are the current versions (more than one live leaf is a
conflict). These functions are pure, so the rules are tested and read in one place.

Two recipes make a revision id, and they must stay as they are:

- :func:`new_rev`, the device's (``mobile_stub``): md5 of the canonical JSON of
  ``[parent, deleted, body]``, ``body`` without ``_id``. Deterministic like CouchDB's and
  PouchDB's own (not byte-identical to them): the same edit of the same parent yields the same
  revision on any device, so identical duplicates collapse instead of conflicting.
- :func:`child`, conflict resolution's (:mod:`carecouch.conflicts`): resolution writes with
  ``new_edits=false`` and makes each id itself, as a replicator does: md5 of the canonical JSON
  of ``{"parent", "deleted", "body"}`` with ``_id`` in the body, and the attachments' digests
  (not their data) when it writes attachments. So a tombstone or merged revision lands exactly
  on the leaf that was shown (an edit arriving meanwhile stays live beside it), the same
  resolution made on two servers replicates without a new conflict, and the resolution record
  can name ``written_rev`` before anything is written.

Both ids are already in the field (on devices and servers, in resolution records): changing
either recipe would turn a re-made edit or resolution into a new conflict, so they differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from carecouch.conflicts.attachments import signature
from carecouch.couch import Doc
from carecouch.ddocs import canonical_json

# What a revision carries besides what a clinician wrote.
META_FIELDS = frozenset({"_rev", "_revisions", "_conflicts", "_deleted_conflicts",
                         "_revs_info", "_local_seq", "_attachments"})


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


def rev_key(rev: str) -> tuple[int, str]:
    """CouchDB's order of leaves: the highest position wins, then the highest id."""
    return parse_rev(rev)


def winner_key(leaf: Leaf) -> tuple[bool, int, str]:
    """CouchDB's winner order: a live leaf beats a deleted one, then :func:`rev_key`."""
    return (not leaf.deleted, *rev_key(leaf.rev))


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


def history(body: Mapping[str, Any]) -> list[str]:
    """The revision ids of ``body``'s branch, newest first (from ``_revisions``)."""
    revisions = body.get("_revisions")
    if not isinstance(revisions, Mapping):
        return [str(body["_rev"])]
    return revisions_path(revisions)


def content(body: Mapping[str, Any]) -> Doc:
    """The body without revision metadata: what a clinician wrote (``_id`` included)."""
    return {k: v for k, v in body.items() if k not in META_FIELDS}


def new_rev(parent: str | None, body: Mapping[str, Any], deleted: bool) -> str:
    """The device's revision for an edit: next ``pos``, id = md5 of parent, deletion flag and
    body (the device's recipe, see the module's docstring)."""
    pos = rev_pos(parent) + 1 if parent else 1
    canonical = canonical_json([parent, deleted, body])
    return f"{pos}-{hashlib.md5(canonical.encode('utf-8')).hexdigest()}"


def child(parent: Mapping[str, Any], body: Mapping[str, Any] | None,
          attachments: Mapping[str, Any] | None = None) -> Doc:
    """A new revision on top of ``parent`` (read with ``revs=true``), ready for a
    ``new_edits=false`` write; ``body`` None makes a tombstone (resolution's recipe, see the
    module's docstring). ``attachments`` are written inline
    (:func:`carecouch.conflicts.attachments.inline`); their digests, not their data, go into
    the id."""
    parent_rev = str(parent["_rev"])
    pos = rev_pos(parent_rev)
    new = {} if body is None else content(body)
    new["_id"] = parent["_id"]
    facts: Doc = {"parent": parent_rev, "deleted": body is None, "body": new}
    if attachments:
        facts["attachments"] = signature({"_attachments": attachments})
    digest = hashlib.md5(canonical_json(facts).encode(), usedforsecurity=False).hexdigest()
    ids = [parse_rev(r)[1] for r in history(parent)]
    doc: Doc = {**dict(sorted(new.items())), "_rev": f"{pos + 1}-{digest}",
                "_revisions": {"start": pos + 1, "ids": [digest, *ids]}}
    if attachments:
        doc["_attachments"] = dict(attachments)
    if body is None:
        doc["_deleted"] = True
    return doc

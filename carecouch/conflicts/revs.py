"""Revision ids, histories, and the revisions conflict resolution writes.

Resolution writes with ``new_edits=false`` and makes each revision id itself, as a
replicator does, from the parent revision and the new body (``md5`` of their canonical JSON,
like CouchDB's own ids). So:

- a tombstone or merged revision lands exactly on the leaf that was shown, never on a later
  one: an edit that arrives meanwhile stays live beside it (nothing is clobbered);
- the same resolution of the same conflict yields the same revision ids on any machine, so
  two servers that resolved it independently replicate without a new conflict;
- the resolution record can name ``written_rev`` before anything is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from carecouch.couch import Doc
from carecouch.ddocs import canonical_json

from .attachments import signature

META_FIELDS = frozenset({"_rev", "_revisions", "_conflicts", "_deleted_conflicts",
                         "_revs_info", "_local_seq", "_attachments"})


def parse_rev(rev: str) -> tuple[int, str]:
    pos, _, digest = rev.partition("-")
    return int(pos), digest


def rev_key(rev: str) -> tuple[int, str]:
    """CouchDB's order of leaves: the highest position wins, then the highest id."""
    return parse_rev(rev)


def history(body: Mapping[str, Any]) -> list[str]:
    """The revision ids of ``body``'s branch, newest first (from ``_revisions``)."""
    revisions = body.get("_revisions")
    if not isinstance(revisions, Mapping):
        return [str(body["_rev"])]
    start = int(revisions["start"])
    return [f"{start - i}-{digest}" for i, digest in enumerate(revisions["ids"])]


def content(body: Mapping[str, Any]) -> Doc:
    """The body without revision metadata: what a clinician wrote (``_id`` included)."""
    return {k: v for k, v in body.items() if k not in META_FIELDS}


def child(parent: Mapping[str, Any], body: Mapping[str, Any] | None,
          attachments: Mapping[str, Any] | None = None) -> Doc:
    """A new revision on top of ``parent`` (read with ``revs=true``), ready for a
    ``new_edits=false`` write; ``body`` None makes a tombstone. ``attachments`` are written
    inline (:func:`.attachments.inline`); their digests, not their data, go into the id."""
    parent_rev = str(parent["_rev"])
    pos, _ = parse_rev(parent_rev)
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

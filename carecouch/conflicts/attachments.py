"""Attachments of conflicting revisions: compared by digest, kept whole, put back verbatim.

A branch's attachments (a wound photo, a scanned consent form) are clinical content as much as
its fields, and compaction removes a discarded revision's attachments with its body. So:

- two branches are the same record only if their attachments are the same (name, type,
  digest), not just their fields;
- revisions that a resolution writes or discards are read with ``attachments=true``; the
  resolution record keeps every discarded attachment's data as an attachment of its own, named
  by digest (the same photo on two branches is kept once), while the discarded bodies keep the
  server's stubs, which say which data was theirs;
- undo and merge write attachments inline, with the data, as a replicator does.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from carecouch.couch import Doc

from .errors import CannotResolve

FIELD = "_attachments"
Signature = dict[str, tuple[str, str]]  # name -> (content type, digest)


def entries(body: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    value = body.get(FIELD)
    return value if isinstance(value, Mapping) else {}


def digest_of(entry: Mapping[str, Any]) -> str:
    """The server's digest; computed as CouchDB does (md5 of the bytes) when absent."""
    digest = entry.get("digest")
    if isinstance(digest, str):
        return digest
    raw = base64.b64decode(str(entry.get("data", "")))
    md5 = hashlib.md5(raw, usedforsecurity=False).digest()
    return "md5-" + base64.b64encode(md5).decode()


def signature(body: Mapping[str, Any]) -> Signature:
    return {name: (str(e.get("content_type")), digest_of(e))
            for name, e in entries(body).items()}


def inline(body: Mapping[str, Any]) -> Doc:
    """``body``'s attachments as a ``new_edits=false`` write sends them: with their data."""
    out: Doc = {}
    for name, entry in sorted(entries(body).items()):
        if "data" not in entry:
            raise CannotResolve(f"attachment {name} of {body.get('_rev')} was read without its "
                                "data; nothing was written (a bug: report it)")
        out[name] = {k: entry[k] for k in ("content_type", "data", "revpos") if k in entry}
    return out


def _stub(entry: Mapping[str, Any]) -> Doc:
    stub: Doc = {k: entry[k] for k in ("content_type", "revpos", "length") if k in entry}
    stub["digest"] = digest_of(entry)
    if "length" not in stub and "data" in entry:
        stub["length"] = len(base64.b64decode(str(entry["data"])))
    stub["stub"] = True
    return stub


def split(bodies: Sequence[Mapping[str, Any]]) -> tuple[list[Doc], Doc]:
    """Bodies with stubs in place of data, and the data by digest (a record's attachments)."""
    kept: list[Doc] = []
    store: Doc = {}
    for body in bodies:
        data = inline(body)  # refuses a body read without its attachments' data
        doc = dict(body)
        if data:
            doc[FIELD] = {name: _stub(e) for name, e in sorted(entries(body).items())}
            for name, entry in entries(body).items():
                store[digest_of(entry)] = {"content_type": entry.get("content_type"),
                                           "data": data[name]["data"]}
        kept.append(doc)
    return kept, store


def restore(body: Mapping[str, Any], store: Mapping[str, Any]) -> tuple[Doc, list[str]]:
    """The inline attachments of a discarded ``body`` from its record's ``store``, and the
    names whose data the record does not hold."""
    out: Doc = {}
    missing = []
    for name, stub in sorted(entries(body).items()):
        held = store.get(digest_of(stub))
        if not isinstance(held, Mapping) or "data" not in held:
            missing.append(name)
            continue
        out[name] = {"content_type": stub.get("content_type", held.get("content_type")),
                     "data": held["data"], **({"revpos": stub["revpos"]}
                                              if "revpos" in stub else {})}
    return out, missing

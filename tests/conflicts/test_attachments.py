"""Attachments (a wound photo, an ECG trace) are clinical content: never lost to a resolution.

Two branches that differ only in an attachment are not duplicates; a merge keeps the files
every branch holds; a discarded branch's files live on in its resolution record after
compaction, and undo puts them back byte for byte.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from carecouch.couch import Database
from tests.conflicts.support import (
    Cli,
    Factory,
    attached,
    compact,
    live,
    mergeable,
    resolutions,
)
from tests.helpers.provisioned import Caseload
from tests.helpers.records import observation, push

ECG = b"%PDF-1.4 ECG 12-lead, sinus rhythm"
ECG_REDONE = b"%PDF-1.4 ECG 12-lead, repeated: atrial fibrillation"
PHOTO = bytes(range(256)) * 4  # binary, as a JPEG is
PHOTO_RETAKEN = bytes(reversed(range(256))) * 4


def files(db: Database, doc_id: str) -> dict[str, dict[str, bytes]]:
    """Each live revision's attachments, as bytes."""
    out = {}
    for leaf in db.leaf_revisions(doc_id, attachments=True):
        doc = leaf.get("ok")
        if isinstance(doc, dict) and not doc.get("_deleted"):
            out[doc["_rev"]] = {name: base64.b64decode(a["data"])
                                for name, a in doc.get("_attachments", {}).items()}
    return out


def record_files(db: Database, resolution: str) -> dict[str, bytes]:
    """What a resolution record holds of the discarded attachments, by digest."""
    record = db.get(resolution, attachments=True)
    return {k: base64.b64decode(a["data"]) for k, a in record.get("_attachments", {}).items()}


def run(cli: Cli, *args: str, code: int = 0) -> Any:
    result = cli(*args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    return json.loads(result.stdout) if "--json" in args else result


def test_copies_with_different_attachments_are_not_duplicates(
        caseload: Caseload, person: Factory, cli: Cli) -> None:
    nurse = person("nurse")
    obs = observation(nurse.user, nurse.device)
    revs = [push(nurse.db(caseload), {**obs, "_attachments": attached("ecg.pdf", data,
                                                                      "application/pdf")})
            for data in (ECG, ECG_REDONE)]
    listed = run(cli, "conflicts", "list", "--caseload", caseload.id, "--json")
    assert [(c["action"], c["needs_review"]) for c in listed["conflicts"]] == [("review", True)]
    shown = run(cli, "conflicts", "show", obs["_id"], "--caseload", caseload.id, "--json")
    [row] = [r for r in shown["diff"] if r["section"] == "attachment"]
    assert row["name"] == "ecg.pdf" and row["differs"]
    auto = run(cli, "conflicts", "auto", "--caseload", caseload.id, "--yes", "--json")
    assert auto["outcomes"] == [] and set(live(caseload.db, obs["_id"])) == set(revs)

    # The supervisor keeps the repeated ECG; the first trace survives compaction in the record.
    out = run(cli, "conflicts", "resolve", obs["_id"], "--caseload", caseload.id, "--keep",
              revs[1], "--reason", "the repeated ECG is the reading of record", "--yes",
              "--json")
    compact(caseload.db, obs["_id"], revs[0])
    assert list(record_files(caseload.db, out["resolution"]).values()) == [ECG]
    run(cli, "conflicts", "undo", out["resolution"], "--caseload", caseload.id, "--reason",
        "keep both for the cardiologist", "--yes")
    assert sorted(f["ecg.pdf"] for f in files(caseload.db, obs["_id"]).values()) == sorted(
        [ECG, ECG_REDONE])


def test_a_merge_keeps_the_photo_both_branches_hold(caseload: Caseload, person: Factory,
                                                    cli: Cli) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    made = mergeable(caseload, a, b, photo=PHOTO)
    dry = run(cli, "conflicts", "auto", "--caseload", caseload.id, "--dry-run", "--json")
    done = run(cli, "conflicts", "auto", "--caseload", caseload.id, "--yes", "--json")
    assert [o["status"] for o in done["outcomes"]] == ["resolved"]
    [(rev, merged)] = files(caseload.db, made.doc_id).items()
    assert merged == {"wound.jpg": PHOTO} and rev == done["outcomes"][0]["written_rev"]
    # The dry run printed the merged revision with the photo, exactly as it was written.
    [written] = [d for d in dry["plans"][0]["bulk_docs"]["docs"] if not d.get("_deleted")]
    assert base64.b64decode(written["_attachments"]["wound.jpg"]["data"]) == PHOTO

    compact(caseload.db, made.doc_id, made.revs[0])
    [record] = resolutions(caseload.db)
    assert list(record_files(caseload.db, record["_id"]).values()) == [PHOTO]  # kept once
    run(cli, "conflicts", "undo", record["_id"], "--caseload", caseload.id, "--reason", "x",
        "--yes")
    restored = files(caseload.db, made.doc_id)
    assert len(restored) == 2 and all(f == {"wound.jpg": PHOTO} for f in restored.values())


def test_branches_with_different_photos_are_left_for_a_person(
        caseload: Caseload, person: Factory, cli: Cli) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    made = mergeable(caseload, a, b, photo=PHOTO, b_photo=PHOTO_RETAKEN)
    auto = run(cli, "conflicts", "auto", "--caseload", caseload.id, "--yes", "--json")
    assert auto["outcomes"] == [] and "different attachments" in auto["review"][0]["reason"]
    refused = run(cli, "conflicts", "resolve", made.doc_id, "--caseload", caseload.id,
                  "--merge", f"title={made.revs[0]}", "--reason", "x", "--yes", code=2)
    assert "different attachments" in refused.stderr and resolutions(caseload.db) == []
    out = run(cli, "conflicts", "resolve", made.doc_id, "--caseload", caseload.id, "--keep",
              made.revs[1], "--reason", "the retaken photo is in focus", "--yes", "--json")
    compact(caseload.db, made.doc_id, made.revs[0])
    assert list(files(caseload.db, made.doc_id).values()) == [{"wound.jpg": PHOTO_RETAKEN}]
    assert list(record_files(caseload.db, out["resolution"]).values()) == [PHOTO]

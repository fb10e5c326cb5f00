"""Push: device -> server, the CouchDB replication protocol with the device store as source.

Per batch of the store's changes feed, one *step* (retried as a whole on a transient failure):

1. ``POST _revs_diff`` with the leaves the server is not known to hold;
2. ``POST _bulk_docs`` with ``new_edits: false`` and each missing revision's ``_revisions``;
3. ``POST _revs_diff`` again with what was sent: a revision still missing was not stored.

Step 1 runs again before any retry of step 2, so a revision that reached the server before a
connection broke is never written twice. Step 3 is what makes refusals impossible to lose:
CouchDB lists a validation function's refusal in the ``_bulk_docs`` answer
(``{"id", "rev", "error": "forbidden", "reason"}``), but a server that drops a write silently
is caught too. Every refused revision is kept in the store with the server's reason.

On a cluster neither answer is the last word right after a write. CouchDB answers
``_revs_diff`` from the first copy of each shard range to reply (``fabric_doc_missing_revs``),
which may not hold yet what the others stored a moment ago; and a copy that refuses a write
the others stored can make the whole answer a refusal (``fabric_doc_update``). So on a
database with more than one copy, a revision still missing after step 3 is asked about again
after short pauses, while internal replication catches up, before it is kept as refused.
Step 1 can likewise offer a revision the server already holds; sending it again is harmless
(CouchDB ignores a revision it already has).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from carecouch.couch import Database, Doc
from carecouch.errors import CouchForbidden
from carecouch.records import refusal_code
from carecouch.sync_states import SyncState

from ..store.documents import LocalDatabase
from ..store.rejections import Rejections
from ..store.replica import ReplicaIO
from .checkpoints import Checkpointer
from .remote import RemoteDatabase
from .status import ReplicationStats, SyncStopped

NOT_STORED = ("not_stored", "the server answered the write but did not store this revision "
                            "(it gave no reason)")
# Pauses before asking a cluster again about a revision still missing after the write: a
# second and more in all, ample for internal replication between healthy nodes.
CLUSTER_CONFIRM_DELAYS = (0.25, 0.5, 1.0)


@dataclass(frozen=True)
class PushOptions:
    batch_size: int = 500     # documents per step (halved while steps keep failing)
    scan_size: int = 5000     # local changes read at a time
    checkpoint_interval: float = 2.0  # seconds between checkpoints; 0 = after every chunk
    all_leaves: bool = False  # offer every leaf, not only those not known to be on the server
    # Pauses before asking again about a revision still missing after the write (see the
    # module's docstring); None: CLUSTER_CONFIRM_DELAYS on a database with more than one
    # copy, none on a single copy, whose answer is final.
    confirm_delays: tuple[float, ...] | None = None


@dataclass
class StepResult:
    checked: int = 0
    missing: int = 0
    written: dict[str, list[str]] = field(default_factory=dict)
    refused: list[tuple[Doc, str, str]] = field(default_factory=list)   # (doc, error, reason)


class Pusher:
    def __init__(self, remote: RemoteDatabase, local: LocalDatabase,
                 checkpointer: Checkpointer, options: PushOptions = PushOptions()) -> None:
        self.remote = remote
        self.local = local
        self.io = ReplicaIO(local)
        self.rejections = Rejections(local)
        self.checkpointer = checkpointer
        self.options = options
        self.stats = ReplicationStats()
        self.refused: list[dict[str, str]] = []  # this run's refusals, for the sync report
        self.on_progress: Callable[[], None] | None = None  # after every step
        self._confirm_delays = options.confirm_delays

    def run(self) -> Any:
        since = self.checkpointer.start()
        # The local sequence is an integer the store itself made; anything else (a foreign
        # checkpoint) means "from the beginning".
        position = since if isinstance(since, int) else 0
        size = self.options.batch_size
        last_checkpoint = time.monotonic()
        while True:
            # Reading the local feed is cheap, so it is read in large chunks; most documents
            # in it came from the server and are skipped without a request.
            changes = self.io.changes_since(position, self.options.scan_size)
            if not changes:
                self.checkpointer.record(position, self.stats)
                return position
            pending = list(self.io.leaves_to_offer(
                [doc_id for doc_id, _ in changes], all_leaves=self.options.all_leaves).items())
            while pending:
                offer = dict(pending[:size])
                try:
                    self._keep(self._push(offer))
                    if self.on_progress is not None:
                        self.on_progress()
                except SyncStopped as exc:
                    # A link that keeps dropping large requests may still carry small ones.
                    if exc.state is not SyncState.UNREACHABLE or size == 1:
                        raise
                    size = max(1, size // 2)
                    continue
                pending = pending[len(offer):]
            position = changes[-1][1]
            if time.monotonic() - last_checkpoint >= self.options.checkpoint_interval:
                self.checkpointer.record(position, self.stats)
                last_checkpoint = time.monotonic()

    def _push(self, offer: dict[str, list[str]]) -> StepResult:
        def step(db: Database) -> StepResult:
            return self._step(db, offer)
        return self.remote.call("push: write revisions", step)

    def _step(self, db: Database, offer: dict[str, list[str]]) -> StepResult:
        result = StepResult(checked=sum(len(revs) for revs in offer.values()))
        missing = _missing(db, offer)
        result.missing = sum(len(revs) for revs in missing.values())
        # Revisions the server already holds are recorded as such (no write needed).
        result.written = {doc_id: [r for r in revs if r not in missing.get(doc_id, [])]
                          for doc_id, revs in offer.items()}
        if not missing:
            return result
        docs = self.io.docs_for_push(missing)
        with self.local.store.transaction():
            self.local.mark_sent((doc["_id"], doc["_rev"]) for doc in docs)
        errors = _write(db, docs)
        still = self._still_missing(db, missing)
        for doc in docs:
            doc_id, rev = doc["_id"], doc["_rev"]
            if rev in still.get(doc_id, ()):
                error, reason = errors.get((doc_id, rev)) or errors.get((doc_id, None)) \
                    or NOT_STORED
                result.refused.append((doc, error, reason))
            else:
                result.written.setdefault(doc_id, []).append(rev)
        return result

    def _still_missing(self, db: Database, sent: Mapping[str, list[str]]
                       ) -> dict[str, list[str]]:
        """Of the revisions ``sent``, those the server does not hold (asked again after each
        pause on a cluster, while any is reported missing)."""
        still = _missing(db, sent)
        if still and self._confirm_delays is None:
            self._confirm_delays = CLUSTER_CONFIRM_DELAYS if db.copies() > 1 else ()
        for delay in self._confirm_delays or ():
            if not still:
                break
            time.sleep(delay)
            still = _missing(db, still)
        return still

    def _keep(self, result: StepResult) -> None:
        self.stats.missing_checked += result.checked
        self.stats.missing_found += result.missing
        self.stats.docs_read += result.missing
        self.stats.docs_written += result.missing - len(result.refused)
        self.stats.doc_write_failures += len(result.refused)
        with self.local.store.transaction():
            self.io.mark_on_server({k: v for k, v in result.written.items() if v})
            for doc, error, reason in result.refused:
                self.rejections.record(doc, error, reason)
                self.refused.append({"id": str(doc["_id"]), "rev": str(doc["_rev"]),
                                     "error": error, "reason": reason,
                                     "code": refusal_code(reason)})


def _missing(db: Database, revs: Mapping[str, list[str]]) -> dict[str, list[str]]:
    diff = db.revs_diff(dict(revs))
    return {doc_id: list(entry["missing"]) for doc_id, entry in diff.items()
            if isinstance(entry, dict) and entry.get("missing")}


def _write(db: Database, docs: list[Doc]) -> dict[tuple[str, str | None], tuple[str, str]]:
    """``_bulk_docs?new_edits=false``; returns the per-revision errors the server gave.

    A 403 for the whole request (some servers answer a single refused document so) is split
    up: each document is sent alone, so one refusal cannot block the others.
    """
    try:
        answer = db.bulk_docs(docs, new_edits=False)
    except CouchForbidden as exc:
        if len(docs) == 1:
            return {(docs[0]["_id"], docs[0]["_rev"]): (exc.error or "forbidden", exc.reason)}
        errors: dict[tuple[str, str | None], tuple[str, str]] = {}
        for doc in docs:
            errors.update(_write(db, [doc]))
        return errors
    errors = {}
    for entry in answer if isinstance(answer, list) else []:
        if isinstance(entry, dict) and entry.get("error"):
            key = (str(entry.get("id")), entry.get("rev"))
            errors[key] = (str(entry["error"]), str(entry.get("reason", "")))
    return errors

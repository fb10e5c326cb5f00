"""Pull: server -> device, the CouchDB replication protocol with the device store as target.

Per batch of the source's changes feed:

1. ``GET/POST _changes?style=all_docs&include_docs=true&limit=N&since=<checkpoint>`` (with the
   filter) lists every leaf revision of each changed document and carries the winning body;
2. the target's ``_revs_diff`` is a local lookup (the store is the target);
3. a missing revision whose whole history is itself (``1-…``, no attachments) is stored straight
   from the feed; any other (a longer history, a losing leaf, attachments) is fetched with
   ``_bulk_get?revs=true&latest=true`` so its ``_revisions`` are stored too;
4. the batch is stored in one transaction, then the checkpoint records the batch's
   ``last_seq`` on both sides.

The next batch is requested while this one is stored (pipelining); all CPU work stays on the
main thread (measured: encrypting on the feed thread made the two threads fight over the GIL
and the pull slower). A few batches at most are in memory, so a pull of any size runs in
bounded memory.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from carecouch.couch import Doc
from carecouch.errors import CouchBadRequest, CouchNotFound
from carecouch.revs import rev_pos
from carecouch.sync_states import SyncState

from ..store.documents import LocalDatabase
from ..store.replica import IncomingRevision, ReplicaIO
from .checkpoints import Checkpointer
from .filters import SELECTOR, ReplicationFilter
from .remote import RemoteDatabase
from .status import ReplicationStats, SyncStopped


@dataclass(frozen=True)
class PullOptions:
    batch_size: int = 1000          # most changes per _changes request
    first_batch: int = 250          # the first request's; doubled per request
    bulk_get_size: int = 250        # revisions per _bulk_get request
    checkpoint_interval: float = 2.0  # seconds between checkpoints; 0 = after every batch
    prefetch: int = 2               # batches read ahead of the one being stored


class Puller:
    def __init__(self, remote: RemoteDatabase, local: LocalDatabase,
                 filter: ReplicationFilter | None, checkpointer: Checkpointer,
                 options: PullOptions = PullOptions()) -> None:
        self.remote = remote
        self.local = local
        self.io = ReplicaIO(local)
        self.filter = filter
        self.checkpointer = checkpointer
        self.options = options
        self.stats = ReplicationStats()
        self.on_progress: Callable[[], None] | None = None  # after every batch stored

    def run(self) -> Any:
        """Pull everything changed since the checkpoint; returns the last sequence pulled."""
        since = self.checkpointer.start()
        last_checkpoint = time.monotonic()
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="pull") as pool:
            feed = _Prefetcher(self._fetch_changes, since,
                               first_batch=self.options.first_batch,
                               max_batch=self.options.batch_size, depth=self.options.prefetch)
            try:
                for batch in feed:
                    self._apply(batch, pool)
                    if self.on_progress is not None:
                        self.on_progress()
                    since = batch.last_seq
                    now = time.monotonic()
                    if (not batch.more
                            or now - last_checkpoint >= self.options.checkpoint_interval):
                        self.checkpointer.record(since, self.stats)
                        last_checkpoint = now
                self._restore_bodies(pool)
            finally:
                feed.stop()
        return since

    def _restore_bodies(self, pool: ThreadPoolExecutor) -> None:
        """Read back the bodies of leaves the device holds without one (a refused branch
        discarded offline leaves the revision it grew from so): the feed will not list them
        again, since the server's copy did not change."""
        refs = [{"id": doc_id, "rev": rev} for doc_id, rev in self.local.bodiless_leaves()]
        if refs:
            self.io.store(self._bulk_get(refs, pool))

    # -- steps ------------------------------------------------------------------------------

    def _fetch_changes(self, since: Any, limit: int) -> Doc:
        params = self.filter.changes_params() if self.filter else {}
        body = self.filter.changes_body() if self.filter else None
        try:
            return self.remote.changes("pull: read the changes feed", since=since,
                                       limit=limit, params=params, body=body)
        except (CouchNotFound, CouchBadRequest) as exc:
            if self.filter and self.filter.kind == SELECTOR and self.remote.exists(
                    "pull: check the database"):
                raise SyncStopped(SyncState.FILTER_UNSUPPORTED,
                                  f"the server cannot filter the changes feed by selector "
                                  f"({exc}); ask for a design-document filter") from exc
            raise

    def _apply(self, batch: _Batch, pool: ThreadPoolExecutor) -> None:
        results = batch.results
        offered = {row["id"]: [change["rev"] for change in row.get("changes") or []]
                   for row in results if "id" in row}
        missing = self.io.missing(offered)
        self.stats.missing_checked += sum(len(revs) for revs in offered.values())
        self.stats.missing_found += sum(len(revs) for revs in missing.values())
        if not missing:
            return
        direct: list[IncomingRevision] = []
        refs: list[dict[str, str]] = []
        for row in results:
            doc = row.get("doc")
            for rev in missing.get(row.get("id", ""), []):
                if (isinstance(doc, dict) and doc.get("_rev") == rev
                        and rev_pos(rev) == 1 and "_attachments" not in doc):
                    # Its whole history is itself: stored straight from the feed.
                    direct.append(IncomingRevision.from_doc(doc))
                else:
                    refs.append({"id": row["id"], "rev": rev})
        fetched = self._bulk_get(refs, pool)
        incoming = _unique(direct + fetched)
        self.stats.docs_read += len(incoming)
        self.stats.docs_written += self.io.store(incoming)

    def _bulk_get(self, refs: list[dict[str, str]], pool: ThreadPoolExecutor
                  ) -> list[IncomingRevision]:
        size = self.options.bulk_get_size
        futures = [pool.submit(self._bulk_get_chunk, refs[i:i + size])
                   for i in range(0, len(refs), size)]
        incoming: list[IncomingRevision] = []
        for future in futures:
            for result in future.result():
                for entry in result.get("docs") or []:
                    doc = entry.get("ok")
                    if isinstance(doc, dict):
                        incoming.append(IncomingRevision.from_doc(doc))
                    # "missing"/"error" entries: the revision was superseded and compacted
                    # since the feed was read; its successor is later in the feed.
        return incoming

    def _bulk_get_chunk(self, refs: list[dict[str, str]]) -> list[Doc]:
        try:
            return self.remote.bulk_get("pull: read revisions", refs)
        except SyncStopped as exc:
            # As for the feed: split a request the link keeps dropping into smaller ones.
            if exc.state is not SyncState.UNREACHABLE or len(refs) == 1:
                raise
            half = len(refs) // 2
            return self._bulk_get_chunk(refs[:half]) + self._bulk_get_chunk(refs[half:])


MIN_BATCH = 10  # the smallest changes batch a failing link is tried with


@dataclass
class _Batch:
    """One page of the changes feed, as the feed thread hands it over."""

    results: list[Doc]
    last_seq: Any
    more: bool


class _Prefetcher:
    """Reads the changes feed batch after batch on its own thread, up to ``depth`` batches
    ahead of the consumer: the server prepares the next batch while this one is stored, and
    memory stays bounded by a few batches.

    Batch sizes start small and double up to ``max_batch``: the device starts storing sooner,
    and larger batches cost the server less per document. A batch the link keeps dropping
    is halved.
    """

    def __init__(self, fetch: Callable[[Any, int], Doc], since: Any, *, first_batch: int,
                 max_batch: int, depth: int) -> None:
        self._fetch = fetch
        self._max_batch = max_batch
        self._batch_size = max(1, min(first_batch, max_batch))
        self._queue: queue.Queue[_Batch | BaseException] = queue.Queue(maxsize=max(1, depth))
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(since,), name="pull-feed",
                                        daemon=True)
        self._thread.start()

    def _run(self, since: Any) -> None:
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pull-feed-read") as reader:
                page, limit = self._fetch_adaptive(since)
                while not self._stopped.is_set():
                    results: list[Doc] = page.get("results") or []
                    since = page.get("last_seq", since)
                    more = len(results) >= limit
                    # Ask for the next batch at once, so the server works while this one is
                    # stored.
                    following = reader.submit(self._fetch_adaptive, since) if more else None
                    self._put(_Batch(results, since, more))
                    if following is None:
                        return
                    page, limit = following.result()
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(exc)

    def _fetch_adaptive(self, since: Any) -> tuple[Doc, int]:
        """One batch from ``since`` and the limit it was asked with."""
        while True:
            limit = self._batch_size
            try:
                page = self._fetch(since, limit)
            except SyncStopped as exc:
                # A link that keeps dropping large answers may still carry small ones.
                if exc.state is not SyncState.UNREACHABLE or limit <= MIN_BATCH:
                    raise
                self._batch_size = max(MIN_BATCH, limit // 2)
                continue
            self._batch_size = min(self._max_batch, limit * 2)
            return page, limit

    def _put(self, item: _Batch | BaseException) -> None:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[_Batch]:
        while True:
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if not item.more:
                return

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


def _unique(items: list[IncomingRevision]) -> list[IncomingRevision]:
    seen: set[tuple[str, str]] = set()
    out: list[IncomingRevision] = []
    for item in items:
        key = (item.doc_id, item.rev)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out

"""``POST /_replicate``, one-shot: the answer is the replication's checkpoint history.

CouchDB references: couch_replicator_httpd:handle_req/1 (a one-shot replication answers when
it is done) and couch_replicator_scheduler_job (the checkpoint record returned): the counts
are in ``history[0]``, never at the top level. A replication started by carecouch's tests
reads them there (tests/conflicts/support.py).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote, urlsplit, urlunsplit

from carecouch.couch import Database
from tests.helpers.server import Server

HISTORY_FIELDS = {"session_id", "start_time", "end_time", "start_last_seq", "end_last_seq",
                  "recorded_seq", "missing_checked", "missing_found", "docs_read",
                  "docs_written", "doc_write_failures"}


def url(server: Server, db: Database) -> str:
    parts = urlsplit(server.url)
    netloc = f"{quote(server.user, safe='')}:{quote(server.password, safe='')}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, f"/{db.path}", "", ""))


def test_one_shot_replication_answers_its_checkpoint_history(
        server: Server, make_db: Callable[..., Database]) -> None:
    source, target = make_db(), make_db()
    source.bulk_docs([{"_id": f"d{i}", "v": i} for i in range(5)])
    answer = source.client.json("POST", "_replicate", json_body={
        "source": url(server, source), "target": url(server, target)})
    assert answer["ok"] is True
    assert "docs_written" not in answer  # the counts are in the history, as CouchDB has them
    assert set(answer) >= {"session_id", "source_last_seq", "replication_id_version",
                           "history"}
    entry = answer["history"][0]
    assert set(entry) >= HISTORY_FIELDS
    assert entry["session_id"] == answer["session_id"]
    assert (entry["docs_written"], entry["doc_write_failures"]) == (5, 0)
    assert entry["recorded_seq"] == answer["source_last_seq"]
    assert len(target.all_docs()["rows"]) == 5

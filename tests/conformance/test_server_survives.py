"""The embedded server never dies on a request (carecouch's last-resort guard).

CouchDB runs every request in its own Erlang process: a crash answers that request
500 {"error": "unknown_error", ...} (chttpd:error_info/1) and is logged; the server carries on.
These tests provoke failures only the embedded server's JavaScript runtime can have.
"""

from __future__ import annotations

import pytest

from carecouch.couch import Database
from tests.helpers.server import Server
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.embedded_only


def test_error_thrown_after_the_answer_is_logged_and_survived(db: Database,
                                                              server: Server) -> None:
    # carecouch's last-resort guard (embedded_server/fixes/last-resort.js)
    db.put({"_id": "_design/s", "shows": {"boom": (
        "function (doc, req) {"
        " setTimeout(function () { throw new Error('boom from a timer'); }, 0);"
        " return 'shown'; }")}})
    response = db.client.request("GET", f"{db.path}/_design/s/_show/boom")
    assert response.text == "shown"
    assert server.data_dir is not None
    log = server.data_dir / "server.log"
    wait_until(lambda: "boom from a timer" in log.read_text(), timeout=5,
               what="the log shows the timer's error")
    server.check_alive()
    assert db.info()["db_name"] == db.name


def test_malformed_url_is_a_json_bad_request(db: Database) -> None:
    # chttpd answers a malformed request 400 bad_request, as JSON
    response = db.client.request("GET", f"{db.path}/%E0%A4%A", ok=(400,))
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"

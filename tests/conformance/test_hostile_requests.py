"""One member's request must not freeze the server for everyone else (issue 10, attack 5).

CouchDB evaluates a Mango `$regex` with Erlang's `re` (PCRE, with its match limit) in the
request's own process (mango_selector:match/3), so a catastrophic pattern ends at the match
limit as "no match" and no other request waits for it; selectors are normalised and matched
recursively with no depth limit of CouchDB's own (mango_selector:norm_ops/1); an attachment
is streamed to disk, up to `[couchdb] max_attachment_size` (413 attachment_too_large,
couch_att:validate_attachment_size/3). The embedded server is a single Node thread:
embedded_server/fixes/selectors.js, fixes/attachments.js and the V8 options in
carecouch/embedded.py keep it answering.

Timing bounds are generous (seconds where the freeze they catch lasted a minute and more on
the unfixed server); benchmarks/embedded_dos.py measures the figures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from carecouch.couch import CouchClient, Database, Timeouts
from carecouch.errors import CouchError
from tests.helpers.fixtures import User
from tests.helpers.protocol import call_raw

ROLE = "caseload:hostile"
CHARS = 31  # "a"s before the "!": 2**31 backtracking steps for ^(a+)+$
CATASTROPHIC = {"note": {"$regex": "^(a+)+$"}}
PROMPT = 5.0  # seconds: an idle request takes milliseconds
PATIENCE = Timeouts(connect=5.0, read=120.0)


def post_json(client: CouchClient, path: str, text: str,
              params: dict[str, str] | None = None) -> tuple[int, Any]:
    return call_raw(client, "POST", path, content=text.encode(), params=params,
                    headers={"Content-Type": "application/json"})


class Ward:
    def __init__(self, db: Database, attacker: User, other: User) -> None:
        self.db, self.attacker, self.other = db, attacker, other
        self.path = db.path

    def slowest_other_request_while(self, send: Callable[[CouchClient], Any]) -> tuple[Any, float]:
        """Runs `send` as the attacker (a client of its own, patient) while the other member
        sends `GET /{db}` back to back; returns send's result and the slowest of those."""
        result: dict[str, Any] = {}
        with CouchClient(self.db.client.url, self.attacker.name, self.attacker.password,
                         timeouts=PATIENCE, retries=0) as attacker:
            thread = threading.Thread(target=lambda: result.update(value=send(attacker)))
            thread.start()
            slowest = 0.0
            time.sleep(0.2)
            while True:
                started = time.monotonic()
                try:
                    self.other.client.request("GET", self.path)
                except CouchError:
                    pass  # a connection the frozen server dropped: counted as waited
                slowest = max(slowest, time.monotonic() - started)
                if not thread.is_alive():
                    break
                time.sleep(0.05)
            thread.join()
        return result.get("value"), slowest


@pytest.fixture
def ward(make_db: Callable[..., Database], make_user: Callable[..., User]) -> Ward:
    db = make_db(security={"members": {"roles": [ROLE]}, "admins": {"roles": []}})
    db.put({"_id": "victim", "type": "obs", "note": "a" * CHARS + "!"})
    db.put({"_id": "other", "type": "obs", "note": "routine visit"})
    return Ward(db, make_user(roles=[ROLE]), make_user(roles=[ROLE]))


def find(selector: dict[str, Any], path: str) -> Callable[[CouchClient], tuple[int, Any]]:
    def send(client: CouchClient) -> tuple[int, Any]:
        response = client.request("POST", f"{path}/_find", json_body={"selector": selector},
                                  idempotent=False, ok=range(400, 600))
        return response.status_code, response.json()
    return send


def selector_feed(selector: dict[str, Any],
                  path: str) -> Callable[[CouchClient], tuple[int, Any]]:
    def send(client: CouchClient) -> tuple[int, Any]:
        response = client.request("POST", f"{path}/_changes", params={"filter": "_selector"},
                                  json_body={"selector": selector}, idempotent=False,
                                  ok=range(400, 600))
        return response.status_code, response.json()
    return send


def test_catastrophic_regex_in_find_freezes_nobody(ward: Ward) -> None:
    # mango_selector:match/3: re:run/3 hits PCRE's match limit -> no match, in its own process
    (status, body), slowest = ward.slowest_other_request_while(
        find(CATASTROPHIC, ward.path))
    assert status == 200 and body["docs"] == []
    assert slowest < PROMPT, f"another member waited {slowest:.1f}s"


def test_catastrophic_regex_in_a_selector_feed_freezes_nobody(ward: Ward) -> None:
    # couch_changes:filter/3 with `_selector` uses the same mango_selector:match/3
    (status, body), slowest = ward.slowest_other_request_while(
        selector_feed(CATASTROPHIC, ward.path))
    assert status == 200
    assert "victim" not in [row["id"] for row in body["results"]]
    assert slowest < PROMPT, f"another member waited {slowest:.1f}s"


def test_ordinary_regex_still_matches(ward: Ward) -> None:
    client = ward.attacker.client
    status, body = find({"note": {"$regex": "^a+!$"}}, ward.path)(client)
    assert status == 200 and [d["_id"] for d in body["docs"]] == ["victim"]
    status, body = selector_feed({"note": {"$regex": "visit$"}}, ward.path)(client)
    assert status == 200 and [row["id"] for row in body["results"]] == ["other"]


def test_regex_that_does_not_compile_is_a_bad_request(ward: Ward) -> None:
    # mango_selector:norm_ops/1: re:compile fails -> bad_arg, 400
    status, _ = find({"note": {"$regex": "(unclosed"}}, ward.path)(ward.attacker.client)
    assert status == 400


def nested(operator: str, depth: int) -> str:
    return (f'{{"{operator}":[' * depth + '{"type":"obs","note":"routine visit"}'
            + "]}" * depth)


@pytest.mark.parametrize("operator", ["$and", "$or"])
def test_deeply_nested_selector_is_never_a_server_error(ward: Ward, operator: str) -> None:
    # CouchDB normalises any depth (no limit of its own); the embedded server flattens $and
    # and refuses other nesting beyond its limit with 400. Either way: no 5xx, no crash.
    client = ward.attacker.client
    status, body = post_json(client, f"{ward.path}/_find",
                            '{"selector":' + nested(operator, 5000) + "}")
    assert status in (200, 400), body
    if status == 200:
        assert [d["_id"] for d in body["docs"]] == ["other"]
    status, body = post_json(client, f"{ward.path}/_changes",
                            '{"selector":' + nested(operator, 5000) + "}",
                            params={"filter": "_selector"})
    assert status in (200, 400), body
    if status == 200:
        assert [row["id"] for row in body["results"]] == ["other"]


def test_large_attachment_freezes_nobody(ward: Ward) -> None:
    # chttpd_db:db_attachment_req/4 streams the body (fabric:att_receiver/3); beyond
    # max_attachment_size it is refused at once with 413 attachment_too_large
    rev = ward.attacker.client.db(ward.db.name).put({"_id": "photo", "type": "obs"})["rev"]
    data = bytes(range(256)) * (50 * 4096)  # 50 MB

    def send(client: CouchClient) -> tuple[int, Any]:
        response = client.request("PUT", f"{ward.path}/photo/wound.bin", params={"rev": rev},
                                  content=data,
                                  headers={"Content-Type": "application/octet-stream"},
                                  idempotent=False, ok=range(400, 600))
        return response.status_code, response.json()

    (status, body), slowest = ward.slowest_other_request_while(send)
    assert status == 201 or (status, body) == (
        413, {"error": "attachment_too_large", "reason": "wound.bin"}), body
    assert slowest < PROMPT, f"another member waited {slowest:.1f}s"


# -- the embedded server's own limits (embedded_server/fixes/selectors.js) ---------------------

@pytest.mark.embedded_only
def test_deep_and_is_answered_as_the_flat_selector(ward: Ward) -> None:
    # {$and: [{$and: [a]}]} is {$and: [a]}: flattened, it is answered as CouchDB answers it
    status, body = post_json(ward.attacker.client, f"{ward.path}/_find",
                            '{"selector":' + nested("$and", 5000) + "}")
    assert status == 200, body
    assert [d["_id"] for d in body["docs"]] == ["other"]


@pytest.mark.embedded_only
def test_deep_nesting_other_than_and_is_refused_with_a_reason(ward: Ward) -> None:
    status, body = post_json(ward.attacker.client, f"{ward.path}/_find",
                            '{"selector":' + nested("$or", 150) + "}")
    assert (status, body) == (400, {"error": "bad_request",
                                    "reason": "selector is nested more than 100 levels deep"})
    status, body = post_json(ward.attacker.client, f"{ward.path}/_find",
                            '{"selector":' + nested("$or", 40) + "}")
    assert status == 200 and [d["_id"] for d in body["docs"]] == ["other"]


@pytest.mark.embedded_only
@pytest.mark.parametrize("pattern", ["^(a+)+\\1$", "^(?=(a+)+$)", "^(a{1,30}){1,30}$"])
def test_backtracking_only_patterns_that_repeat_are_refused(ward: Ward, pattern: str) -> None:
    # V8's linear engine cannot run these, and they can backtrack exponentially
    for send in (find, selector_feed):
        status, body = send({"note": {"$regex": pattern}}, ward.path)(ward.attacker.client)
        assert status == 400 and body["error"] == "bad_request"
        assert body["reason"].startswith(f"$regex {pattern!r}".replace("'", '"'))
        assert "could run for hours" in body["reason"]


@pytest.mark.embedded_only
def test_lookaround_without_repetition_is_accepted(ward: Ward) -> None:
    # no repetition, no alternation: backtracking is bounded by the pattern's length
    status, body = find({"note": {"$regex": "^(?!routine)a"}}, ward.path)(ward.attacker.client)
    assert status == 200 and [d["_id"] for d in body["docs"]] == ["victim"]

"""The one module that speaks HTTP to CouchDB.

Everything else in carecouch (CLI, bridge, device, tests' helpers) goes through
:class:`CouchClient` and :class:`Database`, so timeouts, retries, URL quoting, query-string
encoding and error mapping are decided once, here.

Retries: a request is retried only when repeating it cannot change the outcome — reads
(``GET``/``HEAD``) and the read-only ``POST`` endpoints (``_all_docs``, ``_bulk_get``,
``_revs_diff``, ``_find``, ``_changes``, views). Writes are never retried automatically: a
write that timed out may have been applied, and repeating it would turn a success into a
409 or, for ``POST /db``, a duplicate document.
"""

from __future__ import annotations

import functools
import json
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from .errors import CouchError, CouchUnreachable, error_for_status
from .ids import USERS_DB, user_doc_id

Doc = dict[str, Any]

# Query parameters whose value CouchDB parses as JSON (strings must arrive quoted).
_JSON_PARAMS = frozenset({
    "key", "keys", "startkey", "endkey", "start_key", "end_key", "open_revs",
    "startkey_docid", "endkey_docid", "atts_since", "doc_ids", "selector",
})
_SAFE_RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 60.0


def encode_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    """CouchDB query strings: booleans as ``true``/``false``, JSON-valued keys JSON-encoded."""
    out: dict[str, str] = {}
    for name, value in (params or {}).items():
        if value is None:
            continue
        if name == "open_revs" and value == "all":
            out[name] = "all"  # the keyword, not the JSON string (chttpd_db:parse_doc_query/2)
        elif name in _JSON_PARAMS:
            out[name] = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            out[name] = json.dumps(value, separators=(",", ":"))
        else:
            out[name] = str(value)
    return out


def doc_path(doc_id: str) -> str:
    """Quote a document id for a URL, keeping the ``_design/`` and ``_local/`` prefixes."""
    for prefix in ("_design/", "_local/"):
        if doc_id.startswith(prefix):
            return prefix + quote(doc_id[len(prefix):], safe="")
    return quote(doc_id, safe="")


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``http://u:p@host:5984/`` -> (``http://host:5984``, ``u``, ``p``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:  # IPv6 literal
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    clean = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return clean, user, password


class CouchClient:
    """A pooled connection to one CouchDB server, as one user."""

    def __init__(self, url: str, user: str | None = None, password: str | None = None, *,
                 timeouts: Timeouts = Timeouts(), retries: int = 3,
                 max_connections: int = 20,
                 on_server_date: Callable[[str], None] | None = None) -> None:
        base, url_user, url_password = split_credentials(url)
        self.url = base
        self.user = user if user is not None else url_user
        password = password if password is not None else url_password
        auth = httpx.BasicAuth(self.user, password or "") if self.user else None
        self.retries = retries
        # Requests sent, by method: lets a benchmark report them and a test prove that an
        # idempotent run sent no write at all.
        self.request_counts: Counter[str] = Counter()
        self._count_lock = threading.Lock()  # the client is shared by worker threads
        # Called with the ``Date`` header of every answer: a field device estimates the
        # server's clock from it (records carry the device's offset to server time).
        self.on_server_date = on_server_date
        self._http = httpx.Client(
            base_url=base + "/",
            auth=auth,
            timeout=httpx.Timeout(timeouts.read, connect=timeouts.connect),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
            headers={"Accept": "application/json"},
            verify=_tls_context(),
        )

    # -- plumbing -------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CouchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None, content: bytes | None = None,
                headers: Mapping[str, str] | None = None, idempotent: bool | None = None,
                ok: Iterable[int] = ()) -> httpx.Response:
        """Send one request; map error statuses to :mod:`carecouch.errors` classes.

        ``ok`` lists extra statuses the caller handles itself (e.g. 404 on an existence check).
        ``idempotent`` overrides the default retry decision (reads retry, writes do not).
        """
        if idempotent is None:
            idempotent = method in ("GET", "HEAD")
        attempts = 1 + (self.retries if idempotent else 0)
        kwargs: dict[str, Any] = {"params": encode_params(params)}
        if json_body is not None:
            kwargs["content"] = json.dumps(json_body, separators=(",", ":")).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        elif content is not None:
            kwargs["content"] = content
        for attempt in range(attempts):
            self._count(method)
            try:
                response = self._http.request(method, path.lstrip("/"), headers=headers,
                                              **kwargs)
            except httpx.TransportError as exc:
                if attempt + 1 < attempts:
                    time.sleep(_backoff(attempt))
                    continue
                raise CouchUnreachable(
                    f"cannot reach CouchDB at {self.url} ({type(exc).__name__}: {exc})",
                    method=method, path="/" + path.lstrip("/")) from exc
            self._observe_date(response)
            if response.status_code in _SAFE_RETRY_STATUSES and attempt + 1 < attempts:
                time.sleep(_backoff(attempt))
                continue
            if response.status_code >= 400 and response.status_code not in ok:
                raise _error_from(response, method, path)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _observe_date(self, response: httpx.Response) -> None:
        date = response.headers.get("date")
        if date and self.on_server_date is not None:
            self.on_server_date(date)

    def _count(self, method: str) -> None:
        with self._count_lock:
            self.request_counts[method] += 1

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    @contextmanager
    def stream(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
               json_body: Any = None) -> Iterator[httpx.Response]:
        """A response whose body is read incrementally (``_changes`` of a large database)."""
        content = None
        headers = None
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode()
            headers = {"Content-Type": "application/json"}
        self._count(method)
        try:
            with self._http.stream(method, path.lstrip("/"), params=encode_params(params),
                                   content=content, headers=headers) as response:
                self._observe_date(response)
                if response.status_code >= 400:
                    response.read()
                    raise _error_from(response, method, path)
                yield response
        except httpx.TransportError as exc:
            raise CouchUnreachable(f"connection to CouchDB at {self.url} failed: {exc}",
                                   method=method, path="/" + path.lstrip("/")) from exc

    # -- server level ---------------------------------------------------------------------

    def server_info(self) -> Doc:
        result: Doc = self.json("GET", "")
        return result

    def session(self) -> Doc:
        result: Doc = self.json("GET", "_session")
        return result

    def server_date(self) -> str | None:
        """The ``Date`` header of the server's answer to ``GET /`` (its clock, to the second)."""
        date: str | None = self.request("GET", "").headers.get("date")
        return date

    def up(self) -> None:
        """``GET /_up``: raises unless the server answers. A server without ``_up`` (404)
        answered, so it counts as up."""
        self.request("GET", "_up", idempotent=True, ok=(404,))

    def get_user(self, name: str) -> Doc | None:
        """The ``_users`` document of CouchDB user ``name``, or None."""
        return self.db(USERS_DB).get_or_none(user_doc_id(name))

    def put_user(self, doc: Mapping[str, Any]) -> Doc:
        """Write a ``_users`` document (its ``_id`` is ``org.couchdb.user:<name>``)."""
        return self.db(USERS_DB).put(doc)

    def all_dbs(self) -> list[str]:
        result: list[str] = self.json("GET", "_all_dbs")
        return result

    def db(self, name: str) -> Database:
        return Database(self, name)

    def uuids(self, count: int = 1) -> list[str]:
        result: list[str] = self.json("GET", "_uuids", params={"count": count})["uuids"]
        return result


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every client (httpx's default, built once): building it
    reads the CA bundle, ~50 ms, which a device paid again on every sync."""
    return httpx.create_ssl_context()


def _backoff(attempt: int) -> float:
    return float(min(0.2 * (2 ** attempt), 2.0))


def _error_from(response: httpx.Response, method: str, path: str) -> CouchError:
    error, reason = "", response.reason_phrase or "error"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = str(body.get("error", ""))
        reason = str(body.get("reason", reason))
    cls = error_for_status(response.status_code)
    return cls(reason, status=response.status_code, error=error, method=method,
               path="/" + path.lstrip("/").split("?")[0])


class Database:
    """One database on a :class:`CouchClient`; thin, typed wrappers over the HTTP API."""

    def __init__(self, client: CouchClient, name: str) -> None:
        self.client = client
        self.name = name
        self.path = quote(name, safe="")

    def __repr__(self) -> str:
        return f"Database({self.client.url}/{self.name})"

    def _p(self, suffix: str = "") -> str:
        return f"{self.path}/{suffix}" if suffix else self.path

    # -- database -------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.client.request("HEAD", self._p(), ok=(404,)).status_code == 200

    def create(self, *, exist_ok: bool = False, q: int | None = None) -> bool:
        """Create the database; returns False when it existed and ``exist_ok``."""
        response = self.client.request("PUT", self._p(), params={"q": q},
                                       ok=(412,) if exist_ok else ())
        return response.status_code != 412

    def destroy(self, *, missing_ok: bool = False) -> bool:
        response = self.client.request("DELETE", self._p(), ok=(404,) if missing_ok else ())
        return response.status_code != 404

    def info(self) -> Doc:
        result: Doc = self.client.json("GET", self._p())
        return result

    def copies(self) -> int:
        """How many copies of each document the server keeps (CouchDB's ``cluster.n`` in
        the database info: 3 on a 3-node cluster, 1 on a single node; servers without it
        keep one). With more than one, each copy validates a write on its own, and right
        after a write a copy may not hold it yet (docs/record-rules.md, "On a cluster")."""
        cluster = self.info().get("cluster")
        n = cluster.get("n") if isinstance(cluster, dict) else None
        return n if isinstance(n, int) and n > 0 else 1

    def get_security(self) -> Doc:
        result: Doc = self.client.json("GET", self._p("_security"))
        return result

    def security_or_none(self) -> Doc | None:
        """The ``_security`` object, or None when the database does not exist (one request)."""
        response = self.client.request("GET", self._p("_security"), ok=(404,))
        if response.status_code == 404:
            return None
        result: Doc = response.json()
        return result

    def info_or_none(self) -> Doc | None:
        """Database info, or None when the database does not exist."""
        response = self.client.request("GET", self._p(), ok=(404,))
        if response.status_code == 404:
            return None
        result: Doc = response.json()
        return result

    def put_security(self, security: Mapping[str, Any]) -> None:
        self.client.request("PUT", self._p("_security"), json_body=dict(security),
                            idempotent=True)

    def compact(self) -> None:
        self.client.request("POST", self._p("_compact"), json_body={})

    # -- documents ------------------------------------------------------------------------

    def get(self, doc_id: str, **params: Any) -> Doc:
        result: Doc = self.client.json("GET", self._p(doc_path(doc_id)), params=params)
        return result

    def get_or_none(self, doc_id: str, **params: Any) -> Doc | None:
        response = self.client.request("GET", self._p(doc_path(doc_id)), params=params,
                                       ok=(404,))
        if response.status_code == 404:
            return None
        result: Doc = response.json()
        return result

    def open_revs(self, doc_id: str, which: list[str] | str = "all",
                  **params: Any) -> list[Doc]:
        """The leaves ``which`` names (``"all"``, or a list of revisions), each as
        ``{"ok": doc}`` or ``{"missing": rev}``; ``params`` such as ``revs=True`` pass on."""
        result: list[Doc] = self.client.json(
            "GET", self._p(doc_path(doc_id)),
            params={"open_revs": which, **params},
            headers={"Accept": "application/json"})
        return result

    def leaf_revisions(self, doc_id: str, **params: Any) -> list[Doc]:
        """``open_revs=all`` with other parameters (``revs=true``, ``latest=true``), which
        :meth:`open_revs` cannot take because its own argument is named ``revs``."""
        result: list[Doc] = self.client.json(
            "GET", self._p(doc_path(doc_id)), params={"open_revs": "all", **params},
            headers={"Accept": "application/json"})
        return result

    def put(self, doc: Mapping[str, Any], **params: Any) -> Doc:
        """Write ``doc`` (its ``_id`` and, for an update, ``_rev``); returns ``{id, rev, ok}``."""
        doc_id = doc.get("_id")
        if not isinstance(doc_id, str) or not doc_id:
            raise ValueError("a document to put needs a non-empty string _id")
        result: Doc = self.client.json("PUT", self._p(doc_path(doc_id)),
                                       json_body=dict(doc), params=params)
        return result

    def save(self, doc: Doc) -> Doc:
        """``put`` that updates ``doc['_rev']`` in place; returns the doc."""
        result = self.put(doc)
        doc["_rev"] = result["rev"]
        return doc

    def delete(self, doc_id: str, rev: str) -> Doc:
        result: Doc = self.client.json("DELETE", self._p(doc_path(doc_id)),
                                       params={"rev": rev})
        return result

    def bulk_docs(self, docs: list[Doc], *, new_edits: bool = True) -> list[Doc]:
        body: Doc = {"docs": docs}
        if not new_edits:
            body["new_edits"] = False
        result: list[Doc] = self.client.json("POST", self._p("_bulk_docs"), json_body=body)
        return result

    def bulk_get(self, docs: list[Doc], **params: Any) -> list[Doc]:
        """``docs`` is ``[{"id": .., "rev": ..}]``; returns CouchDB's ``results`` list."""
        result: list[Doc] = self.client.json("POST", self._p("_bulk_get"),
                                             json_body={"docs": docs}, params=params,
                                             idempotent=True)["results"]
        return result

    def all_docs(self, **params: Any) -> Doc:
        keys = params.pop("keys", None)
        if keys is not None:
            result: Doc = self.client.json("POST", self._p("_all_docs"), params=params,
                                           json_body={"keys": keys}, idempotent=True)
            return result
        result = self.client.json("GET", self._p("_all_docs"), params=params)
        return result

    def docs_with_prefix(self, prefix: str) -> list[Doc]:
        """Every document whose id starts with ``prefix``, in one ``_all_docs`` read; ``[]``
        when the database does not exist (yet)."""
        response = self.client.request(
            "GET", self._p("_all_docs"), ok=(404,),
            params={"startkey": prefix, "endkey": prefix + "\ufff0", "include_docs": True})
        if response.status_code == 404:
            return []
        return [row["doc"] for row in response.json()["rows"] if isinstance(row.get("doc"), dict)]

    def design_docs(self) -> dict[str, Doc]:
        """Every design document, by ``_id``, in one request."""
        rows = self.all_docs(startkey="_design/", endkey="_design0", include_docs=True)["rows"]
        return {row["id"]: row["doc"] for row in rows if isinstance(row.get("doc"), dict)}

    def revs_diff(self, revs: Mapping[str, list[str]]) -> Doc:
        result: Doc = self.client.json("POST", self._p("_revs_diff"), json_body=dict(revs),
                                       idempotent=True)
        return result

    def changes(self, *, body: Mapping[str, Any] | None = None, **params: Any) -> Doc:
        """One ``_changes`` read (``feed=normal``). Use :meth:`iter_changes` for big feeds."""
        if body is not None:
            result: Doc = self.client.json("POST", self._p("_changes"), params=params,
                                           json_body=dict(body), idempotent=True)
            return result
        result = self.client.json("GET", self._p("_changes"), params=params)
        return result

    def view(self, ddoc: str, view: str, **params: Any) -> Doc:
        keys = params.pop("keys", None)
        path = self._p(f"_design/{quote(ddoc, safe='')}/_view/{quote(view, safe='')}")
        if keys is not None:
            result: Doc = self.client.json("POST", path, params=params,
                                           json_body={"keys": keys}, idempotent=True)
            return result
        result = self.client.json("GET", path, params=params)
        return result

    def find(self, query: Mapping[str, Any]) -> Doc:
        result: Doc = self.client.json("POST", self._p("_find"), json_body=dict(query),
                                       idempotent=True)
        return result

    # -- _local documents (replication checkpoints) -----------------------------------------

    def get_local(self, local_id: str) -> Doc | None:
        return self.get_or_none(f"_local/{local_id}")

    def put_local(self, local_id: str, doc: Mapping[str, Any]) -> Doc:
        return self.put({**doc, "_id": f"_local/{local_id}"})


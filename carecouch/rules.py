"""A caseload's record rules, run outside CouchDB: the very same ``validate_doc_update``.

A device checks a record before it saves it, offline, by running the caseload's own design
document (the one the server runs, ``couch/validate_functions/`` assembled with the registry)
in QuickJS, the JavaScript engine Apache CouchDB 3.5 runs it in. Nothing here restates a rule:
a refusal is the rules' own ``{"forbidden": "<code>: <message>"}``, so the clinician reads the
code and message the server would give, and every problem of the record at once (the rules
collect them: common.js ``problem``).

The binding is ``quickjs-ng`` (PyPI), the Python wrapper of quickjs-ng, the maintained fork of
QuickJS (the original ``quickjs`` package is archived): prebuilt wheels, no build step, and
per-context time and memory limits, so a rule that loops cannot freeze the device.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import quickjs

from .ddocs import MAIN_DDOC_ID, assemble
from .errors import CarecouchError
from .records import parse_refusal, refusal_code

HOST_DIR = Path(__file__).resolve().parent / "js"
HOST_FILES = ("query_server.js", "rules_host.js")
TIME_LIMIT_S = 2  # CPU seconds a single call may take (CouchDB: os_process_timeout 5 s)
MEMORY_LIMIT = 64 * 1024 * 1024


class RulesError(CarecouchError):
    """The rules could not be run (a design document without them, or a rule that crashed)."""


@dataclass(frozen=True)
class Problem:
    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Refusal:
    """What the server would answer: 403 ``forbidden`` with ``reason``; ``problems`` lists
    every problem the rules found (the first is the one in ``reason``)."""

    reason: str
    problems: tuple[Problem, ...] = field(default=())
    error: str = "forbidden"

    @property
    def code(self) -> str:
        return refusal_code(self.reason)

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "reason": self.reason, "code": self.code,
                "problems": [p.to_json() for p in self.problems]}


class Rules:
    """The rules of one design document, compiled once; safe to share between threads."""

    def __init__(self, ddoc: Mapping[str, Any]) -> None:
        if not isinstance(ddoc.get("validate_doc_update"), str):
            raise RulesError(f"{ddoc.get('_id')} holds no validate_doc_update")
        self.ddoc_id = str(ddoc.get("_id"))
        self.version = (ddoc.get("carecouch") or {}).get("version")
        self._lock = threading.Lock()
        self._ctx = quickjs.Context()
        self._ctx.set_time_limit(TIME_LIMIT_S)
        self._ctx.set_memory_limit(MEMORY_LIMIT)
        for name in HOST_FILES:
            self._ctx.eval((HOST_DIR / name).read_text(encoding="utf-8"))
        try:
            self._ctx.eval(f"carecouchRules.load({json.dumps(json.dumps(dict(ddoc)))})")
        except quickjs.JSException as exc:
            raise RulesError(f"the rules of {self.ddoc_id} do not compile: {exc}") from exc

    @classmethod
    def packaged(cls, couch_dir: Path | None = None) -> Rules:
        """The rules this software ships (``couch/``), for a database whose own design
        document the device has not read yet."""
        return cls(assemble(couch_dir)[MAIN_DDOC_ID])

    def check(self, new_doc: Mapping[str, Any], old_doc: Mapping[str, Any] | None,
              user_ctx: Mapping[str, Any], sec_obj: Mapping[str, Any] | None = None
              ) -> Refusal | None:
        """None when the rules accept ``new_doc`` on top of ``old_doc``, else the refusal.

        Called as CouchDB calls it: ``newDoc`` with its ``_revisions``, ``oldDoc`` the stored
        revision it extends (null for a new record), ``userCtx`` ``{db, name, roles}``."""
        args = {"newDoc": dict(new_doc), "oldDoc": dict(old_doc) if old_doc else None,
                "userCtx": dict(user_ctx), "secObj": dict(sec_obj or {}), "collect": True}
        answer = self._call(f"carecouchRules.validate({_js_string(args)})")
        if answer.get("ok"):
            return None
        if "forbidden" in answer:
            problems = tuple(Problem(str(p.get("code")), str(p.get("message")))
                             for p in answer.get("problems") or [])
            reason = str(answer["forbidden"])
            return Refusal(reason, problems or (Problem(*parse_refusal(reason)),))
        if "unauthorized" in answer:
            return Refusal(str(answer["unauthorized"]), error="unauthorized")
        raise RulesError(f"a rule of {self.ddoc_id} failed: {answer.get('error')}")

    def passes(self, filter_name: str, docs: Sequence[Mapping[str, Any]],
               query: Mapping[str, str]) -> list[bool]:
        """Which of ``docs`` the design document's replication filter ``filter_name`` passes
        with these query parameters: the device asks what it should hold, by the very
        function the server's changes feed runs."""
        result: list[bool] = self._call(
            f"carecouchRules.filter({json.dumps(filter_name)}, {_js_string(list(docs))}, "
            f"{_js_string(dict(query))})")
        return result

    def call(self, module: str, function: str, argument: Any) -> Any:
        """``require(module)[function](argument)`` in the design document (e.g. the NEWS2
        score: ``call("lib/validate/news2", "score", vitals)``)."""
        text = (f"carecouchRules.call({json.dumps(module)}, {json.dumps(function)}, "
                f"{_js_string(argument)})")
        return self._call(text)

    def _call(self, script: str) -> Any:
        with self._lock:
            try:
                result = self._ctx.eval(script)
            except quickjs.JSException as exc:
                raise RulesError(f"the rules of {self.ddoc_id} could not run: {exc}") from exc
        return json.loads(str(result))


@functools.cache
def shipped_rules() -> Rules:
    """The rules in this software's own ``couch/`` (``$CARECOUCH_COUCH_DIR``), compiled once."""
    return Rules.packaged()


def _js_string(value: Any) -> str:
    """``value`` as JSON, as a JavaScript string literal (JSON text is a valid JS string)."""
    return json.dumps(json.dumps(value, separators=(",", ":")))

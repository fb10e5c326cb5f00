"""What every benchmark shares: a server to measure on, and a way to print figures.

Benchmarks run on demand (`.venv/bin/python benchmarks/<name>.py`), never in the test suite.
They use the server named by COUCHDB_URL / COUCHDB_USER / COUCHDB_PASSWORD, or start an
embedded one in a temporary directory exactly as the test harness does.
"""

from __future__ import annotations

import os
import secrets
import statistics
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from carecouch import ddocs, embedded
from carecouch.couch import CouchClient, Doc
from carecouch.parallel import DEFAULT_WORKERS
from carecouch.provisioning import Provisioner


@dataclass(frozen=True)
class Target:
    """The server measured; ``pid`` only when this run started it (an embedded server)."""

    url: str
    user: str
    password: str
    description: str
    pid: int | None = None


@contextmanager
def bench_target() -> Iterator[Target]:
    url = os.environ.get("COUCHDB_URL")
    if url:
        yield Target(url.rstrip("/"), os.environ["COUCHDB_USER"],
                     os.environ["COUCHDB_PASSWORD"], url)
        return
    with tempfile.TemporaryDirectory() as data_dir:
        password = secrets.token_urlsafe(16)
        state = embedded.start(Path(data_dir), 0, "admin", password)
        try:
            yield Target(state.url, "admin", password, f"embedded server at {state.url}",
                         state.pid)
        finally:
            embedded.stop(Path(data_dir))


@contextmanager
def couch_server() -> Iterator[tuple[str, str, str, str]]:
    """``(url, admin user, admin password, description)`` of the server to measure."""
    with bench_target() as target:
        yield target.url, target.user, target.password, target.description


def spread(values: Sequence[float], digits: int = 2, unit: str = " s") -> str:
    """``median (min-max)`` of repeated measurements: on a shared machine one figure alone
    says little, and the range shows how much the runs agree."""
    def shown(value: float) -> str:
        return f"{round(value, digits) + 0.0:.{digits}f}"  # + 0.0: no "-0"

    median = shown(statistics.median(values))
    if len(values) == 1:
        return f"{median}{unit}"
    low, high = shown(min(values)), shown(max(values))
    return f"{median}{unit} ({low}{' to ' if low.startswith('-') else '-'}{high})"


class DesignProvisioner(Provisioner):
    """Provisions caseloads exactly as ``carecouch caseload create|apply`` does, but with the
    design documents given (a benchmark's variant of the shipped ones: e.g. without
    ``validate_doc_update``, or without a view), so that nothing else differs."""

    def __init__(self, client: CouchClient, design: dict[str, Doc], *,
                 workers: int = DEFAULT_WORKERS) -> None:
        super().__init__(client, workers=workers)
        self._design = design

    @cached_property
    def desired(self) -> dict[str, Doc]:
        return self._design


def design_variant(edit: Callable[[Doc], None]) -> dict[str, Doc]:
    """The shipped design documents, the main one changed in place by ``edit`` (and stamped
    with its own version, as provisioning expects)."""
    docs = ddocs.assemble()
    main = {k: v for k, v in docs[ddocs.MAIN_DDOC_ID].items() if k != "carecouch"}
    edit(main)
    return {**docs, ddocs.MAIN_DDOC_ID: ddocs.stamp(ddocs.MAIN_DDOC, main)}


def with_validation(function: str | None) -> dict[str, Doc]:
    """The shipped design documents with ``validate_doc_update`` replaced by ``function``,
    or removed (None); everything else (the lib modules, the views) kept."""
    def edit(main: Doc) -> None:
        if function is None:
            del main["validate_doc_update"]
        else:
            main["validate_doc_update"] = function
    return design_variant(edit)

"""Run many independent CouchDB requests at once (one per caseload), keeping errors apart.

Provisioning 200 caseloads is ~200 round trips that do not depend on each other; running a
few at a time over the client's connection pool turns minutes of waiting into seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar

from .errors import CarecouchError

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_WORKERS = 8


def map_parallel(fn: Callable[[T], R], items: Sequence[T], *, workers: int = DEFAULT_WORKERS,
                 tick: Callable[[], None] | None = None) -> list[R | CarecouchError]:
    """``[fn(item) ...]`` in the order of ``items``; a carecouch error becomes that item's result.

    Other exceptions (bugs) propagate. ``tick`` is called in the calling thread as each item
    finishes, so it may drive a progress bar.
    """
    results: dict[int, R | CarecouchError] = {}

    def run(index: int) -> None:
        try:
            results[index] = fn(items[index])
        except CarecouchError as exc:
            results[index] = exc

    if workers <= 1 or len(items) <= 1:
        for index in range(len(items)):
            run(index)
            if tick:
                tick()
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
            for future in as_completed([pool.submit(run, i) for i in range(len(items))]):
                future.result()
                if tick:
                    tick()
    return [results[i] for i in range(len(items))]

"""``node --test`` for the JavaScript device library (clients/js/test/*.test.js), against the
real bridge and server this session runs. Each node test file is one pytest test, so a
failure names the file and shows node's own report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .support import CLIENT, run_node

FILES = sorted(p.name for p in (CLIENT / "test").glob("*.test.js"))


def test_there_are_node_tests() -> None:
    assert "device.test.js" in FILES and "vectors.test.js" in FILES


@pytest.mark.parametrize("name", FILES)
def test_node(name: str, js_config: Callable[..., Path]) -> None:
    # --test-force-exit: node --test otherwise waits for every handle to close, and what the
    # cancelled live replications leave open (a longpoll _changes request, most likely) kept
    # sync.test.js running some 25 s after its last test (38 s against 14 s, measured).
    done = run_node(["--test", "--test-force-exit", "--test-reporter=spec", f"test/{name}"],
                    js_config())
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    # What the tests measured (t.diagnostic), for pytest -s.
    for line in done.stdout.splitlines():
        if " ms" in line and line.lstrip().startswith("ℹ") and "duration_ms" not in line:
            print(f"{name}: {line.strip()}")
    assert "# fail 0" in done.stdout or "ℹ fail 0" in done.stdout, done.stdout[-3000:]

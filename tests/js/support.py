"""What the JavaScript tests share: where the library is, and running node against the
suite's servers (the fixtures are in conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from carecouch.embedded import project_root

CLIENT = project_root() / "clients" / "js"
TOKEN_LIFETIME = 3600


def npm_ci_done() -> None:
    """The library's own dependencies (clients/js/package-lock.json), installed by ./dev."""
    if not (CLIENT / "node_modules" / "pouchdb").is_dir():
        pytest.fail("clients/js has no node_modules: run ./dev install", pytrace=False)


def run_node(args: list[str], config: Path, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Node.js 20 or newer)", pytrace=False)
    env = {**os.environ, "CARECOUCH_JS_TEST_CONFIG": str(config)}
    return subprocess.run([node, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=CLIENT, env=env)

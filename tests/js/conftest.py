"""The JavaScript device (clients/js/) against the real servers of the suite: the session's
CouchDB-protocol server (embedded, or Apache CouchDB 3.5 with ``COUCHDB_URL``) and a real
bridge (tests/bridge/conftest.py). pytest starts them and hands ``node --test`` (and the
browser tests) one JSON file saying where they are, with identity tokens minted by the test
identity provider; nothing is mocked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from carecouch.embedded import project_root
from carecouch.ids import caseload_db
from tests.bridge.conftest import BridgeServer, World
from tests.bridge.conftest import bridge as bridge  # noqa: F401  (fixtures, re-exported)
from tests.bridge.conftest import bridge_env as bridge_env  # noqa: F401
from tests.bridge.conftest import world as world  # noqa: F401
from tests.conftest import Server

CLIENT = project_root() / "clients" / "js"
TOKEN_LIFETIME = 3600


def npm_ci_done() -> None:
    """The library's own dependencies (clients/js/package-lock.json), installed by ./dev."""
    if not (CLIENT / "node_modules" / "pouchdb").is_dir():
        pytest.fail("clients/js has no node_modules: run ./dev install", pytrace=False)


@pytest.fixture(scope="session")
def js_config(server: Server, bridge: BridgeServer, world: World,
              tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``js_config(**extra)``: the JSON file node reads (CARECOUCH_JS_TEST_CONFIG)."""
    npm_ci_done()
    directory = tmp_path_factory.mktemp("js")

    def write(**extra: Any) -> Path:
        def token(user: str, groups: list[str]) -> str:
            return bridge.idp.token(user, groups, lifetime=TOKEN_LIFETIME)

        nurses = [world.group("nurses")]
        config = {
            "bridge": bridge.url, "couch": server.url,
            "admin": {"user": server.user, "password": server.password},
            "databases": {letter: caseload_db(cid) for letter, cid in world.caseloads.items()},
            "caseloads": world.caseloads, "run": world.run,
            "tokens": {name: token(world.user(name), nurses)
                       for name in ("nurse1", "nurse2", "nurse3", "nurse4", "nurse5")},
            "users": {name: world.user(name) for name in ("nurse1", "nurse2", "nurse3",
                                                          "nurse4", "nurse5", "hca")},
            "hca_token": token(world.user("hca"), []),
            "admin_token": token(world.user("itlead"), [world.group("it")]),
            "tmp": str(directory), **extra}
        path = directory / f"config-{len(list(directory.glob('config-*')))}.json"
        path.write_text(json.dumps(config))
        return path

    return write


def run_node(args: list[str], config: Path, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Node.js 20 or newer)", pytrace=False)
    env = {**os.environ, "CARECOUCH_JS_TEST_CONFIG": str(config)}
    return subprocess.run([node, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=CLIENT, env=env)

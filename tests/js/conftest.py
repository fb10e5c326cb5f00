"""The JavaScript device (clients/js/) against the real servers of the suite: the session's
CouchDB-protocol server (embedded, or Apache CouchDB 3.5 with ``COUCHDB_URL``) and a real
bridge (tests/helpers/bridges.py). pytest starts them and hands ``node --test`` (and the
browser tests) one JSON file saying where they are, with identity tokens minted by the test
identity provider; nothing is mocked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from carecouch.ids import caseload_db
from tests.helpers.bridges import BridgeServer, World
from tests.helpers.server import Server

from .support import TOKEN_LIFETIME, npm_ci_done


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

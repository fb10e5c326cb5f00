"""Fixtures of the bridge tests; the bridge itself, its world and ``make_bridge`` are
tests/helpers/bridges.py's (registered in tests/conftest.py)."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers.bridge_client import DeviceClient
from tests.helpers.bridges import BridgeServer, World


@pytest.fixture
def nurse(bridge: BridgeServer, world: World) -> DeviceClient:
    """An enrolled device of a ward nurse (caseloads a and b)."""
    return bridge.enrolled_device(world.user(f"nurse{uuid.uuid4().hex[:6]}"),
                                  [world.group("nurses")])

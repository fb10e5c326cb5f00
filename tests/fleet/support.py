"""The fleet tests' own fleet (its policy, caseloads, bridge and chaos proxy) and the known
scenario they assert on; tests/fleet/conftest.py builds both once per session."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carecouch.couch import CouchClient
from carecouch.fleet import FleetStore
from carecouch.ids import caseload_db
from mobile_stub import enrolment
from mobile_stub.crypto import KdfParams
from mobile_stub.device import Device
from mobile_stub.session import BridgeSession
from mobile_stub.store import DeviceStore
from tests.helpers.bridges import BridgeServer
from tests.helpers.chaos_proxy import ChaosProxy
from tests.helpers.devices import FAST_KDF, PASSPHRASE, fast_options
from tests.helpers.records import observation

POLICY = """\
version: 1
defaults:
  credential_lifetime: 1h
  offline_grace: 2d
admins:
  groups: [it-{run}]
break_glass:
  groups: [senior-{run}]
  lifetime: 15m
rules:
  - name: fleet nurses
    groups: [nurses-{run}]
    clinical_roles: [nurse]
    teams: [fleet-{run}]
  - name: medics
    groups: [medics-{run}]
    clinical_roles: [nurse]
    teams: [medics-{run}]
"""
# A rule beside the record rules that the device cannot know of (it learns only
# _design/carecouch): the server refuses what it marks, as a refused write in the field.
REFUSING = """function (newDoc) {
  if (newDoc.visit === 'refuse-me') {
    throw({forbidden: 'fleet.refused: this visit of patient-0042 is refused'});
  }
}"""
METRICS_TOKEN = secrets.token_urlsafe(32)
VITALS = {k: v for k, v in observation("x", "y").items()
          if k not in ("_id", "type", "author", "device", "at", "clock_offset_ms")}


@dataclass
class Fleet:
    run: str
    bridge: BridgeServer
    proxy: ChaosProxy
    admin: CouchClient
    caseloads: dict[str, str]          # north, south, east -> id
    stores: list[DeviceStore] = field(default_factory=list)
    directory: Path = Path()

    @property
    def store(self) -> FleetStore:
        return FleetStore(self.admin)

    def token(self, user: str, *groups: str) -> str:
        return self.bridge.idp.token(user, [g.format(run=self.run) for g in groups],
                                     lifetime=3600)

    def admin_token(self) -> str:
        return self.token(f"it-lead-{self.run}", "it-{run}")

    def device(self, name: str, *, label: str | None = None, group: str = "nurses"
               ) -> tuple[BridgeSession, Device]:
        """A reference device enrolled as nurse ``name`` (of ``group``: "nurses" hold north
        and south, "medics" west) and logged in."""
        path = self.directory / f"{name}-{uuid.uuid4().hex[:6]}" / "store.sqlite"
        store = DeviceStore.create(path, PASSPHRASE, kdf=KdfParams.new(**FAST_KDF))
        self.stores.append(store)
        enrolment.enrol(store, self.bridge.url, self.token(f"{name}-{self.run}",
                                                           group + "-{run}"), label)
        session = BridgeSession(store)
        session.login()
        return session, session.device(options=fast_options())

    def db(self, key: str) -> str:
        return caseload_db(self.caseloads[key])


@dataclass
class Scenario:
    """The known fleet every fleet test asserts on (see :func:`scenario`)."""

    fleet: Fleet
    devices: dict[str, str]                 # name -> device id
    queued_before_send: dict[str, list[dict[str, Any]]]
    care_plan: str = ""

"""Replication ids: which checkpoint belongs to which replication.

CouchDB names a replication by a hash of everything that changes what it copies (its
"replication id"); a checkpoint stored under that id on both sides is valid only for it. Ours
hashes: the device store's id, the local database, the server URL *without* user name (device
credentials are short-lived and renamed each session, and a new user must not restart a
caseload from zero), the remote database, the direction and the filter.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from carecouch.couch import split_credentials

from .filters import ReplicationFilter

# Bumped when the inputs below change; recorded in every checkpoint (as CouchDB does).
REPLICATION_ID_VERSION = 1

Direction = Literal["pull", "push"]


def replication_id(*, device_id: str, local_db: str, server_url: str, remote_db: str,
                   direction: Direction, filter: ReplicationFilter | None) -> str:
    server, _, _ = split_credentials(server_url)
    parts = [REPLICATION_ID_VERSION, device_id, local_db, server, remote_db, direction,
             filter.canonical() if filter else None]
    digest = hashlib.md5(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()
    return f"carecouch-device-{digest}"

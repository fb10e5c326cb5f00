"""No patient data on disk in the clear: not in the store file, its journal/WAL, or anywhere
else the store writes; and the passphrase guards the key."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from carecouch.couch import Database
from mobile_stub.crypto import KdfParams, Sealer, new_data_key
from mobile_stub.device import Device
from mobile_stub.errors import StoreLocked, StoreMissing, WrongPassphrase
from mobile_stub.store import DeviceStore
from tests.helpers.devices import FAST_KDF, PASSPHRASE

NAME = "Philippa Quackenbush-Oyelaran"
NOTE = "allergic to penicillin; lives with her daughter Zuleika"
REFUSED = "Zebedee Marchbanks-Ormerod"

RULES = """function (newDoc) {
  if (newDoc.refuse) { throw({forbidden: 'test.refused: will not store ' + newDoc.name}); }
}"""


def leaked(directory: Path, secrets: list[str]) -> dict[str, list[str]]:
    """Which secrets appear (UTF-8 or UTF-16) in which file under ``directory``."""
    found: dict[str, list[str]] = {}
    for path in directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits = [s for s in secrets for enc in ("utf-8", "utf-16-le", "utf-16-be")
                    if s.encode(enc) in data]
            if hits:
                found[str(path)] = hits
    return found


def test_no_plaintext_patient_data_in_any_store_file(
        member_db: Database, make_device: Callable[..., Device]) -> None:
    member_db.put({"_id": "_design/rules", "validate_doc_update": RULES})
    member_db.put({"_id": "patient:1", "type": "patient", "name": NAME, "note": NOTE})
    device = make_device(member_db)
    assert device.sync(member_db.name).ok
    doc = device.store.database(member_db.name).get("patient:1")
    device.edit(member_db.name, {**doc, "note": NOTE + " (confirmed)"})
    device.new_record(member_db.name, "note", {"subject": "patient:1", "refuse": True,
                                              "name": REFUSED, "text": NOTE})
    report = device.sync(member_db.name)
    assert report.ok and report.rejected == 1  # the server's reason quotes the name
    assert REFUSED in device.rejections(member_db.name)[0].reason
    directory = device.store.path.parent

    # While open (WAL and shared-memory files present) and after closing.
    assert leaked(directory, [NAME, NOTE, REFUSED, "penicillin"]) == {}
    device.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    device.store.close()
    assert leaked(directory, [NAME, NOTE, REFUSED, "penicillin"]) == {}

    reopened = DeviceStore.open(device.store.path, PASSPHRASE)
    assert reopened.database(member_db.name).get("patient:1")["name"] == NAME
    reopened.close()


def test_the_passphrase_unlocks_and_wipe_destroys(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    store = DeviceStore.create(path, PASSPHRASE, kdf=KdfParams.new(**FAST_KDF))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    db = store.add_database("caseload_x", "http://127.0.0.1:1")
    db.put({"_id": "note:1", "text": NOTE})
    store.close()
    with pytest.raises(WrongPassphrase):
        DeviceStore.open(path, "wrong passphrase")
    locked = DeviceStore.open(path)
    with pytest.raises(StoreLocked):
        locked.database("caseload_x").get("note:1")
    locked.unlock(PASSPHRASE)
    assert locked.database("caseload_x").get("note:1")["text"] == NOTE
    locked.wipe()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StoreMissing):
        DeviceStore.open(path, PASSPHRASE)


def test_a_ciphertext_only_opens_where_it_belongs() -> None:
    sealer = Sealer(new_data_key())
    sealed = sealer.seal(b'{"name": "x"}', "caseload_a", "note:1", "1-abc")
    assert sealer.open(sealed, "caseload_a", "note:1", "1-abc") == b'{"name": "x"}'
    for elsewhere in (("caseload_a", "note:2", "1-abc"), ("caseload_a", "note:1", "2-abc"),
                      ("caseload_b", "note:1", "1-abc")):
        with pytest.raises(ValueError):
            sealer.open(sealed, *elsewhere)


def test_the_default_kdf_is_memory_hard() -> None:
    params = KdfParams.new()
    assert params.algorithm in ("argon2id", "scrypt") and params.memory_kib >= 64 * 1024

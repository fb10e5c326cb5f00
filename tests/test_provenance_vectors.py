"""The record signature format, pinned by shared test vectors (tests/vectors/): what is
signed, byte for byte, and the signature a device's key makes of it. A PouchDB app's library
checks itself against the same file, so the two devices cannot drift apart."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carecouch import provenance
from carecouch.provenance import Provenance, SignerKey, jcs
from carecouch.records import load_registry
from carecouch.signing import b64url, key_id, raw_public

VECTORS = json.loads((Path(__file__).parent / "vectors" / "record_signatures.json")
                     .read_text(encoding="utf-8"))
KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(VECTORS["private_key_seed_hex"]))


def keys_for(signer: str) -> dict[str, SignerKey]:
    return {key_id(KEY.public_key()): SignerKey(signer, KEY.public_key())}


def test_the_vector_key_is_what_the_file_says() -> None:
    assert b64url(raw_public(KEY.public_key())) == VECTORS["public_key_b64url"]
    assert key_id(KEY.public_key()) == VECTORS["key_id"]


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_signing_input_and_signature_match_the_vectors(vector: dict[str, Any]) -> None:
    assert provenance.signing_input(vector["doc"]).decode("utf-8") == vector["signing_input"]
    signed = provenance.sign(vector["doc"], KEY, vector["signature"]["signer"])
    assert signed["signature"] == vector["signature"]
    verdict = provenance.verify(signed, keys_for(vector["signature"]["signer"]))
    assert verdict.provenance is Provenance.VERIFIED


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_changing_any_field_breaks_the_signature(vector: dict[str, Any]) -> None:
    signed = {**vector["doc"], "signature": vector["signature"]}
    keys = keys_for(vector["signature"]["signer"])
    for name in [k for k in vector["doc"] if not k.startswith("_") or k == "_id"]:
        tampered = {**signed, name: "changed"}
        assert provenance.verify(tampered, keys).provenance is Provenance.BAD_SIGNATURE, name
    # CouchDB's own metadata is not what was signed: a stored revision still verifies.
    stored = {**signed, "_rev": "9-" + "f" * 32, "_revisions": {"start": 9, "ids": ["f" * 32]}}
    assert provenance.verify(stored, keys).provenance is Provenance.VERIFIED


def test_a_signature_by_another_device_than_the_record_names_is_bad() -> None:
    vector = VECTORS["vectors"][0]
    signed = {**vector["doc"], "signature": vector["signature"]}
    verdict = provenance.verify(signed, keys_for("another-device"))
    assert verdict.provenance is Provenance.UNKNOWN_KEY  # signer in the record differs
    moved = {**signed, "device": "another-device"}
    assert provenance.verify(moved, keys_for(vector["signature"]["signer"])).provenance is \
        Provenance.BAD_SIGNATURE


def test_the_registry_names_the_signature_field() -> None:
    assert load_registry().signature_field == provenance.SIGNATURE_FIELD


def test_jcs_agrees_with_ecmascript() -> None:
    # RFC 8785 numbers and strings are ECMAScript's JSON.stringify: checked against node's.
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed (it runs the embedded server too)")
    values: list[Any] = [0.0, -0.0, 1.0, 37.2, 0.1, 1e21, 1e20, 1e-7, 1.5e-7, 1e-6, 5e-324,
                         1.7976931348623157e308, -2.5, 12345.678, 0.30000000000000004,
                         123456789012345680000.0, 4.35, 0.000001234, 2**53 + 0.0,
                         "plain", "quote \" backslash \\ slash /", "tab\t newline\n \u0001",
                         "é 静脈 \u2028 \U0001f489"]
    ours = [jcs(v) for v in values]
    theirs = json.loads(subprocess.run(
        [node, "-e", "const v = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
                     "process.stdout.write(JSON.stringify(v.map(x => JSON.stringify(x))))"],
        input=json.dumps(values), capture_output=True, text=True, check=True).stdout)
    assert ours == theirs

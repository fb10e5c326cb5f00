"""Encryption at rest for the device store.

Layout (docs/device.md, "Encryption"):

- a random 256-bit **data key** per device encrypts every document body and attachment with
  AES-256-GCM; the associated data binds each ciphertext to its database, document id and
  revision, so a ciphertext copied onto another row fails to decrypt instead of showing the
  wrong patient's record;
- the data key is stored only **wrapped** (AES-256-GCM) by a key derived from the user's
  passphrase with a memory-hard KDF (Argon2id, or scrypt where the OpenSSL build lacks it),
  so a stolen device file needs the passphrase, and guessing it costs memory as well as time;
- wiping destroys the wrapped key; without it the ciphertext is noise.
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import WrongPassphrase

NONCE_BYTES = 12
KEY_BYTES = 32
_WRAP_AAD = b"carecouch-device/data-key/v1"


@dataclass(frozen=True)
class KdfParams:
    """How the key-encryption key is derived from the passphrase; stored beside the salt."""

    algorithm: str = "argon2id"
    memory_kib: int = 64 * 1024   # 64 MiB: OWASP's Argon2id floor is 19 MiB; we can afford more
    iterations: int = 3
    lanes: int = 4
    salt_hex: str = ""

    @classmethod
    def new(cls, *, algorithm: str | None = None, memory_kib: int | None = None,
            iterations: int | None = None) -> KdfParams:
        """Fresh parameters with a random salt (Argon2id unless unavailable)."""
        chosen = algorithm or ("argon2id" if argon2_available() else "scrypt")
        defaults = cls() if chosen == "argon2id" else cls(algorithm="scrypt",
                                                         memory_kib=64 * 1024,
                                                         iterations=2 ** 16, lanes=1)
        return cls(algorithm=chosen,
                   memory_kib=memory_kib or defaults.memory_kib,
                   iterations=iterations or defaults.iterations,
                   lanes=defaults.lanes,
                   salt_hex=os.urandom(16).hex())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> KdfParams:
        return cls(**{k: raw[k] for k in ("algorithm", "memory_kib", "iterations", "lanes",
                                          "salt_hex")})


def argon2_available() -> bool:
    try:
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id  # noqa: F401
    except ImportError:  # cryptography < 44
        return False
    return True


def derive_key(passphrase: str, params: KdfParams) -> bytes:
    """The key-encryption key for ``passphrase`` (slow on purpose)."""
    salt = bytes.fromhex(params.salt_hex)
    secret = passphrase.encode("utf-8")
    if params.algorithm == "argon2id":
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
        return Argon2id(salt=salt, length=KEY_BYTES, iterations=params.iterations,
                        lanes=params.lanes, memory_cost=params.memory_kib).derive(secret)
    if params.algorithm == "scrypt":
        # scrypt's memory is 128 * r * n bytes; r = 8 gives n = memory_kib, the stored iterations.
        return Scrypt(salt=salt, length=KEY_BYTES, n=params.iterations, r=8,
                      p=params.lanes).derive(secret)
    raise ValueError(f"unknown KDF {params.algorithm!r}")


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def wrap_key(data_key: bytes, kek: bytes, device_id: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, data_key, _WRAP_AAD + device_id.encode())


def unwrap_key(wrapped: bytes, kek: bytes, device_id: str) -> bytes:
    """The data key, or :class:`WrongPassphrase` when the KEK does not open it."""
    try:
        return AESGCM(kek).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:],
                                   _WRAP_AAD + device_id.encode())
    except InvalidTag:
        raise WrongPassphrase("wrong passphrase for this device store") from None


class Sealer:
    """Encrypts and decrypts values bound to where they belong (their associated data)."""

    def __init__(self, data_key: bytes) -> None:
        self._aead = AESGCM(data_key)
        self._nonces = _NoncePool()

    def seal(self, plaintext: bytes, *context: str) -> bytes:
        nonce = self._nonces.take()
        return nonce + self._aead.encrypt(nonce, plaintext, _aad(context))

    def open(self, sealed: bytes, *context: str) -> bytes:
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _aad(context))
        except InvalidTag:
            raise ValueError("stored ciphertext does not match its row (tampered or moved)"
                             ) from None

def _aad(context: tuple[str, ...]) -> bytes:
    # Length-prefixed, so ("ab", "c") and ("a", "bc") can never produce the same bytes.
    parts = [part.encode("utf-8") for part in context]
    return b"".join(len(raw).to_bytes(4, "big") + raw for raw in parts)


class _NoncePool:
    """Random 96-bit GCM nonces, drawn from the OS CSPRNG a few hundred at a time: the same
    randomness as one ``os.urandom(12)`` per seal, without a system call per document when a
    pull encrypts ten thousand of them."""

    _BATCH = 512

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0

    def take(self) -> bytes:
        with self._lock:
            if self._offset >= len(self._buffer):
                self._buffer, self._offset = os.urandom(NONCE_BYTES * self._BATCH), 0
            nonce = self._buffer[self._offset:self._offset + NONCE_BYTES]
            self._offset += NONCE_BYTES
            return nonce

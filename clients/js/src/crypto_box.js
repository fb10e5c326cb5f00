// Encryption at rest (docs/js-device.md, "Encryption at rest"), with WebCrypto only.
//
// A random 256-bit data key per device store encrypts every document body, attachment and
// secret with AES-256-GCM; the associated data binds each ciphertext to where it belongs
// (database, document id and revision; a secret's name), so a ciphertext moved to another
// row fails to open. The data key is kept only wrapped (AES-256-GCM) by a key derived from
// the passphrase with PBKDF2-HMAC-SHA-256 (600,000 iterations, OWASP's 2023 figure). Once
// unwrapped it is imported as a non-extractable CryptoKey: the page can use it but no script
// can read its bytes.
//
// Why PBKDF2 and not Argon2id (the reference device's KDF): PBKDF2 is native in every
// browser's WebCrypto; Argon2id needs WebAssembly or a pure-JS implementation that takes
// seconds at 64 MiB on a tablet. PBKDF2 costs an attacker with GPUs less per guess, so the
// same passphrase rule applies here (passphrase.js): length is what resists offline guessing.

import {WrongPassphrase} from './errors.js';
import {b64url, concat, fromB64url, randomBytes, subtle, utf8} from './encoding.js';

export const KEYRING_VERSION = 1;
export const PBKDF2_ITERATIONS = 600000;
const IV_BYTES = 12;

async function wrappingKey(passphrase, salt, iterations) {
  const material = await subtle.importKey('raw', utf8(passphrase.normalize('NFC')), 'PBKDF2', false, ['deriveKey']);
  return subtle.deriveKey({name: 'PBKDF2', hash: 'SHA-256', salt, iterations}, material,
                          {name: 'AES-GCM', length: 256}, false, ['encrypt', 'decrypt']);
}

function importDataKey(raw) {
  return subtle.importKey('raw', raw, {name: 'AES-GCM'}, false, ['encrypt', 'decrypt']);
}

async function encrypt(key, aad, plaintext) {
  const iv = randomBytes(IV_BYTES);
  const ct = new Uint8Array(await subtle.encrypt({name: 'AES-GCM', iv, additionalData: utf8(aad)}, key, plaintext));
  return b64url(concat(iv, ct));
}

async function decrypt(key, aad, sealed) {
  const bytes = fromB64url(sealed);
  return new Uint8Array(await subtle.decrypt({name: 'AES-GCM', iv: bytes.subarray(0, IV_BYTES),
                                              additionalData: utf8(aad)}, key, bytes.subarray(IV_BYTES)));
}

// A new keyring for store `storeId`: {keyring (kept in the clear), box (the open Box)}.
export async function createKeyring(storeId, passphrase, {iterations = PBKDF2_ITERATIONS} = {}) {
  const salt = randomBytes(16);
  const raw = randomBytes(32);
  const wrapped = await encrypt(await wrappingKey(passphrase, salt, iterations), `carecouch-keyring-v1\n${storeId}`, raw);
  const keyring = {version: KEYRING_VERSION, store: storeId,
                   kdf: {name: 'PBKDF2-SHA-256', iterations, salt: b64url(salt)}, wrapped};
  const box = new Box(await importDataKey(raw));
  raw.fill(0);
  return {keyring, box};
}

export async function openKeyring(keyring, passphrase) {
  const key = await wrappingKey(passphrase, fromB64url(keyring.kdf.salt), keyring.kdf.iterations);
  let raw;
  try {
    raw = await decrypt(key, `carecouch-keyring-v1\n${keyring.store}`, keyring.wrapped);
  } catch {
    throw new WrongPassphrase('wrong passphrase for this device');
  }
  const box = new Box(await importDataKey(raw));
  raw.fill(0);
  return box;
}

// Seals and opens bytes under the data key; `aad` says where a ciphertext belongs.
export class Box {
  constructor(key) {
    this.key = key;
  }

  seal(aad, bytes) {
    return encrypt(this.key, aad, bytes);
  }

  open(aad, sealed) {
    return decrypt(this.key, aad, sealed);
  }

  async sealJson(aad, value) {
    return this.seal(aad, utf8(JSON.stringify(value)));
  }

  async openJson(aad, sealed) {
    return JSON.parse(new TextDecoder().decode(await this.open(aad, sealed)));
  }
}

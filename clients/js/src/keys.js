// Ed25519 keys and signatures (@noble/ed25519: audited, no dependencies, the same code path
// in Node, every browser and React Native, where WebCrypto's Ed25519 is recent or missing;
// its async API hashes with WebCrypto's SHA-512). A device key is its 32-byte seed.
//
// Key ids are the first 16 hex digits of sha256(raw public key): carecouch/signing.py
// `key_id`, used in JWS headers (`kid`) and in record signatures (`key`).

import * as ed from '@noble/ed25519';

import {b64url, fromB64url, hex, randomBytes, sha256} from './encoding.js';

export const PUBLIC_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;

export function newSeed() {
  return randomBytes(32);
}

export async function publicKeyOf(seed) {
  return ed.getPublicKeyAsync(seed);
}

export async function keyId(rawPublic) {
  return hex(await sha256(rawPublic)).slice(0, 16);
}

export async function sign(seed, message) {
  return ed.signAsync(message, seed);
}

// true when `signature` (raw bytes) signs `message` under `rawPublic`; never throws for
// malformed input (a bad signature is a bad signature).
export async function verify(rawPublic, signature, message) {
  if (signature.length !== SIGNATURE_BYTES || rawPublic.length !== PUBLIC_KEY_BYTES) { return false; }
  try {
    return await ed.verifyAsync(signature, message, rawPublic);
  } catch {
    return false;
  }
}

export function publicFromB64url(text) {
  const raw = fromB64url(text);
  if (raw.length !== PUBLIC_KEY_BYTES) {
    throw new TypeError(`an Ed25519 public key is ${PUBLIC_KEY_BYTES} bytes, got ${raw.length}`);
  }
  return raw;
}

export {b64url};

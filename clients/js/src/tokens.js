// What the bridge signs and the device checks offline: JWS compact tokens with EdDSA
// (docs/bridge.md, "Signed snapshot and lease tokens"; carecouch/signing.py `verify_token`),
// and the bridge keys the device pinned at enrolment (mobile_stub/trust.py).

import {TokenRefused} from './errors.js';
import {fromB64url, fromUtf8, utf8} from './encoding.js';
import {keyId, publicFromB64url, verify, b64url} from './keys.js';

export const SNAPSHOT_TYPE = 'carecouch-snapshot+jws';
export const LEASE_TYPE = 'carecouch-lease+jws';
const OTHER_KEY = 'signed with another key';

function json(segment) {
  const value = JSON.parse(fromUtf8(fromB64url(segment)));
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError('not a JSON object');
  }
  return value;
}

// The payload of `token` if `rawPublic` signed it as `typ`; throws TokenRefused otherwise.
export async function verifyToken(token, rawPublic, typ) {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3) { throw new TokenRefused('not a JWS compact token (three dot-separated parts)'); }
  let header, payload, signature;
  try {
    header = json(parts[0]);
    payload = json(parts[1]);
    signature = fromB64url(parts[2]);
  } catch (err) {
    throw new TokenRefused(`malformed token (${err.message})`);
  }
  if (header.alg !== 'EdDSA' || header.typ !== typ) { throw new TokenRefused(`not an EdDSA ${typ} token`); }
  if (header.kid !== await keyId(rawPublic)) { throw new TokenRefused(OTHER_KEY); }
  if (!await verify(rawPublic, signature, utf8(`${parts[0]}.${parts[1]}`))) {
    throw new TokenRefused('the signature does not verify');
  }
  return payload;
}

export class PinnedKeys {
  constructor(keys) {
    this.keys = keys;  // [{kid, raw}]
  }

  // The Ed25519 keys of a JWK set whose `kid` is the key id of `x` (GET /v1/keys).
  static async fromJwks(jwks) {
    if (!jwks || !Array.isArray(jwks.keys)) { throw new TokenRefused("the bridge's /v1/keys answer is not a JWK set"); }
    const keys = [];
    for (const jwk of jwks.keys) {
      if (!jwk || jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519') { continue; }
      let raw;
      try {
        raw = publicFromB64url(String(jwk.x));
      } catch (err) {
        throw new TokenRefused(`the bridge published a malformed key (${err.message})`);
      }
      if (jwk.kid !== await keyId(raw)) { throw new TokenRefused('the bridge published a key whose kid does not match it'); }
      keys.push({kid: jwk.kid, raw});
    }
    if (keys.length === 0) { throw new TokenRefused('the bridge published no Ed25519 signing key'); }
    return new PinnedKeys(keys);
  }

  toJwks() {
    return {keys: this.keys.map((k) => ({kty: 'OKP', crv: 'Ed25519', kid: k.kid, x: b64url(k.raw)}))};
  }

  get kids() {
    return this.keys.map((k) => k.kid);
  }

  // The payload of `token` if a pinned key signed it as `typ`; TokenRefused naming `what`.
  async verify(token, typ, what) {
    let problem = OTHER_KEY;
    for (const key of this.keys) {
      try {
        return await verifyToken(token, key.raw, typ);
      } catch (err) {
        if (!(err instanceof TokenRefused)) { throw err; }
        if (err.message !== OTHER_KEY) { problem = err.message; }
      }
    }
    if (problem === OTHER_KEY) { problem = 'signed by a key this device did not pin when it enrolled'; }
    throw new TokenRefused(`${what} does not verify: ${problem}`);
  }
}

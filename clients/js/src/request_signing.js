// Signed bridge requests (docs/bridge.md, "Signing a request"; the reference is
// carecouch/signing.py `canonical_request` and `request_headers`). The signed string is eight
// lines joined by "\n", no trailing newline: version, METHOD, path as sent (no query), the raw
// query, sha256 hex of the body bytes, device id, Unix timestamp, nonce.

import {b64url, hex, randomBytes, sha256, utf8} from './encoding.js';
import {sign} from './keys.js';

export const REQUEST_SIGNATURE_VERSION = 'carecouch-request-v1';
export const HEADER_DEVICE = 'X-Carecouch-Device';
export const HEADER_TIMESTAMP = 'X-Carecouch-Timestamp';
export const HEADER_NONCE = 'X-Carecouch-Nonce';
export const HEADER_SIGNATURE = 'X-Carecouch-Signature';

export async function canonicalRequest({method, path, query = '', body, device, timestamp, nonce}) {
  const bodyHash = hex(await sha256(body || new Uint8Array(0)));
  return [REQUEST_SIGNATURE_VERSION, method.toUpperCase(), path, query, bodyHash, device,
          String(timestamp), nonce].join('\n');
}

export function newNonce() {
  return b64url(randomBytes(18));  // 24 characters of A-Z a-z 0-9 - _
}

// The four headers of a signed request. `body` is the exact bytes sent (serialise the JSON
// once, sign those bytes, send those bytes).
export async function requestHeaders(seed, device, method, path, body, {query = '', timestamp,
                                                                        nonce} = {}) {
  timestamp = timestamp === undefined ? Math.floor(Date.now() / 1000) : timestamp;
  nonce = nonce || newNonce();
  const message = await canonicalRequest({method, path, query, body, device, timestamp, nonce});
  return {
    [HEADER_DEVICE]: device, [HEADER_TIMESTAMP]: String(timestamp), [HEADER_NONCE]: nonce,
    [HEADER_SIGNATURE]: b64url(await sign(seed, utf8(message)))
  };
}

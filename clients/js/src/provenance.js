// Record signatures (docs/record-rules.md, "Provenance"; carecouch/provenance.py; vectors in
// tests/vectors/record_signatures.json). The signed bytes are "carecouch-record-v1\n" +
// JCS(content), content being the revision minus CouchDB's metadata and the signature, with
// `_id`, `_deleted: true` for a deletion, and each attachment as {content_type, digest}.

import {b64url, fromB64url, fromBase64, utf8} from './encoding.js';
import {canonicalJson} from './jcs.js';
import {keyId, publicKeyOf, sign, verify} from './keys.js';
import {md5Binary} from './md5.js';

export const DOMAIN = 'carecouch-record-v1\n';
export const SIGNATURE_FIELD = 'signature';
const METADATA = new Set(['_rev', '_revisions', '_conflicts', '_deleted_conflicts', '_revs_info',
                          '_local_seq', '_attachments', '_deleted', SIGNATURE_FIELD]);

// CouchDB's digest: the stub's, or md5-<base64> of the inline data about to be pushed.
export function attachmentDigest(att) {
  if (typeof att.data === 'string') {
    return 'md5-' + btoa(md5Binary(fromBase64(att.data)));
  }
  return att.digest === undefined || att.digest === null ? null : String(att.digest);
}

export function signedContent(doc) {
  const out = {};
  for (const [k, v] of Object.entries(doc)) {
    if (!METADATA.has(k)) { out[k] = v; }
  }
  if (doc._deleted === true) { out._deleted = true; }
  const atts = doc._attachments;
  if (atts && typeof atts === 'object' && Object.keys(atts).length) {
    out._attachments = {};
    for (const [name, att] of Object.entries(atts)) {
      if (att && typeof att === 'object') {
        out._attachments[name] = {content_type: att.content_type, digest: attachmentDigest(att)};
      }
    }
  }
  return out;
}

export function signingInput(doc) {
  return DOMAIN + canonicalJson(signedContent(doc));
}

// `doc` with this key's signature (replacing any it had).
export async function signRecord(doc, seed, signer) {
  const signature = await sign(seed, utf8(signingInput(doc)));
  return {...doc, [SIGNATURE_FIELD]: {signer, key: await keyId(await publicKeyOf(seed)),
                                      alg: 'Ed25519', sig: b64url(signature)}};
}

// Whether `rawPublic` signed `doc` as it stands.
export async function verifyRecord(doc, rawPublic) {
  const signature = doc[SIGNATURE_FIELD];
  if (!signature || typeof signature.sig !== 'string') { return false; }
  let sig;
  try { sig = fromB64url(signature.sig); } catch { return false; }
  return verify(rawPublic, sig, utf8(signingInput(doc)));
}

// The JavaScript device against the shared vectors the Python code generates and checks
// (tests/vectors/: device_vectors.json, record_signatures.json): same signing strings, same
// signatures, same tokens trusted and refused, same revision ids, stamps, selectors and
// passphrase rule. Needs no server.

import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import {test} from 'node:test';

import {
  PinnedKeys, LEASE_TYPE, TokenRefused, WeakPassphrase, canonicalRequest, checkPassphrase,
  encoding, keyId, newRecordId, newRev, publicKeyOf, requestHeaders, signRecord, signingInput,
  stampChanges, urgentSelector, verifyRecord, verifySnapshot
} from '../src/index.js';

const read = (name) => JSON.parse(readFileSync(new URL(`../../../tests/vectors/${name}`, import.meta.url), 'utf8'));
const V = read('device_vectors.json');
const SIGS = read('record_signatures.json');
const REGISTRY = JSON.parse(readFileSync(new URL('../../../couch/validate_functions/record_types.json', import.meta.url), 'utf8'));
const seed = encoding.fromHex(V.device_seed_hex);

test('the device key and its id', async () => {
  const pub = await publicKeyOf(seed);
  assert.equal(encoding.b64url(pub), V.device_public_b64url);
  assert.equal(await keyId(pub), V.device_key_id);
});

test('request signing: the canonical string and the four headers, byte for byte', async () => {
  for (const r of V.requests) {
    const body = new TextEncoder().encode(r.body);
    assert.equal(await canonicalRequest({method: r.method, path: r.path, query: r.query, body,
                                         device: r.device, timestamp: r.timestamp, nonce: r.nonce}), r.canonical);
    assert.deepEqual(await requestHeaders(seed, r.device, r.method, r.path, body,
                                          {query: r.query, timestamp: r.timestamp, nonce: r.nonce}), r.headers);
  }
});

test('the snapshot verifies against the pinned key and reads as the vector says', async () => {
  const pinned = await PinnedKeys.fromJwks(V.bridge_jwks);
  const s = await verifySnapshot(V.snapshot.token, pinned, V.snapshot.device);
  assert.equal(s.user, V.snapshot.parsed.user);
  assert.equal(s.username, V.snapshot.parsed.username);
  assert.equal(s.offlineUntil, Date.parse(V.snapshot.parsed.offline_until));
  const dbs = Object.fromEntries(s.databases.map((d) => [d.name, {caseload: d.caseload,
    record_types: [...d.recordTypes].sort(), clinical_roles: d.clinicalRoles}]));
  assert.deepEqual(dbs, V.snapshot.parsed.databases);
});

test('every snapshot the reference device refuses, the JavaScript device refuses', async () => {
  const pinned = await PinnedKeys.fromJwks(V.bridge_jwks);
  for (const bad of V.refused_snapshots) {
    await assert.rejects(verifySnapshot(bad.token, pinned, V.snapshot.device),
                         (err) => err instanceof TokenRefused && new RegExp(bad.why).test(err.message), bad.name);
  }
});

test('lease tokens: the valid one gives its claims, the others are refused', async () => {
  const pinned = await PinnedKeys.fromJwks(V.bridge_jwks);
  assert.deepEqual(await pinned.verify(V.lease.token, LEASE_TYPE, 'the lease'), V.lease.claims);
  for (const bad of V.refused_leases) {
    await assert.rejects(pinned.verify(bad.token, LEASE_TYPE, 'the lease'),
                         (err) => err instanceof TokenRefused && new RegExp(bad.why).test(err.message), bad.name);
  }
});

test('record signatures: signing input and signature of every vector', async () => {
  const sigSeed = encoding.fromHex(SIGS.private_key_seed_hex);
  const pub = await publicKeyOf(sigSeed);
  assert.equal(encoding.b64url(pub), SIGS.public_key_b64url);
  for (const v of SIGS.vectors) {
    assert.equal(signingInput(v.doc), v.signing_input, v.name);
    const signed = await signRecord(v.doc, sigSeed, v.signature.signer);
    assert.deepEqual(signed.signature, v.signature, v.name);
    assert.ok(await verifyRecord(signed, pub));
    assert.equal(await verifyRecord({...signed, [Object.keys(v.doc).find((k) => !k.startsWith('_'))]: 'changed'}, pub), false);
  }
});

test('revision ids, changed stamps, record ids and the urgent selector', () => {
  for (const r of V.new_rev) { assert.equal(newRev(r.parent, r.body, r.deleted), r.rev); }
  for (const s of V.stamp_changes) { assert.deepEqual(stampChanges(REGISTRY, s.doc, s.base, s.by, s.at), s.stamps, s.name); }
  for (const u of V.urgent_selector) { assert.deepEqual(urgentSelector(REGISTRY, u.query), u.selector); }
  assert.match(newRecordId(REGISTRY, 'observation', V.record_ids.owner), new RegExp(V.record_ids['append-only']));
  assert.match(newRecordId(REGISTRY, 'care_plan', V.record_ids.owner), new RegExp(V.record_ids.other));
});

test('the passphrase rule accepts and refuses what the reference device does', () => {
  for (const p of V.passphrases) {
    if (p.ok) {
      checkPassphrase(p.passphrase);
    } else {
      assert.throws(() => checkPassphrase(p.passphrase), WeakPassphrase, p.passphrase);
    }
  }
});

// Leases on exclusive records through the real bridge: create, claim, complete offline under
// a verified lease token, and what another clinician is refused.

import assert from 'node:assert/strict';
import {test} from 'node:test';

import {BridgeError, PolicyRefused, TokenRefused, encoding} from '../src/index.js';
import {A, admin, enrolled} from './helpers.js';

const CHECK = {medication: 'morphine sulfate 10 mg', expected_count: 12};

test('claim a lease, complete the controlled-drug check offline, sync: the server holds the completion', async () => {
  const nurse = await enrolled('nurse1');
  const record = await nurse.createRecord(A, 'cd_check', 'patient-0042', CHECK);
  assert.equal(record.status, 'pending');
  const claimed = await nurse.claimLease(A, record._id);
  assert.equal(claimed.lease.holder, nurse.writer);
  const claims = await nurse.leaseClaims(A, record._id);
  assert.equal(claims.device, nurse.deviceId);
  assert.equal(claims.record, record._id);
  assert.equal((await nurse.get(A, record._id)).lease.grant, claims.grant);  // the leased revision is held

  nurse.setOnline(false);
  const done = await nurse.complete(A, record._id, 'witnessed', {counted: 12});
  assert.equal(done.completed_by, nurse.writer);
  assert.ok(done.completed_at >= claims.granted_at && done.completed_at <= claims.expires_at);
  // Final on the device too.
  await assert.rejects(nurse.complete(A, record._id, 'discrepancy'), /final|does not complete/);
  nurse.setOnline(true);
  assert.equal((await nurse.sync(A)).state, 'ok');
  const server = (await admin(`/${A}/${encodeURIComponent(record._id)}`, {expect: 200})).body;
  assert.equal(server.status, 'witnessed');
  assert.equal(server.counted, 12);
  assert.equal((await nurse.editState(A, record._id)).state, 'confirmed');

  const other = await enrolled('nurse2');
  await assert.rejects(other.claimLease(A, record._id), (err) => err instanceof BridgeError && err.code === 'lease.completed');
});

test('another clinician cannot take a held lease nor complete without one; a forged token is refused', async () => {
  const holder = await enrolled('nurse1');
  const other = await enrolled('nurse2');
  const record = await holder.createRecord(A, 'cd_check', 'patient-0042', CHECK);
  await holder.claimLease(A, record._id);
  await assert.rejects(other.claimLease(A, record._id), (err) => err instanceof BridgeError && err.code === 'lease.taken' && err.status === 409);
  await other.sync(A);
  await assert.rejects(other.complete(A, record._id, 'witnessed', {counted: 12}),
                       (err) => err instanceof PolicyRefused && /hold no lease/.test(err.message));

  // The holder's own token, its payload edited to a later expiry: the signature fails.
  const token = await holder.vault.get(`lease:${A}/${record._id}`);
  const [h, p, s] = token.split('.');
  const claims = JSON.parse(new TextDecoder().decode(encoding.fromB64url(p)));
  claims.expires_at = '2099-01-01T00:00:00.000000Z';
  await holder.vault.put(`lease:${A}/${record._id}`, [h, encoding.b64url(new TextEncoder().encode(JSON.stringify(claims))), s].join('.'));
  await assert.rejects(holder.complete(A, record._id, 'witnessed', {counted: 12}), TokenRefused);
  await holder.vault.put(`lease:${A}/${record._id}`, token);
  const released = await holder.releaseLease(A, record._id);
  assert.equal(released.lease, null);
  await assert.rejects(holder.complete(A, record._id, 'witnessed', {counted: 12}), PolicyRefused);
  assert.equal((await other.claimLease(A, record._id)).lease.holder, other.writer);
});

// Replication against the real server: live renewal on 401, revocation, urgent records
// first, checkpoints a member cannot move, refused writes kept, conflicts visible.

import assert from 'node:assert/strict';
import {existsSync, readdirSync} from 'node:fs';
import {test} from 'node:test';

import {Device, DeviceRevoked, formatUtc} from '../src/index.js';
import {A, PouchDB, SICK, VITALS, admin, config, enrolled, until, untilRefused, withoutMeta} from './helpers.js';

const doc = async (db, id) => (await admin(`/${db}/${encodeURIComponent(id)}`)).body;

test('live replication renews its credentials through the bridge on 401 and resumes', async () => {
  const device = await enrolled('nurse3');
  const live = await device.live(A);
  const stopped = [];
  device.on('stopped', (s) => stopped.push(s));
  try {
    const first = await device.newRecord(A, 'observation', VITALS);
    await until('the first record on the server', async () => (await doc(A, first._id))._id);
    // The credential dies under the running replication (as when the reaper removes an
    // expired one): its CouchDB user is deleted.
    const {username, password} = device.session;
    const user = await admin(`/_users/org.couchdb.user:${encodeURIComponent(username)}`, {expect: 200});
    await admin(`/_users/org.couchdb.user:${encodeURIComponent(username)}?rev=${user.body._rev}`, {method: 'DELETE', expect: 200});
    await untilRefused({username, password});
    const second = await device.newRecord(A, 'observation', {...VITALS, pulse: 80});
    const onServer = await until('the second record on the server', async () => {
      const found = await doc(A, second._id);
      return found && found._id ? found : null;
    }, 30000);
    assert.deepEqual(withoutMeta(onServer), withoutMeta(second));
    assert.equal(device.session.username, username);
    assert.notEqual(device.session.password, password);  // renewed, not the old one
    assert.deepEqual(stopped, []);
  } finally {
    live.cancel();
    await live.done;
  }
});

test('a revoked device hears it at its next sync and wipes itself: keys, credentials, records', async () => {
  const device = await enrolled('nurse4');
  await device.newRecord(A, 'observation', VITALS);
  await device.sync(A);
  const unsent = await device.newRecord(A, 'observation', {...VITALS, pulse: 90});
  const credentials = {...device.session};
  assert.ok(readdirSync(device.prefixForTest).length >= 2);
  const revoked = await fetch(`${config.bridge}/v1/devices/${device.deviceId}`, {
    method: 'DELETE', headers: {Authorization: `Bearer ${config.tokens.nurse4}`}});
  assert.equal(revoked.status, 200, await revoked.text());
  await untilRefused(credentials);
  const wiped = [];
  device.on('wiped', (w) => wiped.push(w));
  await assert.rejects(device.sync(A), (err) => err instanceof DeviceRevoked && err.code === 'device.revoked');
  assert.equal(device.wiped, true);
  assert.deepEqual(wiped, [{device: device.deviceId}]);
  assert.equal(await Device.exists({PouchDB, prefix: device.prefixForTest}), false);
  assert.deepEqual(readdirSync(device.prefixForTest).filter((f) => existsSync(`${device.prefixForTest}${f}/CURRENT`)), []);
  await assert.rejects(device.newRecord(A, 'observation', VITALS), DeviceRevoked);
  assert.equal((await doc(A, unsent._id)).error, 'not_found');  // it never left the device
});

test('a live replication of a revoked device stops and says so, never a silent retry', async () => {
  const device = await enrolled('nurse5');
  const live = await device.live(A);
  const stopped = new Promise((resolve) => device.on('stopped', resolve));
  const credentials = {...device.session};  // the live replication may hear it first and wipe
  await fetch(`${config.bridge}/v1/devices/${device.deviceId}`, {
    method: 'DELETE', headers: {Authorization: `Bearer ${config.tokens.nurse5}`}});
  await untilRefused(credentials);
  await device.newRecord(A, 'observation', VITALS).catch(() => {});  // makes the push try
  const why = await Promise.race([stopped, new Promise((_, no) => setTimeout(() => no(new Error('no stop within 30 s')), 30000))]);
  assert.equal(why.reason, 'revoked');
  await live.done;
  await until('the wipe', async () => device.wiped);
});

test('urgent records arrive first; checkpoints stay on the device, out of other members\' reach', async () => {
  const writer = await enrolled('nurse2');
  const ordinary = [];
  for (let i = 0; i < 6; i++) { ordinary.push((await writer.newRecord(A, 'observation', {...VITALS, pulse: 60 + i}))._id); }
  const plan = (await writer.newRecord(A, 'care_plan', {subject: 'patient-0042', title: 'Falls'}))._id;
  const sick = (await writer.newRecord(A, 'observation', SICK))._id;
  assert.equal((await writer.sync(A)).state, 'ok');

  const reader = await enrolled('nurse1');
  const localsBefore = (await admin(`/${A}/_local_docs`, {expect: 200})).body.rows.map((r) => r.id).sort();
  await reader.sync(A);
  const order = (await reader.local(A).changes({since: 0})).results.map((r) => r.id);
  const at = (id) => { assert.ok(order.includes(id), id); return order.indexOf(id); };
  for (const id of ordinary) {
    assert.ok(at(plan) < at(id) && at(sick) < at(id), `urgent ${plan}, ${sick} before ${id}: ${order}`);
  }
  // PouchDB wrote no checkpoint on the server (checkpoint: 'target' / 'source').
  assert.deepEqual((await admin(`/${A}/_local_docs`, {expect: 200})).body.rows.map((r) => r.id).sort(), localsBefore);

  // Another member raises every checkpoint on the server past new records: the reader still
  // gets them, since it resumes from its own copy only.
  const fresh = [];
  for (let i = 0; i < 3; i++) { fresh.push((await writer.newRecord(A, 'observation', {...VITALS, pulse: 100 + i}))._id); }
  await writer.sync(A);
  const seq = (await admin(`/${A}`, {expect: 200})).body.update_seq;
  for (const row of (await admin(`/${A}/_local_docs?include_docs=true`, {expect: 200})).body.rows) {
    await admin(`/${A}/${row.id}`, {method: 'PUT', body: {...row.doc, last_seq: seq, source_last_seq: seq}, expect: 201});
  }
  await reader.sync(A);
  for (const id of fresh) { assert.equal((await reader.get(A, id))._id, id); }
});

test('a write the server refuses is kept, named and counted; the rest of the push goes on', async () => {
  const device = await enrolled('nurse1');
  const good = await device.newRecord(A, 'observation', VITALS);
  // What an older version of the software might have saved: no clock_offset_ms, which the
  // server's rules refuse (written straight to the local database, past the device's check).
  const bad = {...good, _id: good._id.replace(/:[^:]+$/, ':0b5ba1e0-0000-4000-8000-000000000000')};
  delete bad.clock_offset_ms;
  delete bad.signature;
  const {newRev} = await import('../src/records.js');
  const {_rev, ...body} = bad;
  bad._rev = newRev(null, (({_id, ...b}) => b)(body), false);
  bad._revisions = {start: 1, ids: [bad._rev.slice(2)]};
  await device.local(A).bulkDocs([bad], {new_edits: false});
  await device._setEdit(A, bad._id, {rev: bad._rev, state: 'saved', at: formatUtc(Date.now())});
  const report = await device.sync(A);
  assert.equal((await device.editState(A, good._id)).state, 'confirmed');
  const refused = await device.editState(A, bad._id);
  assert.equal(refused.state, 'refused');
  assert.equal(refused.error, 'forbidden');
  assert.match(refused.reason, /clock_offset_ms/);
  assert.ok(Object.values(report.refused).reduce((a, b) => a + b, 0) >= 1, JSON.stringify(report));
  assert.equal(report.refused_open, 1);
  assert.equal((await device.get(A, bad._id))._rev, bad._rev);  // kept on the device
});

test('two devices edit one care plan offline: both keep working, the conflict is visible', async () => {
  const one = await enrolled('nurse1');
  const two = await enrolled('nurse2');
  const plan = await one.newRecord(A, 'care_plan', {subject: 'patient-0042', title: 'Pressure care'});
  await one.sync(A);
  await two.sync(A);
  one.setOnline(false);
  two.setOnline(false);
  await one.update(A, plan._id, {goals: ['turn 2-hourly']});
  await two.update(A, plan._id, {note: 'seen by the tissue viability nurse'});
  one.setOnline(true);
  two.setOnline(true);
  await one.sync(A);
  await two.sync(A);
  await one.sync(A);
  const seen = await one.get(A, plan._id);
  assert.equal(seen._conflicts.length, 1);
  assert.equal((await one.conflicts(A)).some((d) => d._id === plan._id), true);
  const server = (await admin(`/${A}/${encodeURIComponent(plan._id)}?conflicts=true`, {expect: 200})).body;
  assert.equal(server._conflicts.length, 1);
  assert.equal(server._rev, seen._rev);  // the same winner everywhere (CouchDB's rule)
});

test('sync reports: one per sync, in the fleet format, with no patient data', async () => {
  const device = await enrolled('nurse2');
  await device.newRecord(A, 'observation', VITALS);
  device.setOnline(false);
  await assert.rejects(device.sync(A));
  device.setOnline(true);
  const queued = await device.reports();
  assert.equal(queued.length, 1);
  const [report] = queued;
  assert.equal(report.state, 'unreachable');
  assert.deepEqual(Object.keys(report).sort(), ['app_version', 'clock_offset_ms', 'conflicts', 'credential_expires_at',
    'database', 'ended_at', 'id', 'offline_until', 'pending', 'pulled', 'pushed', 'refused',
    'refused_open', 'retries', 'started_at', 'state']);
  assert.equal(report.pending, 1);
  assert.match(report.id, /^[A-Za-z0-9_-]{8,64}$/);
  assert.ok(!JSON.stringify(queued).includes('patient-0042'));
});

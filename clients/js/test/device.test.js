// The device library against the real bridge and server: enrol, log in, record, sync.

import assert from 'node:assert/strict';
import {test} from 'node:test';

import {
  PolicyRefused, RecordRefused, TokenRefused, NotLoggedIn, verifyRecord, publicKeyOf, encoding
} from '../src/index.js';
import {A, B, C, VITALS, admin, config, enrolled, newDevice, withoutMeta} from './helpers.js';

test('enrol and log in: the snapshot verifies against the pinned key and names the caseloads', async () => {
  const device = await enrolled('nurse1');
  const described = await device.describe();
  assert.equal(described.logged_in, true);
  assert.equal(described.user, config.users.nurse1);
  assert.equal(described.username, `${config.users.nurse1}~${device.deviceId}`);
  assert.deepEqual(described.databases.map((d) => d.name).sort(), [A, B].sort());
  const a = described.databases.find((d) => d.name === A);
  assert.ok(a.clinical_roles.includes('nurse'));
  assert.ok(a.record_types.includes('observation') && a.record_types.includes('cd_check'));
  assert.ok(Date.parse(described.offline_until) > Date.now());
});

test('a tampered snapshot is refused and nothing of the answer is kept', async () => {
  // A man in the middle of the real bridge's answer: the snapshot's payload edited to grant
  // caseload c, its signature kept.
  const tamper = async (url, opts) => {
    const response = await fetch(url, opts);
    if (!String(url).endsWith('/v1/credentials')) { return response; }
    const body = await response.json();
    const [h, p, s] = body.snapshot.split('.');
    const claims = JSON.parse(new TextDecoder().decode(encoding.fromB64url(p)));
    claims.databases.push({...claims.databases[0], caseload: config.caseloads.c, name: C});
    body.snapshot = [h, encoding.b64url(new TextEncoder().encode(JSON.stringify(claims))), s].join('.');
    return new Response(JSON.stringify(body), {status: response.status, headers: response.headers});
  };
  const device = await newDevice({fetch: tamper});
  await device.enrol({bridgeUrl: config.bridge, token: config.tokens.nurse2});
  await assert.rejects(device.login(), (err) => err instanceof TokenRefused && /does not verify/.test(err.message));
  assert.equal(device.session, null);
  assert.equal(await device.vault.get('session'), null);
  await assert.rejects(device.snapshot(), NotLoggedIn);
});

test('a record is stamped, scored, signed and checked by the caseload\'s own rules before saving', async (t) => {
  const device = await enrolled('nurse1');
  const started = performance.now();
  for (let i = 0; i < 40; i++) { await device.newRecord(A, 'observation', {...VITALS, pulse: 50 + i}); }
  t.diagnostic(`saving an observation (stamp, NEWS2, sign, rules, seal, LevelDB): ${((performance.now() - started) / 40).toFixed(1)} ms`);
  const saved = await device.newRecord(A, 'observation', VITALS);
  assert.match(saved._id, new RegExp(`^observation:${config.users.nurse1}~${device.deviceId}:`));
  assert.equal(saved.news2, 0);  // derived by news2.js, the rule the server checks it with
  assert.equal(saved.device, device.deviceId);
  assert.equal(saved.author, config.users.nurse1);
  assert.ok(Number.isInteger(saved.clock_offset_ms));
  assert.match(saved.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  assert.equal(saved.signature.signer, device.deviceId);
  assert.ok(await verifyRecord(saved, await publicKeyOf(device.seed)));
  assert.equal((await device.editState(A, saved._id)).state, 'saved');

  // Every problem at once, in the rules' own words; nothing saved.
  const before = (await device.records(A)).length;
  await assert.rejects(device.newRecord(A, 'observation', {...VITALS, spo2: 30, consciousness: 'Z', pulse: undefined}),
                       (err) => {
                         assert.ok(err instanceof RecordRefused);
                         assert.ok(err.refusal.problems.length >= 2, JSON.stringify(err.refusal));
                         assert.match(err.message, /spo2/);
                         return true;
                       });
  assert.equal((await device.records(A)).length, before);
});

test('the snapshot is enforced offline: types and caseloads per the policy', async () => {
  const hca = await enrolled('hca');
  hca.setOnline(false);
  // The school healthcare assistant may write observations in caseload c, nothing else.
  const ok = await hca.newRecord(C, 'observation', VITALS);
  assert.equal(ok.type, 'observation');
  await assert.rejects(hca.newRecord(C, 'care_plan', {subject: 'patient-0042', title: 'Asthma'}),
                       (err) => err instanceof PolicyRefused && /may write there: observation/.test(err.message));
  await assert.rejects(hca.newRecord(A, 'observation', VITALS), PolicyRefused);
  // And the offline window: a snapshot past offline_until refuses new work (the device's
  // server-clock estimate moved three days on).
  hca.clock.saved = null;
  hca.clock.low = hca.clock.high = 3 * 24 * 3600 * 1000;
  await assert.rejects(hca.newRecord(C, 'observation', VITALS), (err) => err instanceof PolicyRefused && /offline window ended/.test(err.message));
});

test('sync: the server holds exactly the record, signed; the edit is confirmed', async () => {
  const device = await enrolled('nurse1');
  const saved = await device.newRecord(A, 'observation', VITALS);
  const plan = await device.newRecord(A, 'care_plan', {subject: 'patient-0042', title: 'Leg ulcer', goals: ['heal']});
  const report = await device.sync(A);
  assert.equal(report.state, 'ok');
  assert.ok(report.pushed >= 2);
  const onServer = (await admin(`/${A}/${encodeURIComponent(saved._id)}`, {expect: 200})).body;
  assert.deepEqual(withoutMeta(onServer), withoutMeta(saved));
  assert.equal(onServer._rev, saved._rev);
  assert.equal((await device.editState(A, saved._id)).state, 'confirmed');
  assert.equal((await device.editState(A, plan._id)).state, 'confirmed');

  // A mergeable edit carries `changed` stamps for exactly the fields that changed.
  const edited = await device.update(A, plan._id, {goals: ['heal', 'walk']});
  assert.deepEqual(Object.keys(edited.changed).sort(), ['goals', 'title']);
  assert.equal(edited.changed.goals.at, edited.at);
  assert.notEqual(edited.changed.title.at, edited.at);
  assert.equal((await device.sync(A)).state, 'ok');
  assert.deepEqual(withoutMeta((await admin(`/${A}/${encodeURIComponent(plan._id)}`, {expect: 200})).body), withoutMeta(edited));
});

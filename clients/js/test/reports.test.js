// Sync reports reach the fleet endpoint of the real bridge (POST /v1/reports, docs/fleet.md):
// signed by the device only, idempotent by id, dropped from the queue once answered, and
// what a policy admin sees of the device in GET /v1/devices.

import assert from 'node:assert/strict';
import {test} from 'node:test';

import {A, VITALS, config, enrolled, until} from './helpers.js';

test('queued reports are sent once heard of; a resend is a duplicate; the fleet shows the device', async () => {
  const device = await enrolled('nurse3');
  await device.newRecord(A, 'observation', VITALS);
  device.setOnline(false);
  await assert.rejects(device.sync(A));            // a stopped sync is reported too
  device.setOnline(true);
  const [stopped] = await device.reports();
  assert.equal(stopped.state, 'unreachable');
  const report = await device.sync(A);             // sends both
  assert.equal(report.state, 'ok');
  assert.deepEqual(await device.reports(), []);
  // The same report again (a lost answer): stored once, answered as a duplicate.
  const again = (await device._signed('/v1/reports', {reports: [stopped]}, {bearer: false})).body;
  assert.deepEqual(again.duplicates, [stopped.id]);
  const fleet = await fetch(`${config.bridge}/v1/devices`, {headers: {Authorization: `Bearer ${config.admin_token}`}});
  assert.equal(fleet.status, 200, await fleet.clone().text());
  const row = (await fleet.json()).devices.find((d) => d.device === device.deviceId);
  assert.ok(row, 'the device is in the fleet');
  assert.equal(row.last_state, 'ok');
  assert.equal(row.pending, 0);
  assert.equal(row.app_version, device.appVersion);
});

test('a report the bridge cannot take does not block the queue', async () => {
  const device = await enrolled('nurse3');
  await device.vault.setClear('reports', [{id: 'bad-report-0001', database: A, state: 'exploded',
                                             started_at: 'now', ended_at: 'later', pulled: 0, pushed: 0}]);
  assert.equal((await device.sync(A)).state, 'ok');
  assert.deepEqual(await device.reports(), []);
});

test('a live replication with nothing to move still reports, so the tablet is not silent', async () => {
  const device = await enrolled('nurse3');
  assert.equal((await device.sync(A)).state, 'ok');   // caught up, its report sent
  const lastSync = async () => {
    const fleet = await fetch(`${config.bridge}/v1/devices`, {headers: {Authorization: `Bearer ${config.admin_token}`}});
    return (await fleet.json()).devices.find((d) => d.device === device.deviceId).last_sync_at;
  };
  const before = await lastSync();
  const live = await device.live(A);
  try {
    await until('a report of the live, caught-up replication', async () => (await lastSync()) > before);
  } finally {
    live.cancel();
    await live.done;
  }
});

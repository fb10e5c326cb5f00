// Bad input and refused operations: one clear line each, with a class an app can branch on.

import assert from 'node:assert/strict';
import {test} from 'node:test';

import {
  CarecouchError, Device, DeviceOfflineError, NotEnrolled, WeakPassphrase, WrongPassphrase
} from '../src/index.js';
import {A, PASSPHRASE, PouchDB, VITALS, config, enrolled, newDevice} from './helpers.js';

const oneLine = (err) => typeof err.message === 'string' && err.message.length > 10 && !err.message.includes('\n');

test('the store: a weak passphrase, a wrong one, a second store in the same place', async () => {
  await assert.rejects(newDevice({passphrase: 'short'}), (err) => err instanceof WeakPassphrase && oneLine(err));
  const device = await newDevice();
  await assert.rejects(Device.open({PouchDB, prefix: device.prefixForTest, passphrase: 'not the right one at all', rules: {}}),
                       (err) => err instanceof WrongPassphrase && err.message === 'wrong passphrase for this device');
  await assert.rejects(Device.create({PouchDB, prefix: device.prefixForTest, passphrase: PASSPHRASE, rules: {}}),
                       (err) => err instanceof CarecouchError && /already exists/.test(err.message));
  const reopened = await Device.open({PouchDB, prefix: device.prefixForTest, passphrase: PASSPHRASE, rules: {}});
  assert.equal(reopened.deviceId, device.deviceId);
});

test('enrolment and login: what is missing is named', async () => {
  const device = await newDevice();
  await assert.rejects(device.enrol({bridgeUrl: 'bridge.example.org', token: 'x'}), (err) => /bridge URL/.test(err.message) && oneLine(err));
  await assert.rejects(device.enrol({bridgeUrl: config.bridge}), (err) => /identity token/.test(err.message));
  await assert.rejects(device.login({token: 'x'}), NotEnrolled);
  await assert.rejects(device.enrol({bridgeUrl: config.bridge, token: 'not-a-jwt'}),
                       (err) => err.code === 'auth.bad_token' && err.status === 401 && oneLine(err));
  await assert.rejects(device.enrol({bridgeUrl: 'http://127.0.0.1:9', token: 'x'}),
                       (err) => err.name === 'BridgeUnreachable' && /cannot reach the bridge/.test(err.message));
});

test('records and sync: an unknown type, an edit of a stale revision, no network', async () => {
  const device = await enrolled('nurse2');
  await assert.rejects(device.newRecord(A, 'telegram', {}), (err) => /may write there/.test(err.message) && oneLine(err));
  const saved = await device.newRecord(A, 'care_plan', {subject: 'patient-0042', title: 'Diabetes'});
  await device.update(A, saved._id, {title: 'Diabetes, type 2'});
  await assert.rejects(device.put(A, {...saved, title: 'stale'}), (err) => /not a current revision/.test(err.message));
  device.setOnline(false);
  await assert.rejects(device.sync(A), DeviceOfflineError);
  await assert.rejects(device.claimLease(A, saved._id), (err) => err instanceof DeviceOfflineError && /offline/.test(err.message));
  await assert.rejects(device.newRecord(A, 'observation', {...VITALS, pulse: 'fast'}), (err) => /pulse/.test(err.message));
});

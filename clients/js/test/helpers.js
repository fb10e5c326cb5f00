// What every node test shares: where the real servers are (pytest writes the file:
// tests/js/conftest.py), new device stores in a temporary directory, and the admin's view of
// the server, used only to look at what the server holds (and, in a few tests, to do what
// another party would: delete a CouchDB user, rewrite checkpoints).

import {mkdtempSync, readFileSync} from 'node:fs';
import {join} from 'node:path';

import PouchDB from 'pouchdb';

import {Device} from '../src/index.js';
import {rulesSources} from '../src/node.js';

if (!process.env.CARECOUCH_JS_TEST_CONFIG) {
  throw new Error('run these through pytest (tests/js): CARECOUCH_JS_TEST_CONFIG names the servers');
}
export const config = JSON.parse(readFileSync(process.env.CARECOUCH_JS_TEST_CONFIG, 'utf8'));
export const PASSPHRASE = 'ward seven blue kettle';
export {PouchDB};

const sources = await rulesSources();

export async function newDevice(options = {}) {
  const prefix = mkdtempSync(join(config.tmp, 'device-')) + '/';
  // 1,000 PBKDF2 rounds instead of 600,000: the tests open many stores.
  const device = await Device.create({PouchDB, prefix, passphrase: PASSPHRASE, kdfIterations: 1000,
                                      rules: sources, ...options});
  device.prefixForTest = prefix;
  return device;
}

export async function enrolled(who = 'nurse1', options = {}) {
  const device = await newDevice(options);
  const token = who === 'hca' ? config.hca_token : config.tokens[who];
  await device.enrol({bridgeUrl: config.bridge, token, label: `node test ${who}`});
  await device.login();
  return device;
}

const adminAuth = 'Basic ' + Buffer.from(`${config.admin.user}:${config.admin.password}`).toString('base64');

export async function admin(path, {method = 'GET', body, expect} = {}) {
  const response = await fetch(config.couch + path, {
    method, headers: {Authorization: adminAuth, 'Content-Type': 'application/json', Accept: 'application/json'},
    body: body === undefined ? undefined : JSON.stringify(body)});
  const answer = await response.json().catch(() => null);
  if (expect !== undefined && response.status !== expect) {
    throw new Error(`${method} ${path}: expected ${expect}, got ${response.status} ${JSON.stringify(answer)}`);
  }
  return {status: response.status, body: answer};
}

export const A = config.databases.a;
export const B = config.databases.b;
export const C = config.databases.c;

export const VITALS = {subject: 'patient-0042', respiration_rate: 18, spo2: 97, spo2_scale: 1,
                       on_oxygen: false, systolic_bp: 125, pulse: 72, consciousness: 'A',
                       temperature: 36.8};
export const SICK = {...VITALS, respiration_rate: 26, pulse: 118, systolic_bp: 95};

export async function until(what, predicate, timeoutMs = 20000) {
  const start = Date.now();
  for (;;) {
    const value = await predicate();
    if (value) { return value; }
    if (Date.now() - start > timeoutMs) { throw new Error(`timed out waiting for ${what}`); }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function withoutMeta(doc) {
  const {_rev, _revisions, _conflicts, ...rest} = doc;
  return rest;
}

// Until CouchDB refuses these credentials: it evicts a deleted user from its authentication
// cache asynchronously on a cluster (docs/bridge.md, "Revocation and expiry").
export async function untilRefused({username, password}) {
  const auth = 'Basic ' + Buffer.from(`${username}:${password}`).toString('base64');
  await until(`CouchDB refusing ${username}`, async () => {
    const answer = await fetch(`${config.couch}/_session`, {headers: {Authorization: auth}});
    return answer.status === 401 || !((await answer.json()).userCtx || {}).name;
  });
}

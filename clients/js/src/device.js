// The device as a PouchDB app sees it (docs/js-device.md): the JavaScript twin of the
// reference device (mobile_stub/{enrolment,session,device,policy,leases}.py), with the same
// wire formats, on PouchDB (LevelDB in Node, IndexedDB in a browser).
//
// Everything of a patient is sealed at rest (sealed_db.js, vault.js); the device's secrets
// (key, pinned bridge keys, identity token, CouchDB credentials, snapshot, lease tokens, what
// it knows of each edit) are sealed in its vault; in the clear only the device id, the bridge
// URL, the clock offset and the sync reports (counts, no patient data: docs/fleet.md).

import {BridgeClient} from './bridge_client.js';
import {ClockEstimator, formatUtc} from './clock.js';
import {b64url, fromB64url, randomBytes} from './encoding.js';
import {
  BridgeError, CarecouchError, DeviceRevoked, LocalConflict, NotEnrolled, NotFound, NotLoggedIn,
  PolicyRefused, RecordRefused, SyncStopped, TokenRefused
} from './errors.js';
import {newSeed, publicKeyOf} from './keys.js';
import {checkEdit, checkLeasedEdit, grantedDatabase, verifyLease} from './policy.js';
import {signRecord} from './provenance.js';
import {
  bodyOf, newRecordId, newRev, revisionsObject, splitSessionName, stampChanges
} from './records.js';
import {RulesEngine} from './rules.js';
import {sealedDatabase} from './sealed_db.js';
import {verifySnapshot} from './snapshot.js';
import {PinnedKeys} from './tokens.js';
import {couchFetch, DeviceOfflineError} from './transport.js';
import {getOrNull, Vault} from './vault.js';
import {checkPassphrase} from './passphrase.js';
import {urgentSelector} from './working_set.js';

export const APP_VERSION = '0.1.0';
export const MAIN_DDOC = '_design/carecouch';
export const DEVICE_FILTER = 'carecouch/device';
const EXPIRY_MARGIN_MS = 60 * 1000;  // never start a sync on a credential about to lapse
const KEPT = ['couchdb_url', 'username', 'password', 'roles', 'issued_at', 'expires_at',
              'databases', 'snapshot', 'policy_version'];
const MAX_REPORTS = 500;  // queued while offline; the oldest go first beyond this
const REPORT_BATCH = 100; // the bridge takes up to 100 a request
const LIVE_REPORT_MS = 15 * 60 * 1000;  // a live, caught-up replication reports this often

function newDeviceId() {
  return 'js-' + b64url(randomBytes(9)).replace(/[-_]/g, 'x').toLowerCase();
}

export class Device {
  constructor({PouchDB, prefix, vault, rules, fetch, appVersion, couchUrl, now}) {
    this.PouchDB = PouchDB;
    this.prefix = prefix;
    this.vault = vault;
    this.rules = new RulesEngine(rules);
    this.baseFetch = fetch || globalThis.fetch.bind(globalThis);
    this.appVersion = appVersion || APP_VERSION;
    this.couchUrl = couchUrl || null;  // an app behind a same-origin proxy reaches CouchDB here
    this.now = now || (() => Date.now());
    this.online = true;
    this.wiped = false;
    this.databasesOpen = new Map();
    this.lives = new Set();
    this.listeners = new Map();
    this.stopped = null;
    // Settles every public call once the device wipes itself: an operation caught mid-way on
    // a destroyed database would otherwise never settle (PouchDB queues it for ever).
    this._wipedSignal = new Promise((_, reject) => { this._rejectWiped = reject; });
    this._wipedSignal.catch(() => {});
  }

  // -- the store --------------------------------------------------------------------------

  // A new device store (its data key wrapped by the passphrase). `rules`: the text of
  // carecouch/js/query_server.js and rules_host.js ({queryServer, rulesHost}).
  static async create({PouchDB, prefix = '', passphrase, deviceId, kdfIterations, ...rest}) {
    checkPassphrase(passphrase);
    const db = new PouchDB(`${prefix}carecouch-vault`);
    if (await Vault.exists(db)) {
      throw new CarecouchError('a device store already exists here: open it, or wipe it first');
    }
    const vault = await Vault.create(db, deviceId || newDeviceId(), passphrase,
                                     kdfIterations ? {iterations: kdfIterations} : undefined);
    const device = new Device({PouchDB, prefix, vault, ...rest});
    await device._load();
    return device;
  }

  static async open({PouchDB, prefix = '', passphrase, ...rest}) {
    const vault = await Vault.open(new PouchDB(`${prefix}carecouch-vault`), passphrase);
    const device = new Device({PouchDB, prefix, vault, ...rest});
    await device._load();
    return device;
  }

  static async exists({PouchDB, prefix = ''}) {
    const db = new PouchDB(`${prefix}carecouch-vault`);
    const found = await Vault.exists(db);
    if (!found) { await db.destroy(); }  // asking leaves nothing behind
    return found;
  }

  async _load() {
    const clear = await this.vault.clear();
    this.deviceId = clear.device_id;
    this.bridgeUrl = clear.bridge_url || null;
    this.clock = new ClockEstimator(clear.clock_offset_ms ?? null, this.now);
    const pinned = await this.vault.get('bridge_keys');
    this.pinned = pinned ? await PinnedKeys.fromJwks(pinned) : null;
    const seed = await this.vault.get('device_key');
    this.seed = seed ? fromB64url(seed) : null;
    this.token = await this.vault.get('idp_token');
    this.session = await this.vault.get('session');
  }

  on(event, fn) {
    if (!this.listeners.has(event)) { this.listeners.set(event, new Set()); }
    this.listeners.get(event).add(fn);
    return () => this.listeners.get(event).delete(fn);
  }

  emit(event, value) {
    for (const fn of this.listeners.get(event) || []) {
      try { fn(value); } catch (err) { console.error(`a ${event} listener failed:`, err); }
    }
  }

  setOnline(online) {
    this.online = !!online;
    this.emit('online', this.online);
  }

  _alive() {
    if (this.wiped) { throw new DeviceRevoked('this device was revoked and has wiped itself', {code: 'device.revoked'}); }
  }

  // -- the bridge -------------------------------------------------------------------------

  _bridge(token = this.token) {
    if (!this.bridgeUrl || !this.seed) {
      throw new NotEnrolled('this device is not enrolled with a bridge (enrol first)');
    }
    return new BridgeClient({baseUrl: this.bridgeUrl, deviceId: this.deviceId, seed: this.seed,
                             token, fetch: this.baseFetch, now: this.now,
                             clockOffsetMs: () => this.clock.offsetMs()});
  }

  // Every signed contact: a revocation heard here wipes the device once the call has ended.
  async _signed(path, body, {bearer = true, wipeNow = true} = {}) {
    this._alive();
    if (!this.online) { throw new DeviceOfflineError('the device is offline: go online first'); }
    try {
      return await this._bridge().send('POST', path, body, {signed: true, bearer});
    } catch (err) {
      if (err instanceof DeviceRevoked && wipeNow) { await this.wipe(); }
      throw err;
    }
  }

  // Register this device's Ed25519 key with the bridge as the clinician of `token`, and pin
  // the bridge's signing keys. A retry after a lost answer is recognised (same key).
  async enrol({bridgeUrl, token, label} = {}) {
    this._alive();
    if (this.bridgeUrl) {
      throw new CarecouchError(`this device (${this.deviceId}) is already enrolled with ${this.bridgeUrl}; wipe it to enrol elsewhere`);
    }
    if (typeof bridgeUrl !== 'string' || !/^https?:\/\//.test(bridgeUrl) && !bridgeUrl.startsWith('/')) {
      throw new CarecouchError('enrol needs the bridge URL (http(s)://… or a same-origin path)');
    }
    if (!token) { throw new CarecouchError('enrol needs an identity token from your sign-in'); }
    if (!this.seed) {  // kept before asking, so a retry after a lost answer uses the same key
      this.seed = newSeed();
      await this.vault.put('device_key', b64url(this.seed));
    }
    const url = bridgeUrl.replace(/\/+$/, '');
    const client = new BridgeClient({baseUrl: url, deviceId: this.deviceId, seed: this.seed, token,
                                     fetch: this.baseFetch, now: this.now});
    const pinned = await PinnedKeys.fromJwks(await client.keys());
    const publicKey = b64url(await publicKeyOf(this.seed));
    const body = {device: this.deviceId, public_key: publicKey};
    if (label) { body.label = label; }
    try {
      await client.post('/v1/devices', body);
    } catch (err) {
      const known = err instanceof BridgeError && err.code === 'device.exists' &&
        ((await client.device()).device || {}).public_key === publicKey;
      if (!known) { throw err; }
    }
    await this.vault.put('bridge_keys', pinned.toJwks());
    await this.vault.put('idp_token', token);
    this.pinned = pinned;
    this.token = token;
    this.bridgeUrl = url;
    await this.vault.setClear('bridge_url', url);  // last: the mark of a finished enrolment
    return {device_id: this.deviceId, bridge: url, bridge_keys: pinned.kids};
  }

  // New CouchDB credentials and the signed snapshot. Nothing of the answer is kept until the
  // snapshot verifies against the pinned keys, for this device, and the answer agrees with it.
  async login({token} = {}) {
    if (token) { this.token = token; }
    if (!this.token) { throw new NotLoggedIn('no identity token: sign in first'); }
    const answer = await this._signed('/v1/credentials', {});
    await this._keep(answer);
    await this._learnAll();
    return this.describe();
  }

  async _keep(answer) {
    const state = Object.fromEntries(KEPT.map((k) => [k, answer.body[k]]));
    const snapshot = await verifySnapshot(String(state.snapshot), this.pinned, this.deviceId);
    const names = new Set(snapshot.databases.map((d) => d.name));
    const databases = Array.isArray(state.databases) ? state.databases : null;
    if (state.username !== snapshot.username || typeof state.password !== 'string' ||
        typeof state.couchdb_url !== 'string' || !databases ||
        !databases.every((d) => d && typeof d.name === 'string' && names.has(d.name) &&
                         typeof d.url === 'string' && d.filter && typeof d.filter.name === 'string')) {
      throw new TokenRefused("the bridge's answer does not agree with its signed snapshot");
    }
    const serverTime = Date.parse(String(answer.body.server_time));
    if (!Number.isNaN(serverTime)) { this.clock.observeExchange(serverTime, answer.sent, answer.received); }
    // A later login whose filter differs only by a later not_before keeps the first filter,
    // so PouchDB's replication id (which includes the filter's parameters) and its
    // checkpoint stay, and the pull does not restart from zero (session.py _window_slid).
    const old = this.session ? this.session.databases : [];
    state.databases = databases.map((db) => {
      const before = old.find((o) => o.name === db.name);
      return before && windowSlid(before.filter, db.filter) ? {...db, filter: before.filter} : db;
    });
    await this.vault.put('session', state);
    await this.vault.put('idp_token', this.token);
    await this.vault.setClear('clock_offset_ms', this.clock.offsetMs());
    this.session = state;
    this.stopped = null;
    return snapshot;
  }

  // During a sync: a revocation heard here stops the replications first (transport.js
  // onStopped); the device wipes itself once they have (sync, live).
  async renew() {
    const answer = await this._signed('/v1/credentials', {}, {wipeNow: false});
    await this._keep(answer);
  }

  // The stored snapshot, verified now (never trusted from an earlier check).
  async snapshot() {
    this._alive();
    if (!this.session) { throw new NotLoggedIn('not logged in yet (log in while online)'); }
    return verifySnapshot(String(this.session.snapshot), this.pinned, this.deviceId);
  }

  get username() {
    if (!this.session) { throw new NotLoggedIn('not logged in yet (log in while online)'); }
    return this.session.username;
  }

  // The clinician writing: `alice` of the session user `alice~tablet-7`, as the rules read it.
  get writer() {
    const split = splitSessionName(this.username);
    return split ? split.user : this.username;
  }

  serverNow() {
    return this.clock.serverNow();
  }

  async describe() {
    const data = {device: this.deviceId, bridge: this.bridgeUrl, logged_in: !!this.session,
                  online: this.online};
    if (!this.session) { return data; }
    const now = this.serverNow();
    try {
      const s = await this.snapshot();
      return {...data, username: s.username, user: s.user,
              credential_expires_at: formatUtc(s.credentialExpiresAt),
              offline_until: formatUtc(s.offlineUntil), offline_window_passed: now >= s.offlineUntil,
              databases: s.databases.map((d) => ({name: d.name, caseload: d.caseload,
                                                  record_types: [...d.recordTypes].sort(),
                                                  clinical_roles: d.clinicalRoles}))};
    } catch (err) {
      return {...data, snapshot_error: err.message};
    }
  }

  // -- local databases --------------------------------------------------------------------

  async _box() {
    return this.vault.box;
  }

  local(name) {
    this._alive();
    if (!this.databasesOpen.has(name)) {
      this.databasesOpen.set(name, sealedDatabase(this.PouchDB, `${this.prefix}carecouch-db-${name}`,
                                                  name, this.vault.box));
    }
    return this.databasesOpen.get(name);
  }

  _bound(name) {
    const db = this.session && this.session.databases.find((d) => d.name === name);
    if (!db) { throw new PolicyRefused(`the access policy does not grant ${name} to this session (log in again if that has changed)`); }
    return db;
  }

  remoteUrl(name) {
    const db = this._bound(name);
    if (!this.couchUrl) { return db.url; }
    const base = this.session.couchdb_url.replace(/\/+$/, '');
    const path = db.url.startsWith(base) ? db.url.slice(base.length) : `/${encodeURIComponent(name)}`;
    return this.couchUrl.replace(/\/+$/, '') + path;
  }

  _fetch() {
    if (!this._couchFetch) {
      this._couchFetch = couchFetch({
        credentials: () => this.session && {username: this.session.username, password: this.session.password},
        renew: () => this.renew(),
        onStopped: (err) => this._stop(err),
        clock: this.clock,
        online: () => this.online && !this.wiped,
        baseFetch: this.baseFetch
      });
    }
    return this._couchFetch;
  }

  remote(name) {
    return new this.PouchDB(this.remoteUrl(name), {fetch: this._fetch(), skip_setup: true});
  }

  // Credentials renewal refused: every replication stops with the reason (never a silent
  // retry), and a revoked device wipes itself once they have stopped.
  _stop(err) {
    const reason = err instanceof DeviceRevoked ? 'revoked'
      : err instanceof DeviceOfflineError || err.name === 'BridgeUnreachable' ? 'unreachable' : 'unauthorized';
    this.stopped = {reason, message: err.message, error: err};
    for (const live of [...this.lives]) { live.cancel(); }
    this.emit('stopped', this.stopped);
  }

  // The rules the server runs on `name` and the session's roles, read online (members may).
  async _learn(name) {
    const ddoc = await this.remote(name).get(MAIN_DDOC).catch((err) => {
      if (err.status === 404) { return null; }
      throw err;
    });
    await this.vault.put(`rules:${name}`, ddoc);
    const response = await this._fetch()(this.remoteUrl(name).replace(/\/[^/]*$/, '/_session'), {headers: {Accept: 'application/json'}});
    if (response.ok) {
      const ctx = (await response.json()).userCtx || {};
      if (Array.isArray(ctx.roles)) { await this.vault.put(`roles:${name}`, ctx.roles); }
    }
  }

  async _learnAll() {
    for (const db of this.session.databases) { await this._learn(db.name); }
  }

  async ddoc(name) {
    const ddoc = await this.vault.get(`rules:${name}`);
    if (!ddoc) {
      throw new CarecouchError(`this device has not read the record rules of ${name} yet: sync once while online`);
    }
    return ddoc;
  }

  async registry(name) {
    return this.rules.registry(await this.ddoc(name));
  }

  // -- records ----------------------------------------------------------------------------

  async get(name, id, options = {}) {
    try {
      return await this.local(name).get(id, {conflicts: true, ...options});
    } catch (err) {
      if (err.status === 404) { throw new NotFound(`${id} is not on this device (${name})`); }
      throw err;
    }
  }

  async records(name, {type} = {}) {
    const rows = (await this.local(name).allDocs({include_docs: true, conflicts: true})).rows;
    return rows.map((r) => r.doc).filter((d) => !d._id.startsWith('_design/') && (!type || d.type === type));
  }

  // A new record with its carecouch id, made once here (a retried push can never duplicate
  // it); an exclusive record is created by the bridge (createRecord), never by a device.
  async newRecord(name, type, fields = {}) {
    checkEdit(await this.snapshot(), name, {type}, this.serverNow());  // before the rules: says why
    const registry = await this.registry(name);
    const spec = registry.types[type];
    if (spec && spec.class === 'exclusive') {
      throw new CarecouchError(`a ${type} is exclusive: the bridge creates it (createRecord, online), then the clinician leases and completes it`);
    }
    const doc = {...fields, _id: newRecordId(registry, type, this.username), type};
    return this.put(name, doc);
  }

  async update(name, id, changes = {}, remove = []) {
    const doc = await this._current(name, id);
    Object.assign(doc, changes);
    for (const field of remove) { delete doc[field]; }
    return this.put(name, doc);
  }

  // Complete an exclusive record as its lease holder: a terminal status, completed_by the
  // clinician, completed_at on the server-clock estimate, never before the lease's grant.
  async complete(name, id, status, fields = {}) {
    const doc = await this._current(name, id);
    const spec = (await this.registry(name)).types[doc.type];
    if (!spec || spec.class !== 'exclusive') { throw new CarecouchError(`${id} is not an exclusive record; only those are completed`); }
    if (!spec.terminal.includes(status)) {
      throw new CarecouchError(`'${status}' does not complete a ${doc.type} (use one of: ${spec.terminal.join(', ')})`);
    }
    let at = this.serverNow();
    if (doc.lease && typeof doc.lease.granted_at === 'string') { at = Math.max(at, Date.parse(doc.lease.granted_at)); }
    Object.assign(doc, fields, {status, completed_by: this.writer, completed_at: formatUtc(at)});
    return this.put(name, doc);
  }

  async _current(name, id) {
    const doc = await this.get(name, id);
    delete doc._conflicts;
    if (doc._deleted) { throw new NotFound(`${id} was deleted in ${name}`); }
    return doc;
  }

  // Save a new revision of `doc` (`_rev`: the revision edited) once the snapshot policy and
  // the caseload's own rules accept it; otherwise nothing is saved and the error says every
  // problem. Returns the saved revision as stored.
  async put(name, doc) {
    this._alive();
    const prepared = await this.prepare(name, doc);
    const local = this.local(name);
    const registry = await this.registry(name);
    const spec = registry.types[String(prepared.type)];
    const parent = typeof prepared._rev === 'string' ? prepared._rev : null;
    const leaves = await this._leaves(local, prepared._id);
    if (parent ? !leaves.some((l) => l._rev === parent) : leaves.some((l) => !l._deleted)) {
      throw new LocalConflict(`${prepared._id}: ${parent ? `${parent} is not a current revision on this device` : 'already exists'}; re-read it and edit again`);
    }
    const base = parent ? leaves.find((l) => l._rev === parent) : null;
    if (spec && spec.class === 'exclusive' && base && spec.terminal.includes(base.status)) {
      throw new CarecouchError(`${prepared._id} is ${base.status}, which is final: a new decision is a new record`);
    }
    // Policy first: the snapshot says what this clinician may write here at all.
    const snapshot = await this.snapshot();
    const now = this.serverNow();
    checkEdit(snapshot, name, prepared, now);
    if (spec && spec.class === 'exclusive') {
      const claims = await verifyLease(this.pinned, await this.vault.get(`lease:${name}/${prepared._id}`),
                                       name, prepared._id, this.deviceId);
      checkLeasedEdit(claims, prepared, spec, snapshot.user, now);
    }
    const body = bodyOf(prepared);
    const deleted = prepared._deleted === true;
    const rev = newRev(parent, body, deleted);
    const history = parent ? (await local.get(prepared._id, {rev: parent, revs: true}))._revisions : null;
    const revisions = history ? {start: history.start + 1, ids: [rev.slice(rev.indexOf('-') + 1), ...history.ids]}
      : revisionsObject([rev]);
    const newDoc = {...body, _id: prepared._id, _rev: rev, _revisions: revisions};
    if (deleted) { newDoc._deleted = true; }
    const ddoc = await this.ddoc(name);
    const roles = this.session.roles || await this.vault.get(`roles:${name}`) || [];
    const refusal = this.rules.check(ddoc, stubbed(newDoc), base ? stubbed(base) : null,
                                     {db: name, name: this.username, roles});
    if (refusal) { throw new RecordRefused(refusal); }
    const [answer] = await local.bulkDocs([newDoc], {new_edits: false});
    if (answer && answer.error) { throw new CarecouchError(`${prepared._id}: the local database refused the revision (${answer.reason || answer.error})`); }
    await this._setEdit(name, prepared._id, {rev, state: 'saved', at: formatUtc(this.now())});
    this.emit('change', {database: name, id: prepared._id, rev});
    const {_revisions, ...stored} = newDoc;
    return stored;
  }

  async _leaves(local, id) {
    const found = await local.get(id, {open_revs: 'all'}).catch((err) => {
      if (err.status === 404) { return []; }
      throw err;
    });
    return found.filter((r) => r.ok).map((r) => r.ok);
  }

  // `doc` as this device saves it: stamped, its derived fields filled in, signed last.
  async prepare(name, doc) {
    const registry = await this.registry(name);
    const out = {...doc};
    delete out._conflicts;
    out.at = formatUtc(this.now());
    out.clock_offset_ms = this.clock.offsetMs();
    out.device = this.deviceId;
    out.author = this.writer;
    let base = null;
    if (typeof out._rev === 'string') {
      base = await this.local(name).get(out._id, {rev: out._rev}).catch(() => null);
    }
    const stamps = stampChanges(registry, out, base, out.author, out.at);
    if (stamps !== null) { out[registry.mergeable_metadata_field] = stamps; }
    const ddoc = await this.ddoc(name);
    const spec = registry.types[String(out.type)];
    for (const [field, fspec] of Object.entries((spec && spec.fields) || {})) {
      if (fspec.derive && !(field in out)) {
        try {
          const value = this.rules.call(ddoc, `lib/validate/${fspec.derive}`, 'derive', out);
          if (value !== null && value !== undefined) { out[field] = value; }
        } catch {
          // vitals it cannot score: the rules' check says what is wrong
        }
      }
    }
    if (this.seed && !out._deleted) { return signRecord(out, this.seed, this.deviceId); }
    return out;
  }

  // The NEWS2 score of an observation's vitals with the chart's clinical response.
  async news2(name, vitals) {
    return this.rules.call(await this.ddoc(name), 'lib/validate/news2', 'score', vitals);
  }

  // -- edit states: saved / sent / confirmed / refused ------------------------------------

  async _setEdit(name, id, state) {
    await this.vault.put(`edit:${name}/${id}`, state);
  }

  async editState(name, id) {
    return this.vault.get(`edit:${name}/${id}`);
  }

  async edits(name) {
    const out = {};
    for (const key of await this.vault.names(`edit:${name}/`)) {
      out[key.slice(`edit:${name}/`.length)] = await this.vault.get(key);
    }
    return out;
  }

  // After a push: each edit still open is confirmed when the server's _revs_diff says it
  // holds the revision, refused when the push was denied, else stays as it was.
  async _settle(name, remote, denied, pushedIds) {
    const edits = await this.edits(name);
    const open = Object.entries(edits).filter(([, e]) => e.state === 'saved' || e.state === 'sent');
    if (!open.length) { return; }
    const missing = await remote.revsDiff(Object.fromEntries(open.map(([id, e]) => [id, [e.rev]])));
    for (const [id, edit] of open) {
      const refusal = denied.get(id);
      let next = edit.state;
      if (!(missing[id] && missing[id].missing.includes(edit.rev))) {
        next = 'confirmed';
      } else if (refusal) {
        next = 'refused';
      } else if (pushedIds.has(id)) {
        next = 'sent';
      }
      if (next !== edit.state) {
        const update = {...edit, state: next};
        if (refusal && next === 'refused') { Object.assign(update, refusal); }
        await this._setEdit(name, id, update);
        this.emit('state', {database: name, id, ...update});
      }
    }
  }

  // -- sync -------------------------------------------------------------------------------

  async _readyToSync(name) {
    this._alive();
    if (!this.online) { throw new DeviceOfflineError('the device is offline: no request leaves it'); }
    let snapshot;
    try {
      snapshot = await this.snapshot();
    } catch (err) {
      if (!(err instanceof TokenRefused)) { throw err; }
      await this.renew();  // a new, valid snapshot is the cure
      snapshot = await this.snapshot();
    }
    const now = this.serverNow();
    if (now >= snapshot.credentialExpiresAt - EXPIRY_MARGIN_MS || now >= snapshot.offlineUntil) {
      await this.renew();
      snapshot = await this.snapshot();
    }
    grantedDatabase(snapshot, name);  // no offline-window check: a sync is how it revalidates
    await this._learn(name);
    return snapshot;
  }

  _pullOptions(name) {
    const db = this._bound(name);
    return db.filter.name === DEVICE_FILTER || db.filter.query_params
      ? {filter: db.filter.name, query_params: db.filter.query_params || {}, checkpoint: 'target'}
      : {checkpoint: 'target'};
  }

  // The urgent records within the device's filter, pulled before the backlog with their own
  // replication (docs/device.md, "The working set").
  async _urgentPull(name, local, remote) {
    const bound = this._bound(name);
    if (bound.filter.name !== DEVICE_FILTER) { return 0; }
    const selector = urgentSelector(await this.registry(name), bound.filter.query_params || {});
    if (!selector) { return 0; }
    const result = await local.replicate.from(remote, {selector, checkpoint: 'target'});
    return result.docs_written;
  }

  // One sync of `name`: urgent pull, pull, push, then each open edit's state settled. Every
  // sync, reached or not, queues a sync report.
  async sync(name) {
    const report = this._newReport(name);
    let caught = null;
    try {
      await this._readyToSync(name);
      const local = this.local(name), remote = this.remote(name);
      report.pulled += await this._urgentPull(name, local, remote);
      const pulled = await local.replicate.from(remote, this._pullOptions(name));
      report.pulled += pulled.docs_written;
      const denied = new Map(), pushedIds = new Set();
      const push = local.replicate.to(remote, {checkpoint: 'source'});
      push.on('denied', (err) => denied.set(err.id, {error: err.error || err.name, reason: err.reason, code: codeOf(err.reason)}));
      push.on('change', (info) => info.docs.forEach((d) => pushedIds.add(d._id)));
      const pushed = await push;
      report.pushed += pushed.docs_written;
      for (const refusal of denied.values()) {
        report.refused[refusal.code || 'forbidden'] = (report.refused[refusal.code || 'forbidden'] || 0) + 1;
      }
      await this._settle(name, remote, denied, pushedIds);
    } catch (err) {
      caught = err;
      report.state = stateOf(err, this.stopped);
    }
    await this._finishReport(name, report);
    if (caught) {
      if (caught instanceof DeviceRevoked || (this.stopped && this.stopped.reason === 'revoked')) {
        if (!this.wiped) { await this.wipe(); }
        throw caught instanceof DeviceRevoked ? caught : this.stopped.error;
      }
      if (this.stopped) { throw new SyncStopped(`the sync of ${name} stopped: ${this.stopped.message}; log in again`, {cause: caught}); }
      throw caught;
    }
    await this.sendReports().catch(() => {});  // queued; sent at the next chance
    return report;
  }

  // A live two-way replication of `name` that renews its credentials on 401 and resumes
  // (transport.js), with the checkpoints on the device's side only. Returns a handle:
  // `cancel()`, `done` (a promise that settles when it stops), and events through on().
  async live(name) {
    await this._readyToSync(name);
    const local = this.local(name), remote = this.remote(name);
    await this._urgentPull(name, local, remote);
    const denied = new Map(), pushedIds = new Set();
    let report = this._newReport(name);
    let reportedAt = 0;  // never yet: the first catch-up is always reported
    const sync = local.sync(remote, {live: true, retry: true, pull: this._pullOptions(name),
                                     push: {checkpoint: 'source'}});
    const handle = {
      sync,
      cancel: () => sync.cancel(),
      done: new Promise((resolve) => sync.on('complete', resolve).on('error', resolve))
    };
    this.lives.add(handle);
    sync.on('change', (info) => {
      if (info.direction === 'push') {
        report.pushed += info.change.docs_written;
        info.change.docs.forEach((d) => pushedIds.add(d._id));
      } else {
        report.pulled += info.change.docs_written;
        this.emit('pulled', {database: name, ids: info.change.docs.map((d) => d._id)});
      }
    });
    sync.on('denied', (err) => {
      const refusal = {error: err.error || err.name, reason: err.reason, code: codeOf(err.reason)};
      denied.set(err.id, refusal);
      report.refused[refusal.code || 'forbidden'] = (report.refused[refusal.code || 'forbidden'] || 0) + 1;
    });
    sync.on('paused', async (err) => {
      if (err || !this.online || this.wiped) { return; }
      try {
        await this._settle(name, remote, denied, pushedIds);
        // A report when something moved, and at least every LIVE_REPORT_MS while caught up:
        // a tablet replicating live with nothing to do must not look silent to the fleet.
        const moved = report.pulled || report.pushed || Object.keys(report.refused).length;
        if (moved || Date.now() - reportedAt >= LIVE_REPORT_MS) {
          reportedAt = Date.now();
          await this._finishReport(name, report);
          report = this._newReport(name);
          await this.sendReports().catch(() => {});
        }
        this.emit('idle', {database: name});
      } catch (e) {
        this.emit('error', e);
      }
    });
    handle.done.then(async () => {
      this.lives.delete(handle);
      if (this.stopped) {
        report.state = stateOf(null, this.stopped);
        if (!this.wiped) { await this._finishReport(name, report).catch(() => {}); }
        if (this.stopped.reason === 'revoked' && !this.wiped) { await this.wipe(); }
      }
    });
    return handle;
  }

  async conflicts(name) {
    return (await this.records(name)).filter((d) => d._conflicts && d._conflicts.length);
  }

  // -- leases and exclusive records (online, through the bridge) --------------------------

  async _caseload(name) {
    return grantedDatabase(await this.snapshot(), name).caseload;
  }

  // Read the server's current revisions of one record now (the one carrying a new lease).
  async refresh(name, id) {
    await this.local(name).replicate.from(this.remote(name), {doc_ids: [id], checkpoint: false});
  }

  async createRecord(name, type, subject, fields) {
    const answer = await this._signed('/v1/records', {caseload: await this._caseload(name), type, subject, fields});
    const record = answer.body.record;
    if (!record || typeof record._id !== 'string') { throw new TokenRefused("the bridge's answer to a record creation names no record"); }
    await this.refresh(name, record._id);
    return record;
  }

  async lease(action, name, id) {
    const paths = {claim: '/v1/leases', renew: '/v1/leases/renew', release: '/v1/leases/release'};
    if (!paths[action]) { throw new CarecouchError(`lease action must be claim, renew or release, not ${action}`); }
    const body = {caseload: await this._caseload(name), record: id};
    if (action !== 'claim') {
      const held = await verifyLease(this.pinned, await this.vault.get(`lease:${name}/${id}`), name, id, this.deviceId);
      body.grant = String(held.grant);
    }
    const answer = (await this._signed(paths[action], body)).body;
    if (action === 'release' || typeof answer.token !== 'string') {
      await this.vault.put(`lease:${name}/${id}`, null);
    } else {
      await verifyLease(this.pinned, answer.token, name, id, this.deviceId);  // before keeping it
      await this.vault.put(`lease:${name}/${id}`, answer.token);
    }
    await this.refresh(name, id);
    return {database: name, record: id, action, lease: answer.lease, rev: answer.rev};
  }

  claimLease(name, id) { return this.lease('claim', name, id); }
  renewLease(name, id) { return this.lease('renew', name, id); }
  releaseLease(name, id) { return this.lease('release', name, id); }

  async leaseClaims(name, id) {
    return verifyLease(this.pinned, await this.vault.get(`lease:${name}/${id}`), name, id, this.deviceId);
  }

  // -- sync reports (docs/fleet.md: POST /v1/reports, signed by the device only) ----------

  _newReport(name) {
    return {id: b64url(randomBytes(12)), database: name, started_at: formatUtc(this.serverNow()),
            state: 'ok', pulled: 0, pushed: 0, refused: {}, retries: 0};
  }

  async _finishReport(name, report) {
    report.ended_at = formatUtc(this.serverNow());
    const edits = Object.values(await this.edits(name).catch(() => ({})));
    report.pending = edits.filter((e) => e.state === 'saved' || e.state === 'sent').length;
    report.refused_open = edits.filter((e) => e.state === 'refused').length;
    report.conflicts = (await this.conflicts(name).catch(() => [])).length;
    report.clock_offset_ms = this.clock.offsetMs();
    try {
      const s = await this.snapshot();
      report.credential_expires_at = formatUtc(s.credentialExpiresAt);
      report.offline_until = formatUtc(s.offlineUntil);
    } catch {
      report.credential_expires_at = null;
      report.offline_until = null;
    }
    report.app_version = this.appVersion;
    await this.vault.setClear('clock_offset_ms', this.clock.offsetMs());
    const queue = [...(await this.reports()), report].slice(-MAX_REPORTS);
    await this.vault.setClear('reports', queue);
    this.emit('report', report);
  }

  async reports() {
    return (await this.vault.clear()).reports || [];
  }

  // Send the queued reports; each answered id (stored, duplicate, expired or refused) leaves
  // the queue. A bridge without the reports endpoint keeps them queued.
  async sendReports() {
    let queue = await this.reports();
    let sent = 0;
    while (queue.length && this.online && !this.wiped) {
      const batch = queue.slice(0, REPORT_BATCH);
      let answer;
      try {
        answer = (await this._signed('/v1/reports', {reports: batch}, {bearer: false, wipeNow: false})).body;
      } catch (err) {
        if (err instanceof DeviceRevoked) {
          // Heard here first (a live replication's report): the replications stop and say
          // why, as when a renewal is refused, and the device wipes itself.
          if (!this.stopped) { this._stop(err); }
          if (!this.wiped) { await this.wipe(); }
          throw err;
        }
        // A report the bridge cannot take (an older software's format) would block the queue
        // for ever: it goes, the others are sent again.
        const index = err instanceof BridgeError && err.code === 'report.bad' && err.details ? err.details.index : undefined;
        if (!Number.isInteger(index) || !batch[index]) { throw err; }
        queue = (await this.reports()).filter((r) => r.id !== batch[index].id);
        await this.vault.setClear('reports', queue);
        continue;
      }
      const heard = new Set([...(answer.stored || []), ...(answer.duplicates || []), ...(answer.expired || []),
                             ...(answer.refused || []).map((r) => r.id)]);
      if (!batch.some((r) => heard.has(r.id))) { break; }
      queue = (await this.reports()).filter((r) => !heard.has(r.id));
      await this.vault.setClear('reports', queue);
      sent += heard.size;
    }
    return sent;
  }

  // -- wipe -------------------------------------------------------------------------------

  // Keys, credentials, tokens and every record, synced or not: the vault first (it holds the
  // wrapped data key, without which no sealed body opens), then every database.
  async wipe() {
    if (this.wiped) { return; }
    this.wiped = true;
    for (const live of [...this.lives]) { live.cancel(); }
    const names = new Set([...this.databasesOpen.keys(), ...((this.session && this.session.databases) || []).map((d) => d.name)]);
    await this.vault.db.destroy();
    for (const name of names) {
      const db = this.databasesOpen.get(name) ||
        new this.PouchDB(`${this.prefix}carecouch-db-${name}`);
      await db.destroy().catch(() => {});
    }
    this.databasesOpen.clear();
    this.seed = null;
    this.session = null;
    this.token = null;
    // Last: a call racing the wipe settles only once nothing is left on the device.
    this._rejectWiped(new DeviceRevoked('this device was revoked and has wiped itself', {code: 'device.revoked'}));
    this.emit('wiped', {device: this.deviceId});
  }
}

// The calls an app makes, each settled by a wipe in the middle of it (see _wipedSignal).
for (const name of ['put', 'newRecord', 'update', 'complete', 'get', 'records', 'editState', 'edits',
                    'conflicts', 'createRecord', 'lease', 'login', 'snapshot', 'news2', 'reports']) {
  const method = Device.prototype[name];
  Device.prototype[name] = function (...args) {
    return Promise.race([method.apply(this, args), this._wipedSignal]);
  };
}

function stubbed(doc) {
  const atts = doc._attachments;
  if (!atts || typeof atts !== 'object') { return doc; }
  const stubs = {};
  for (const [n, a] of Object.entries(atts)) {
    const {data, ...rest} = a;
    stubs[n] = {...rest, stub: true};
  }
  return {...doc, _attachments: stubs};
}

function codeOf(reason) {
  const text = String(reason || '');
  const at = text.indexOf(': ');
  const head = at === -1 ? '' : text.slice(0, at);
  return head && !head.includes(' ') ? head : '';
}

function stateOf(err, stopped) {
  if (stopped) { return stopped.reason === 'unreachable' ? 'unreachable' : 'unauthorized'; }
  if (err instanceof DeviceOfflineError || (err && err.name === 'BridgeUnreachable')) { return 'unreachable'; }
  if (err instanceof PolicyRefused || err instanceof TokenRefused) { return 'policy'; }
  if (err && (err.status === 401)) { return 'unauthorized'; }
  if (err && (err.status === 403)) { return 'forbidden'; }
  if (err && (err.code === 'ECONNREFUSED' || /fetch failed|NetworkError|Failed to fetch/i.test(String(err.message)))) { return 'unreachable'; }
  return 'failed';
}

// True when `next` differs from `prev` only by a later not_before (session.py _window_slid).
export function windowSlid(prev, next) {
  if (!prev || !next || prev.name !== next.name) { return false; }
  const a = {...(prev.query_params || {})}, b = {...(next.query_params || {})};
  const before = a.not_before, after = b.not_before;
  delete a.not_before;
  delete b.not_before;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].every((k) => a[k] === b[k]) && before !== undefined && after !== undefined && before <= after;
}

export {getOrNull};

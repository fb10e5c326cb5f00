// carecouch field app: a small offline-first web app on the device library (docs/js-device.md,
// "The field web app"). Everything of a patient lives in PouchDB on IndexedDB, sealed by the
// library under a key the passphrase unwraps; the service worker (sw.js) caches only the app.
// CouchDB and the bridge are reached through the same origin (/couch, /bridge: app/serve.js
// in development, the TLS proxy in production), so the page needs no CORS and its CSP allows
// connections to itself only.

import PouchDB from 'pouchdb';

import {Device, DeviceRevoked, RecordRefused, PolicyRefused, BridgeError, formatUtc} from '../../src/index.js';

/* global CARECOUCH_QUERY_SERVER, CARECOUCH_RULES_HOST */
const RULES = {queryServer: CARECOUCH_QUERY_SERVER, rulesHost: CARECOUCH_RULES_HOST};
const ORIGIN = location.origin;
const OPTIONS = {PouchDB, prefix: 'cc-', rules: RULES, couchUrl: `${ORIGIN}/couch`, appVersion: 'field-app 0.1.0'};

const $ = (sel, root = document) => root.querySelector(sel);
const state = {device: null, db: null, subject: null, lives: new Map(), lastSync: null, problem: null};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'on') { for (const [e, fn] of Object.entries(v)) { node.addEventListener(e, fn); } }
    else if (v !== undefined && v !== null && v !== false) { node.setAttribute(k, v === true ? '' : v); }
  }
  for (const c of children.flat()) { if (c !== null && c !== undefined) { node.append(c instanceof Node ? c : String(c)); } }
  return node;
}

function show(id) {
  for (const s of document.querySelectorAll('main > section')) { s.hidden = s.id !== id; }
}

function say(text, kind = 'info') {
  const box = $('#message');
  box.textContent = text;
  box.className = kind;
  box.hidden = !text;
}

// -- network state ----------------------------------------------------------------------

function online() {
  return navigator.onLine;
}

function renderNet() {
  const net = $('#net');
  if (!online()) {
    net.className = 'offline';
    net.textContent = 'You are offline — work is saved on this device and sent when you reconnect';
  } else if (state.problem) {
    net.className = 'problem';
    net.textContent = state.problem;
  } else {
    net.className = 'online';
    net.textContent = state.lastSync ? `Online — synced ${state.lastSync}` : 'Online — syncing…';
  }
}

async function goOnline() {
  const device = state.device;
  renderNet();
  if (!device || device.wiped) { return; }
  device.setOnline(online());
  if (!online()) {
    for (const live of state.lives.values()) { live.cancel(); }
    state.lives.clear();
    return;
  }
  try {
    for (const db of device.session.databases) {
      if (!state.lives.has(db.name)) {
        const live = await device.live(db.name);
        state.lives.set(db.name, live);
        live.done.then(() => state.lives.delete(db.name));
      }
    }
  } catch (err) {
    failed(err);
  }
}

function failed(err) {
  if (err instanceof DeviceRevoked || (state.device && state.device.wiped)) { return wiped(); }
  state.problem = err.message;
  // An expired sign-in (the identity token renewals need): ask for a new one.
  if (/auth\.|sign in|log in/.test(`${err.code || ''} ${err.message}`)) { $('#signin').open = true; }
  renderNet();
}

// Identity tokens are short-lived; the device's credentials are renewed with the latest one.
async function signInAgain(event) {
  event.preventDefault();
  const form = event.target;
  try {
    await state.device.login({token: form.token.value.trim()});
    form.reset();
    $('#signin').open = false;
    state.problem = null;
    say('Signed in: credentials and access policy renewed');
    await goOnline();
  } catch (err) {
    failed(err);
    say(err.message, 'error');
  }
}

function wiped() {
  for (const live of state.lives.values()) { live.cancel(); }
  state.lives.clear();
  state.device = null;
  show('wiped');
}

// -- setup and unlock -------------------------------------------------------------------

async function setup(event) {
  event.preventDefault();
  const form = event.target;
  const button = $('button', form);
  button.disabled = true;
  say('Setting up this device…');
  try {
    const device = await Device.create({...OPTIONS, passphrase: form.passphrase.value});
    await device.enrol({bridgeUrl: `${ORIGIN}/bridge`, token: form.token.value.trim(), label: form.label.value || 'field app'});
    await device.login();
    await start(device);
  } catch (err) {
    say(err.message, 'error');
    if (state.device === null) { await resetIfHalfMade(); }
  } finally {
    button.disabled = false;
  }
}

// A store made but never enrolled is no use to anyone: start over next time.
async function resetIfHalfMade() {
  const vault = new PouchDB('cc-carecouch-vault');
  const clear = await vault.get('clear').catch(() => null);
  if (clear && !clear.values.bridge_url) { await vault.destroy(); }
}

async function unlock(event) {
  event.preventDefault();
  const form = event.target;
  say('Unlocking…');
  try {
    const device = await Device.open({...OPTIONS, passphrase: form.passphrase.value});
    form.passphrase.value = '';
    if (online()) {
      // Fresh credentials and snapshot while we can; offline, the signed snapshot holds.
      await device.login().catch((err) => { if (err instanceof DeviceRevoked) { throw err; } });
    }
    await start(device);
  } catch (err) {
    if (err instanceof DeviceRevoked) { return wiped(); }
    say(err.message, 'error');
  }
}

async function start(device) {
  state.device = device;
  device.on('wiped', wiped);
  device.on('stopped', (s) => { failed(Object.assign(new Error(`Sync stopped: ${s.message}`), {code: s.error && s.error.code})); });
  device.on('idle', () => { state.lastSync = new Date().toLocaleTimeString(); state.problem = null; renderNet(); refresh(); });
  for (const event of ['state', 'pulled', 'change']) { device.on(event, () => refresh()); }
  const info = await device.describe();
  $('#who').textContent = `${info.user} · device ${device.deviceId}`;
  const select = $('#caseload');
  select.replaceChildren(...info.databases.map((d) => el('option', {value: d.name}, d.caseload)));
  state.db = info.databases[0] && info.databases[0].name;
  say('');
  show('work');
  await goOnline();
  await refresh();
}

// -- the day's list and one patient -----------------------------------------------------

let refreshing = null;
let again = false;
function refresh() {
  // Events come in bursts during a sync: one render at a time, and the latest state. A
  // request that arrives while a render runs (which may have read the records before the
  // change that asked) gets one more render after it, or the page would keep showing a
  // completed check as still to do.
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    try {
      do {
        again = false;
        await render();
      } while (again);
    } catch (err) {
      failed(err);
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

async function render() {
  const device = state.device;
  if (!device || !state.db) { return; }
  const records = await device.records(state.db);
  const edits = await device.edits(state.db);
  const bySubject = new Map();
  for (const doc of records) {
    if (!doc.subject) { continue; }
    if (!bySubject.has(doc.subject)) { bySubject.set(doc.subject, []); }
    bySubject.get(doc.subject).push(doc);
  }
  const latestNews = (docs) => {
    const obs = docs.filter((d) => d.type === 'observation').sort((a, b) => (a.at < b.at ? 1 : -1));
    return obs.length ? obs[0].news2 : null;
  };
  const subjects = [...bySubject.keys()].sort((a, b) => (latestNews(bySubject.get(b)) ?? -1) - (latestNews(bySubject.get(a)) ?? -1) || a.localeCompare(b));
  $('#patients').replaceChildren(...subjects.map((s) => {
    const docs = bySubject.get(s);
    const news = latestNews(docs);
    const plan = docs.find((d) => d.type === 'care_plan');
    const checks = docs.filter((d) => d.type === 'cd_check' && d.status === 'pending').length;
    return el('li', {'data-subject': s, class: s === state.subject ? 'selected' : '', on: {click: () => { state.subject = s; refresh(); }}},
              el('strong', {}, s),
              news === null ? null : el('span', {class: `news news${news >= 7 ? 'high' : news >= 5 ? 'medium' : 'low'}`}, `NEWS2 ${news}`),
              plan ? el('span', {class: 'plan'}, plan.title) : null,
              checks ? el('span', {class: 'check'}, `${checks} CD check${checks > 1 ? 's' : ''}`) : null);
  }));
  $('#empty').hidden = subjects.length > 0;
  renderPatient(bySubject.get(state.subject) || [], edits);
}

function badge(doc, edits) {
  const edit = edits[doc._id];
  if (!edit || edit.rev !== doc._rev) { return el('span', {class: 'badge server'}, 'on server'); }
  const label = {saved: 'pending', sent: 'pending', confirmed: 'confirmed', refused: 'refused'}[edit.state];
  return el('span', {class: `badge ${label}`, title: edit.reason || ''}, label);
}

function renderPatient(docs, edits) {
  const panel = $('#patient');
  panel.hidden = !state.subject;
  if (!state.subject) { return; }
  $('#patient-name').textContent = state.subject;
  const plan = docs.find((d) => d.type === 'care_plan');
  const form = $('#plan-form');
  form.dataset.id = plan ? plan._id : '';
  if (document.activeElement === null || !form.contains(document.activeElement)) {
    form.title.value = plan ? plan.title || '' : '';
    form.goals.value = plan && plan.goals ? plan.goals.join('\n') : '';
  }
  $('#plan-state').replaceChildren(plan ? badge(plan, edits) : '', plan && plan._conflicts && plan._conflicts.length
    ? el('span', {class: 'badge refused'}, 'conflict: under review') : '');
  const checks = docs.filter((d) => d.type === 'cd_check');
  $('#checks').replaceChildren(...checks.map((c) => {
    const leased = c.lease && c.lease.holder === state.device.writer;
    return el('li', {'data-id': c._id},
              `${c.medication} · expected ${c.expected_count} · `, el('em', {}, c.status), ' ', badge(c, edits),
              c.status === 'pending' && !leased ? el('button', {type: 'button', class: 'claim', on: {click: () => claim(c._id)}}, 'Claim') : null,
              c.status === 'pending' && leased ? el('span', {class: 'complete'},
                el('input', {type: 'number', min: '0', class: 'counted', 'aria-label': 'counted', value: c.expected_count}),
                el('button', {type: 'button', on: {click: (e) => completeCheck(c._id, e.target.previousSibling.value)}}, 'Witnessed')) : null);
  }));
  const obs = docs.filter((d) => d.type === 'observation').sort((a, b) => (a.at < b.at ? 1 : -1));
  $('#observations').replaceChildren(...obs.map((o) => el('li', {'data-id': o._id},
    `${o.at.slice(0, 16).replace('T', ' ')} · NEWS2 ${o.news2} · pulse ${o.pulse} · RR ${o.respiration_rate} · SpO₂ ${o.spo2}% · BP ${o.systolic_bp} · ${o.temperature} °C `,
    badge(o, edits))));
}

const VITALS = ['respiration_rate', 'spo2', 'systolic_bp', 'pulse'];

function vitalsOf(form) {
  const doc = {subject: state.subject, spo2_scale: 1, on_oxygen: form.on_oxygen.checked,
               consciousness: form.consciousness.value, temperature: Number(form.temperature.value)};
  for (const name of VITALS) { doc[name] = Number.parseInt(form[name].value, 10); }
  if (form.note.value) { doc.note = form.note.value; }
  return doc;
}

async function previewNews(event) {
  const form = event.currentTarget;
  try {
    const result = await state.device.news2(state.db, vitalsOf(form));
    $('#news-preview').textContent = result && result.score !== undefined ? `NEWS2 ${result.score}${result.response ? ' — ' + result.response : ''}` : '';
  } catch {
    $('#news-preview').textContent = '';
  }
}

async function observe(event) {
  event.preventDefault();
  const form = event.target;
  try {
    const saved = await state.device.newRecord(state.db, 'observation', vitalsOf(form));
    say(`Observation saved (NEWS2 ${saved.news2})${online() ? '' : ' on this device: it will be sent when you reconnect'}`);
    form.reset();
    $('#news-preview').textContent = '';
  } catch (err) {
    say(err instanceof RecordRefused || err instanceof PolicyRefused ? err.message : `Not saved: ${err.message}`, 'error');
  }
  await refresh();
}

async function savePlan(event) {
  event.preventDefault();
  const form = event.target;
  const goals = form.goals.value.split('\n').map((g) => g.trim()).filter(Boolean);
  try {
    if (form.dataset.id) {
      await state.device.update(state.db, form.dataset.id, {title: form.title.value, goals});
    } else {
      await state.device.newRecord(state.db, 'care_plan', {subject: state.subject, title: form.title.value, goals});
    }
    say('Care plan saved');
  } catch (err) {
    say(err.message, 'error');
  }
  await refresh();
}

async function claim(id) {
  try {
    await state.device.claimLease(state.db, id);
    say('Lease claimed: you may complete this check, offline too, until the lease ends');
  } catch (err) {
    say(err instanceof BridgeError ? err.message : `Cannot claim now: ${err.message}`, 'error');
  }
  await refresh();
}

async function completeCheck(id, counted) {
  try {
    await state.device.complete(state.db, id, 'witnessed', {counted: Number.parseInt(counted, 10)});
    say('Controlled-drug check completed');
  } catch (err) {
    say(err.message, 'error');
  }
  await refresh();
}

async function syncNow() {
  if (!state.device) { return; }
  try {
    for (const db of state.device.session.databases) { await state.device.sync(db.name); }
    state.lastSync = new Date().toLocaleTimeString();
    state.problem = null;
  } catch (err) {
    failed(err);
  }
  renderNet();
  await refresh();
}

// -- wiring -----------------------------------------------------------------------------

async function main() {
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('sw.js').catch((err) => console.warn('no service worker:', err.message));
  }
  $('#setup-form').addEventListener('submit', setup);
  $('#unlock-form').addEventListener('submit', unlock);
  $('#obs-form').addEventListener('submit', observe);
  $('#obs-form').addEventListener('input', previewNews);
  $('#plan-form').addEventListener('submit', savePlan);
  $('#sync').addEventListener('click', syncNow);
  $('#signin-form').addEventListener('submit', signInAgain);
  $('#visit-form').addEventListener('submit', (e) => {  // a patient not yet in the working set
    e.preventDefault();
    state.subject = e.target.subject.value.trim();
    e.target.reset();
    refresh();
  });
  $('#caseload').addEventListener('change', (e) => { state.db = e.target.value; state.subject = null; refresh(); });
  window.addEventListener('online', goOnline);
  window.addEventListener('offline', goOnline);
  renderNet();
  show(await Device.exists({PouchDB, prefix: OPTIONS.prefix}) ? 'unlock' : 'setup');
  document.body.dataset.ready = 'true';
}

window.carecouchApp = {state, formatUtc};
main();

// Drives Debian's Chromium (headless, playwright-core) through the field app as a clinician
// would, step by step, on a persistent browser profile (so IndexedDB and the service worker
// survive from one run to the next, as on a tablet). Prints one JSON object: each step's
// result. tests/js/test_field_app.py says what to do and asserts on what happened.
//
//   node test/browser/app_browser.js '{"url", "profile", "steps": [{"op": ...}, ...]}'

import {chromium} from 'playwright-core';

const CHROMIUM = process.env.CARECOUCH_TEST_CHROMIUM || '/usr/bin/chromium';
const args = JSON.parse(process.argv[2]);
const TIMEOUT = 20000;

// Every IndexedDB database of the origin, every object store, every value, as text; and
// Cache Storage's entries. What a thief with the tablet's disk would find.
async function dumpStorage(page) {
  return page.evaluate(async () => {
    const text = (value) => {
      const seen = (v) => {
        if (v instanceof ArrayBuffer) { return new TextDecoder('utf-8', {fatal: false}).decode(v); }
        if (ArrayBuffer.isView(v)) { return new TextDecoder('utf-8', {fatal: false}).decode(v.buffer); }
        return v;
      };
      return JSON.stringify(value, (k, v) => seen(v));
    };
    const out = {databases: [], text: '', caches: [], cacheText: ''};
    for (const info of await indexedDB.databases()) {
      out.databases.push(info.name);
      const db = await new Promise((resolve, reject) => {
        const req = indexedDB.open(info.name);
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
      for (const store of db.objectStoreNames) {
        const values = await new Promise((resolve, reject) => {
          const req = db.transaction(store).objectStore(store).getAll();
          req.onsuccess = () => resolve(req.result);
          req.onerror = () => reject(req.error);
        });
        for (const value of values) {
          out.text += text(value) + '\n';
          if (value instanceof Blob) { out.text += await value.text() + '\n'; }
        }
      }
      db.close();
    }
    for (const name of await caches.keys()) {
      const cache = await caches.open(name);
      for (const request of await cache.keys()) {
        out.caches.push(request.url);
        out.cacheText += await (await cache.match(request)).text() + '\n';
      }
    }
    return out;
  });
}

async function selectPatient(page, subject) {
  await page.click(`#patients li[data-subject="${subject}"]`, {timeout: TIMEOUT});
  await page.waitForSelector('#patient:not([hidden])');
}

async function badge(page, selector, text) {
  await page.waitForFunction(([sel, want]) => {
    const node = document.querySelector(sel);
    return node && node.textContent.trim() === want;
  }, [selector, text], {timeout: TIMEOUT});
}

async function run(page, context, step) {
  switch (step.op) {
  case 'open':
    await page.goto(args.url, {waitUntil: 'load'});
    await page.waitForSelector('body[data-ready=true]', {timeout: TIMEOUT});
    return {visible: await page.evaluate(() => [...document.querySelectorAll('main > section')].find((s) => !s.hidden)?.id)};
  case 'reload':
    await page.reload({waitUntil: 'load'});
    await page.waitForSelector('body[data-ready=true]', {timeout: TIMEOUT});
    return {visible: await page.evaluate(() => [...document.querySelectorAll('main > section')].find((s) => !s.hidden)?.id)};
  case 'setup':
    await page.fill('#setup-form [name=token]', step.token);
    await page.fill('#setup-form [name=passphrase]', step.passphrase);
    await page.fill('#setup-form [name=label]', 'browser test tablet');
    await page.click('#setup-form button');
    await page.waitForSelector('#work:not([hidden])', {timeout: TIMEOUT});
    return {device: await page.evaluate(() => window.carecouchApp.state.device.deviceId)};
  case 'unlock':
    await page.fill('#unlock-form [name=passphrase]', step.passphrase);
    await page.click('#unlock-form button');
    await page.waitForSelector(step.expect === 'wiped' ? '#wiped:not([hidden])' : '#work:not([hidden])', {timeout: TIMEOUT});
    return {visible: step.expect || 'work'};
  case 'sw_ready':
    await page.evaluate(() => navigator.serviceWorker.ready);
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, {timeout: TIMEOUT}).catch(async () => {
      await page.reload({waitUntil: 'load'});  // the first load is not yet controlled
    });
    return {controlled: await page.evaluate(() => navigator.serviceWorker.controller !== null)};
  case 'offline':
  case 'online':
    await context.setOffline(step.op === 'offline');
    await page.waitForSelector(`#net.${step.op}`, {timeout: TIMEOUT});
    return {net: await page.textContent('#net')};
  case 'patients':
    await page.waitForFunction((want) => want.every((s) => document.querySelector(`#patients li[data-subject="${s}"]`)),
                               step.expect || [], {timeout: TIMEOUT});
    return {patients: await page.$$eval('#patients li', (lis) => lis.map((li) => li.textContent))};
  case 'observe': {
    await selectPatient(page, step.subject);
    const before = await page.$$eval('#observations li', (lis) => lis.map((li) => li.dataset.id));
    for (const [name, value] of Object.entries(step.vitals)) {
      if (name === 'consciousness') { await page.selectOption('#obs-form [name=consciousness]', value); }
      else { await page.fill(`#obs-form [name=${name}]`, String(value)); }
    }
    const preview = await page.waitForFunction(() => document.querySelector('#news-preview').textContent, null, {timeout: TIMEOUT}).then((h) => h.jsonValue());
    await page.click('#obs-form button');
    await page.waitForFunction((n) => document.querySelectorAll('#observations li').length > n, before.length, {timeout: TIMEOUT});
    const ids = await page.$$eval('#observations li', (lis) => lis.map((li) => li.dataset.id));
    const id = ids.find((i) => !before.includes(i));
    await badge(page, `#observations li[data-id="${id}"] .badge`, step.expect || 'pending');
    return {id, preview, message: await page.textContent('#message')};
  }
  case 'plan':
    await selectPatient(page, step.subject);
    await page.fill('#plan-form [name=title]', step.title);
    await page.fill('#plan-form [name=goals]', step.goals.join('\n'));
    await page.click('#plan-form button');
    await badge(page, '#plan-state .badge', step.expect || 'pending');
    return {id: await page.getAttribute('#plan-form', 'data-id'), message: await page.textContent('#message')};
  case 'claim':
    await selectPatient(page, step.subject);
    await page.click(`#checks li[data-id="${step.id}"] button.claim`, {timeout: TIMEOUT});
    await page.waitForSelector(`#checks li[data-id="${step.id}"] .complete`, {timeout: TIMEOUT});
    return {message: await page.textContent('#message')};
  case 'complete':
    await selectPatient(page, step.subject);
    await page.fill(`#checks li[data-id="${step.id}"] input.counted`, String(step.counted));
    await page.click(`#checks li[data-id="${step.id}"] .complete button`);
    await badge(page, `#checks li[data-id="${step.id}"] .badge`, step.expect || 'pending');
    return {message: await page.textContent('#message')};
  case 'wait_badge':
    await selectPatient(page, step.subject);
    await badge(page, step.selector, step.text);
    return {ok: true};
  case 'signin':
    await page.click('#signin summary');
    await page.fill('#signin-form [name=token]', step.token);
    await page.click('#signin-form button');
    await page.waitForFunction(() => /Signed in|refused/.test(document.querySelector('#message').textContent), null, {timeout: TIMEOUT});
    return {message: await page.textContent('#message'), who: await page.textContent('#who')};
  case 'sync':
    await page.click('#sync');
    await page.waitForFunction(() => /synced/.test(document.querySelector('#net').textContent), null, {timeout: TIMEOUT});
    return {net: await page.textContent('#net')};
  case 'doc':
    return {doc: await page.evaluate(([db, id]) => window.carecouchApp.state.device.get(db, id), [step.db, step.id])};
  case 'storage':
    return await dumpStorage(page);
  case 'screenshot':
    if (step.subject) { await selectPatient(page, step.subject); }
    await page.screenshot({path: step.path, fullPage: true});
    return {path: step.path};
  case 'text':
    return {net: await page.textContent('#net'), body: await page.innerText('body')};
  default:
    throw new Error(`unknown step ${step.op}`);
  }
}

const context = await chromium.launchPersistentContext(args.profile, {
  executablePath: CHROMIUM, headless: true, viewport: {width: 1280, height: 860},
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking']});
const results = [];
const errors = [];
let failure = null;
try {
  const page = context.pages()[0] || await context.newPage();
  page.on('pageerror', (err) => errors.push(String(err)));
  for (const step of args.steps) {
    results.push({op: step.op, ...(await run(page, context, step))});
  }
} catch (err) {
  failure = `${err.message}`;
} finally {
  await context.close();
}
// exit only once the pipe has taken it all (a large storage dump is written asynchronously)
process.stdout.write(JSON.stringify({results, errors, failure}), () => process.exit(failure ? 1 : 0));

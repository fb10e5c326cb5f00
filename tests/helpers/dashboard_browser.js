// Drives Debian's Chromium (headless) through the fleet dashboard with playwright-core, as
// a person would: opens it unsigned, signs in with a non-admin's token, then a policy
// admin's, and reads what each page shows. Prints one JSON object on stdout;
// tests/fleet/test_dashboard.py asserts on it and keeps the screenshot.
//
//   node dashboard_browser.js '{"url": ..., "admin": TOKEN, "nurse": TOKEN, "out": DIR}'
'use strict';

const path = require('path');
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.CARECOUCH_TEST_CHROMIUM || '/usr/bin/chromium';

async function signIn(page, url, token) {
  await page.goto(url + '/dashboard');
  await page.fill('textarea[name=token]', token);
  const [response] = await Promise.all([
    page.waitForNavigation(),
    page.click('button[type=submit]'),
  ]);
  return response;
}

async function main() {
  const args = JSON.parse(process.argv[2]);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const out = {};
  try {
    // Nobody signed in: the sign-in form, and nothing of the fleet.
    let context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    let page = await context.newPage();
    const anonymous = await page.goto(args.url + '/dashboard');
    out.anonymous = {
      status: anonymous.status(),
      title: await page.title(),
      text: await page.innerText('body'),
      form: await page.locator('textarea[name=token]').count(),
    };
    // A nurse's token: refused, still nothing of the fleet.
    const refused = await signIn(page, args.url, args.nurse);
    out.nurse = { status: refused.status(), text: await page.innerText('body'),
                  cookies: (await context.cookies()).length };
    await context.close();

    // A policy admin.
    context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    page = await context.newPage();
    const requests = [];
    page.on('request', (request) => requests.push(request.url()));
    const shown = await signIn(page, args.url, args.admin);
    out.admin = {
      status: shown.status(),
      url: page.url(),
      cookie: (await context.cookies()).map((c) => ({ name: c.name, httpOnly: c.httpOnly,
                                                      sameSite: c.sameSite, path: c.path })),
      tiles: await page.$$eval('[data-tile]', (tiles) => tiles.map((t) => ({
        label: t.getAttribute('data-tile'),
        value: t.querySelector('.value').textContent.trim(),
        sub: t.querySelector('.sub').textContent.trim(),
      }))),
      attention: await page.$$eval('#attention-table tbody tr', (rows) => rows.map((r) => ({
        device: r.getAttribute('data-device'),
        severity: r.querySelector('.sev').textContent.trim(),
        text: r.innerText,
      }))),
      caseloads: await page.$$eval('#caseloads-table tbody tr', (rows) => rows.map((r) => ({
        id: r.getAttribute('data-caseload'),
        cells: Array.from(r.querySelectorAll('td')).map((td) => td.textContent.trim()),
      }))),
      charts: await page.$$eval('.charts svg', (svgs) => svgs.map((s) => ({
        label: s.getAttribute('aria-label'),
        bars: s.querySelectorAll('rect').length,
        points: s.querySelectorAll('circle').length,
      }))),
      requests,
    };
    if (args.caseload) {
      await page.goto(args.url + '/dashboard?days=7&caseload=' + args.caseload);
      out.caseload = {
        heading: await page.innerText('main h2'),
        tiles: await page.$$eval('[data-tile]', (tiles) => tiles.map((t) => ({
          label: t.getAttribute('data-tile'),
          value: t.querySelector('.value').textContent.trim() }))),
      };
      await page.goto(args.url + '/dashboard');
    }
    out.admin.screenshot = path.join(args.out, 'dashboard.png');
    await page.screenshot({ path: out.admin.screenshot, fullPage: true });
    await context.close();
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack || err) + '\n');
  process.exit(1);
});

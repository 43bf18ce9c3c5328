// Drives the web console in Debian's headless Chromium (playwright-core, no browser of its
// own) against a real `bulkhead up`. Run by crates/bulkhead/tests/console.rs, which starts
// the server and the tenants; by hand:
//
//   CONSOLE_URL=http://127.0.0.1:8080 ADMIN_TOKEN=... READ_TOKEN=... TENANT=slug \
//   SHOTS=/tmp/shots node console.mjs
//
// Every step prints one line; the first failure prints what the page showed and exits 1.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) { console.error(`console.mjs: set ${k}`); process.exit(2); }
  return v;
};
const url = env('CONSOLE_URL');
const admin = env('ADMIN_TOKEN');
const readOnly = env('READ_TOKEN');
const tenant = env('TENANT');
const shots = env('SHOTS');
const moveTimeout = Number(env('MOVE_TIMEOUT_MS', '180000'));
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, timezoneId: 'Europe/Berlin', locale: 'en-GB' });
const page = await context.newPage();
const problems = [];
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => { if (m.type() === 'error' && !/status of 40[13]/.test(m.text())) problems.push(`console error: ${m.text()}`); });
let stepName = '';
const step = async (name, fn) => {
  stepName = name;
  const t0 = Date.now();
  await fn();
  if (problems.length) throw new Error(problems.join('\n'));
  console.log(`ok   ${name} (${Date.now() - t0} ms)`);
};
// Notifications are cleared first: they would cover the page in its picture.
const shot = async (name) => {
  await page.evaluate(() => { const t = document.getElementById('toasts'); if (t) t.replaceChildren(); });
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
};
const api = async (method, path, token) => {
  const r = await fetch(`${url}${path}`, { method, headers: { Authorization: `Bearer ${token}` } });
  return { status: r.status, body: await r.json().catch(() => null) };
};
const expectEq = (what, got, want) => { if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`); };
const signIn = async (token) => {
  await page.fill('input[name=token]', token);
  await page.click('button[type=submit]');
};
// Confirms the open dialog (choosing `values` in its fields first).
const confirm = async (values = {}) => {
  const d = page.locator('dialog[open]');
  await d.waitFor();
  for (const [name, v] of Object.entries(values)) await d.locator(`[name=${name}]`).selectOption(v);
  await d.locator('button[value=ok]').click();
  await d.waitFor({ state: 'detached' });
};

try {
  if (process.env.ONLY === 'unreachable') {
    await step('an unreachable cluster is shown on the fleet page', async () => {
      await page.goto(url);
      await signIn(admin);
      await page.waitForSelector('.banner.bad:text("unreachable")');
      await page.waitForSelector('tr:has(strong:text-is("far")) .badge.bad:text("unreachable")');
      await page.waitForSelector('tr:has(strong:text-is("local")) .badge.ok:text("reachable")');
      await shot('fleet-unreachable');
    });
    console.log('console: every step passed');
    process.exit(0);
  }
  await step('a wrong token is refused', async () => {
    await page.goto(url);
    await page.waitForSelector('form.signin-form');
    await shot('signin');
    await signIn('not-the-token-at-all-0000');
    await page.waitForSelector('.signin .banner.bad:not([hidden])');
    const text = await page.textContent('.signin .banner.bad');
    if (!/not this instance/.test(text)) throw new Error(`unexpected refusal: ${text}`);
  });

  await step('the admin token signs in; the fleet page shows the placement map', async () => {
    await signIn(admin);
    await page.waitForSelector('[data-role=admin]');
    const local = 'tr:has(strong:text-is("local")) td[data-mode=shared]';
    await page.waitForSelector(local);
    const shared = Number((await page.textContent(local)).replace(/\D/g, ''));
    if (!(shared > 100)) throw new Error(`shared tenants on the map: ${shared}`);
    if (page.url().includes(admin)) throw new Error('the token is in the URL');
    expectEq('document.cookie (the session cookie is HttpOnly)', await page.evaluate(() => document.cookie), '');
    await page.waitForSelector('#live:text("live")');
    await shot('fleet');
  });

  await step('an action without the CSRF token, or from another origin, is refused', async () => {
    const noCsrf = await page.evaluate((t) => fetch(`/v1/tenants/${t}/suspend`, { method: 'POST' }).then((r) => r.status), tenant);
    expectEq('POST without X-CSRF-Token', noCsrf, 403);
    const who = await page.evaluate(() => fetch('/console/session').then((r) => r.json()));
    const badOrigin = await page.evaluate(([t, csrf]) => fetch(`/v1/tenants/${t}/suspend`, { method: 'POST', headers: { 'X-CSRF-Token': csrf + 'x' } }).then((r) => r.status), [tenant, who.csrf]);
    expectEq('POST with a wrong X-CSRF-Token', badOrigin, 403);
    expectEq('tenant state after the refused actions', (await api('GET', `/v1/tenants/${tenant}`, admin)).body.state, 'active');
  });

  await step('a tenant is found among many, server-side, and pages move on', async () => {
    await page.click('nav a[href="#/tenants"]');
    await page.waitForSelector('a[data-tenant]');
    const total = await page.textContent('.card h2 .hint');
    await page.click('a[data-next]');
    await page.waitForFunction(() => location.hash.includes('offset=50'));
    await page.waitForSelector('.pager:text("51–")');
    await shot('tenants');
    await page.fill('input[name=q]', tenant);
    await page.press('input[name=q]', 'Enter');
    await page.waitForSelector(`a[data-tenant="${tenant}"]`);
    expectEq(`the first match for "${tenant}" (of ${total})`, await page.locator('a[data-tenant]').first().textContent(), tenant);
    await shot('tenants-search');
  });

  await step("the tenant's page renders its usage chart", async () => {
    await page.click(`a[data-tenant="${tenant}"]`);
    await page.waitForSelector(`[data-slug="${tenant}"]`);
    await page.waitForSelector('figure[data-chart="Transactions per hour"] svg path.line', { state: 'attached' });
    const dots = await page.locator('figure[data-chart="Transactions per hour"] svg circle').count();
    if (dots < 1) throw new Error('no points on the transactions chart');
    await page.waitForSelector('[data-chain=intact]');
    await shot('tenant');
  });

  await step('suspend and resume, through the API, in the audit log', async () => {
    await page.click('button[data-action=suspend]');
    await confirm();
    await page.waitForSelector(`[data-slug="${tenant}"] .badge:text("suspended")`);
    expectEq('state after suspend', (await api('GET', `/v1/tenants/${tenant}`, admin)).body.state, 'suspended');
    await page.click('button[data-action=resume]');
    await page.waitForSelector(`[data-slug="${tenant}"] .badge:text("active")`);
    expectEq('state after resume', (await api('GET', `/v1/tenants/${tenant}`, admin)).body.state, 'active');
    const audit = await api('GET', `/v1/audit?tenant=${tenant}&last=10`, admin);
    const actions = audit.body.map((e) => `${e.actor}:${e.action}`);
    for (const a of ['api:tenant.suspended', 'api:tenant.resumed']) if (!actions.includes(a)) throw new Error(`audit lacks ${a}: ${actions}`);
  });

  await step('a key is revoked from the tenant page', async () => {
    const before = (await api('GET', `/v1/tenants/${tenant}/keys`, admin)).body.filter((k) => !k.revoked_at).length;
    await page.locator('button[data-action=revoke-key]').first().click();
    await confirm();
    await page.waitForSelector('.badge:text-is("revoked")');
    const after = (await api('GET', `/v1/tenants/${tenant}/keys`, admin)).body.filter((k) => !k.revoked_at).length;
    expectEq('active keys after revoking one', after, before - 1);
  });

  await step('a move started in the console reaches switched', async () => {
    await page.click('button[data-action=move]');
    await confirm({ to: 'schema' });
    await page.waitForFunction(() => location.hash === '#/moves');
    await page.waitForSelector(`tr:has(a:text-is("${tenant}")) td[data-phase]`);
    await page.waitForSelector(`tr:has(a:text-is("${tenant}")) td[data-phase=switched]`, { timeout: moveTimeout });
    const t = (await api('GET', `/v1/tenants/${tenant}`, admin)).body;
    expectEq('mode after the move', t.placements[0].mode, 'schema');
    await shot('moves');
  });

  await step('a tenant is created and backed up from the console', async () => {
    await page.click('nav a[href="#/tenants"]');
    await page.click('button[data-action=create-tenant]');
    const d = page.locator('dialog[open]');
    await d.locator('[name=slug]').fill('made-in-console');
    await d.locator('[name=tier]').fill('pro');
    await d.locator('button[value=ok]').click();
    await page.waitForSelector('[data-slug="made-in-console"]');
    await page.waitForSelector('td:has(.mode.schema)');
    await page.click('button[data-action=backup]');
    await page.waitForSelector('.toast:text("Backed up made-in-console")');
    const kept = (await api('GET', '/v1/tenants/made-in-console/backups', admin)).body;
    expectEq('backups kept after "Take backup"', kept.length, 1);
  });

  await step('the migrations page shows drift and failures, their errors as text', async () => {
    await page.click('nav a[href="#/migrations"]');
    await page.waitForSelector('.stat .label:text("Targets")');
    // A failed migration's error holds what its author wrote: markup stays text.
    const xss = process.env.XSS_SERVICE;
    if (xss) {
      await page.waitForSelector(`section:has(h2:text-is("${xss}")) .badge.bad:text("failed")`);
      const text = await page.textContent(`section:has(h2:text-is("${xss}"))`);
      if (!text.includes('<img')) throw new Error(`the failure's text was not shown as text: ${text.slice(0, 300)}`);
      expectEq('images the page made from an error message', await page.locator('section img').count(), 0);
      expectEq('script run from an error message', await page.evaluate(() => window.__bulkhead_xss), undefined);
    }
    await shot('migrations');
  });

  await step('verify runs from the isolation page', async () => {
    await page.click('nav a[href="#/isolation"]');
    await page.waitForSelector('[data-proof="verify:"] button[data-action=run-verify]');
    await page.click('[data-proof="verify:"] button[data-action=run-verify]');
    await page.waitForSelector('[data-proof="verify:"] [data-outcome=passed]', { timeout: 60000 });
    await shot('isolation');
  });

  await step('signing out ends the session', async () => {
    await page.click('button:text("Sign out")');
    await page.waitForSelector('form.signin-form');
    const status = await page.evaluate(() => fetch('/v1/fleet').then((r) => r.status));
    expectEq('GET /v1/fleet after signing out', status, 401);
  });

  await step('the read-only token sees but cannot act', async () => {
    await signIn(readOnly);
    await page.waitForSelector('[data-role=read_only]');
    await page.goto(`${url}/#/tenants/${tenant}`);
    await page.waitForSelector(`[data-slug="${tenant}"]`);
    const disabled = await page.locator('button[data-action=suspend]').isDisabled();
    expectEq('suspend button disabled', disabled, true);
    const who = await page.evaluate(() => fetch('/console/session').then((r) => r.json()));
    const status = await page.evaluate(([t, csrf]) => fetch(`/v1/tenants/${t}/suspend`, { method: 'POST', headers: { 'X-CSRF-Token': csrf } }).then((r) => r.status), [tenant, who.csrf]);
    expectEq('POST suspend as read-only (with its CSRF token)', status, 403);
    expectEq('POST suspend with the read-only bearer token', (await api('POST', `/v1/tenants/${tenant}/suspend`, readOnly)).status, 403);
    expectEq('backup download with the read-only bearer token', (await api('GET', `/v1/tenants/${tenant}/backup`, readOnly)).status, 403);
    expectEq('state after the refused actions', (await api('GET', `/v1/tenants/${tenant}`, admin)).body.state, 'active');
    await shot('read-only');
  });
  console.log('console: every step passed');
} catch (e) {
  console.error(`FAIL ${stepName}: ${e.message}`);
  try {
    await shot('failure');
    console.error(`page at failure (${page.url()}):\n${(await page.innerText('body')).slice(0, 3000)}`);
  } catch (_) { /* the page is gone */ }
  process.exitCode = 1;
} finally {
  await browser.close();
}

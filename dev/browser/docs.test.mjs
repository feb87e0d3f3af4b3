// Browser test of `/docs`, run by dev/browser-test against a real server: headless Debian chromium
// driven by playwright-core, as a new user would: open the page, authorise with a key, "Try it
// out" on a few operations, and check (from the network, not from the page) that each request went
// to the operation's own path with its own method and was answered 2xx. Then the surface picker:
// a dialect's document sends its requests under that dialect's mount.
//   CABINET_URL, CABINET_KEY        the server and its bootstrap admin key
//   CABINET_BROWSER_MODULES         the node_modules holding playwright-core

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const url = process.env.CABINET_URL;
const key = process.env.CABINET_KEY;
const artifacts = process.env.CABINET_ARTIFACTS_DIR || 'target/browser-artifacts';
assert.ok(url && key, 'CABINET_URL and CABINET_KEY are set by dev/browser-test');
const require = createRequire(join(process.env.CABINET_BROWSER_MODULES || 'node_modules', 'x.js'));
const { chromium } = require('playwright-core');

const TIMEOUT = 15_000;
let browser;
let context;
let page;
let profile;
const problems = [];
/** Every API request the page sent, as `METHOD /path?query → status`. */
const sent = [];

before(async () => {
  profile = mkdtempSync(join(tmpdir(), 'cabinet-chromium-docs-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  browser = context.browser();
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('response', (response) => {
    const request = response.request();
    const { pathname, search } = new URL(request.url());
    sent.push(`${request.method()} ${pathname}${search} → ${response.status()}`);
  });
});

after(async () => {
  await context?.close();
  await browser?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** Authorises the loaded document's one security scheme with the bootstrap key. */
async function authorise() {
  await page.locator('.auth-wrapper .authorize').click();
  const dialog = page.locator('.dialog-ux .modal-ux');
  await dialog.locator('input').first().fill(key);
  await dialog.locator('.auth-btn-wrapper button.authorize').click();
  await dialog.locator('.auth-btn-wrapper button.btn-done').click();
  await dialog.waitFor({ state: 'detached' });
}

/**
 * Opens the operation with this DOM id, presses "Try it out" (with `body` in its request body
 * editor, if given), then "Execute", and returns the request the browser sent and its response.
 */
async function tryItOut(operation, { method, path, body }) {
  const block = page.locator(`#${operation}`);
  await block.scrollIntoViewIfNeeded();
  await block.locator('.opblock-summary').first().click();
  await block.locator('button.try-out__btn').click();
  if (body !== undefined) {
    await block.locator('textarea.body-param__text').fill(body);
  }
  const [response] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === path && r.request().method() === method),
    block.locator('button.execute').click(),
  ]);
  const request = response.request();
  const shown = await block.locator('.responses-wrapper .live-responses-table .response .response-col_status').first().textContent();
  await page.screenshot({ path: join(artifacts, `docs-${operation}.png`), fullPage: false });
  return { request, response, shown: shown.trim() };
}

/** Asserts a "Try it out" went where the document says, with the key, and succeeded. */
function assertSent({ request, response, shown }, method, path) {
  const target = new URL(request.url());
  assert.equal(target.origin, new URL(url).origin, `${method} ${path}: sent to another origin`);
  assert.equal(`${request.method()} ${target.pathname}`, `${method} ${path}`, sent.join('\n'));
  assert.match(request.headers().authorization || '', new RegExp(`^Bearer ${key}$`), `${method} ${path}: no key`);
  assert.ok(response.status() >= 200 && response.status() < 300, `${method} ${path}: ${response.status()}\n${sent.join('\n')}`);
  assert.equal(shown, String(response.status()), `${method} ${path}: the page shows ${shown}`);
}

describe('/docs', () => {
  it('offers a document per surface, the native API first', async () => {
    const response = await page.goto(`${url}/docs/`);
    assert.equal(response.status(), 200);
    await page.locator('.opblock').first().waitFor();
    const options = await page.locator('.topbar select option').allTextContents();
    assert.deepEqual(options, [
      'Cabinet',
      'Cabinet: the Mavera dialect',
      'Cabinet: the MAVI dialect',
      'Cabinet: the CMS dialect',
      'Cabinet: the Serenities dialect',
    ]);
    assert.equal(await page.locator('.topbar select').inputValue(), '/openapi.json');
  });

  it('"Try it out" sends GET /v1/quota, POST /v1/folders and GET /v1/files to their own paths, and each succeeds', async () => {
    await authorise();
    assertSent(await tryItOut('operations-workspace-get_quota', { method: 'GET', path: '/v1/quota' }), 'GET', '/v1/quota');
    const folder = await tryItOut('operations-folders-create_folder', {
      method: 'POST',
      path: '/v1/folders',
      body: JSON.stringify({ name: 'Made from the docs' }),
    });
    assertSent(folder, 'POST', '/v1/folders');
    assert.equal(folder.response.status(), 201);
    assert.equal((await folder.response.json()).name, 'Made from the docs');
    const files = await tryItOut('operations-files-list_files', { method: 'GET', path: '/v1/files' });
    assertSent(files, 'GET', '/v1/files');
    // Nothing the user did not fill is sent: no other surface's parameter (the CMS's
    // `organization_id`) rides along.
    assert.equal(new URL(files.request.url()).search, '', files.request.url());
  });

  it('a dialect picked in the picker sends its requests under its mount', async () => {
    await page.locator('.topbar select').selectOption('/compat/serenities/openapi.json');
    await page.locator('#operations-compat-serenities-serenities_get_quota').waitFor();
    await authorise();
    const quota = await tryItOut('operations-compat-serenities-serenities_get_quota', {
      method: 'POST',
      path: '/compat/serenities/api/v1/files/getQuota',
      body: '{}',
    });
    assertSent(quota, 'POST', '/compat/serenities/api/v1/files/getQuota');
  });

  it('raised no script error', () => {
    assert.deepEqual(problems, []);
  });
});

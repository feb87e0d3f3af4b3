// Browser test of CORS, run by dev/browser-test against a second server started with
// `--cors-origins http://127.0.0.1:$CABINET_CORS_PAGE_PORT`: headless Debian chromium (through
// playwright-core) loads a page from that allowed origin and from a refused one (another loopback
// port), and each page `fetch`es an API route with a key, a signed download URL and a public URL.
// From the allowed origin all three are read; from the refused one each fails as the browser's
// CORS check fails (a TypeError, and chromium's "blocked by CORS policy" in the console).
//   CABINET_CORS_URL, CABINET_CORS_KEY  the second server and its bootstrap admin key
//   CABINET_CORS_PAGE_PORT              the loopback port its --cors-origins names
//   CABINET_BROWSER_MODULES             the node_modules holding playwright-core

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const api = process.env.CABINET_CORS_URL;
const key = process.env.CABINET_CORS_KEY;
const allowedPort = Number(process.env.CABINET_CORS_PAGE_PORT);
assert.ok(api && key && allowedPort, 'CABINET_CORS_URL, CABINET_CORS_KEY and CABINET_CORS_PAGE_PORT are set by dev/browser-test');
const require = createRequire(join(process.env.CABINET_BROWSER_MODULES || 'node_modules', 'x.js'));
const { chromium } = require('playwright-core');

const TIMEOUT = 15_000;
const CONTENT = 'read across origins\n';
let context;
let profile;
const pageServers = [];
let origins;
let targets;

/** A page server on `port` (0: any free one): an empty page at `/`; resolves to its origin. */
async function pageServer(port) {
  const server = createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'text/html' });
    response.end('<!doctype html><title>another origin</title>');
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  pageServers.push(server);
  return `http://127.0.0.1:${server.address().port}`;
}

async function call(method, path, body) {
  const response = await fetch(`${api}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  const json = await response.json();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

before(async () => {
  origins = { allowed: await pageServer(allowedPort), refused: await pageServer(0) };
  const file = await call('POST', '/v1/files', { name: 'cors.txt', content_base64: Buffer.from(CONTENT).toString('base64') });
  const link = await call('GET', `/v1/files/${file.id}/download-url`);
  await call('PUT', '/v1/access-rules', { read: 'public' });
  targets = {
    id: file.id,
    api: `${api}/v1/files/${file.id}`,
    signed: link.url,
    public: `${api}/public/v1/files/${file.workspace_id}/${file.id}`,
  };
  profile = mkdtempSync(join(tmpdir(), 'cabinet-chromium-cors-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
  });
});

after(async () => {
  await context?.close();
  for (const server of pageServers) server.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** Loads a page from `origin` and fetches the three URLs from it: what each gave, and the console. */
async function fetchFrom(origin) {
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const consoleLines = [];
  page.on('console', (message) => consoleLines.push(message.text()));
  await page.goto(`${origin}/`);
  const results = await page.evaluate(async ({ targets, key }) => {
    async function read(url, init) {
      try {
        const response = await fetch(url, init);
        return { status: response.status, text: await response.text() };
      } catch (error) {
        return { error: `${error.name}: ${error.message}` };
      }
    }
    return {
      api: await read(targets.api, { headers: { authorization: `Bearer ${key}` } }),
      signed: await read(targets.signed),
      public: await read(targets.public),
    };
  }, { targets, key });
  await page.close();
  return { results, consoleLines };
}

describe('CORS from a page on another origin', () => {
  it('an allowed origin reads the API, a signed URL and a public URL', async () => {
    const { results } = await fetchFrom(origins.allowed);
    assert.equal(results.api.status, 200, JSON.stringify(results.api));
    assert.equal(JSON.parse(results.api.text).id, targets.id);
    assert.deepEqual(results.signed, { status: 200, text: CONTENT });
    assert.deepEqual(results.public, { status: 200, text: CONTENT });
  });

  it('a refused origin fails with a CORS error on each', async () => {
    const { results, consoleLines } = await fetchFrom(origins.refused);
    for (const which of ['api', 'signed', 'public']) {
      assert.match(results[which].error ?? '', /^TypeError: Failed to fetch/, `${which}: ${JSON.stringify(results[which])}`);
    }
    const blocked = consoleLines.filter((line) => line.includes('blocked by CORS policy'));
    assert.ok(blocked.length >= 3, `chromium says why:\n${consoleLines.join('\n')}`);
  });
});

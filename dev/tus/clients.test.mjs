// tus-js-client in Node and Uppy (@uppy/core + @uppy/tus, from the `uppy` bundle) in headless
// Debian chromium (through playwright-core), against the real binary, run by dev/test-tus. Each
// upload reports progress and is cut mid-request: tus-js-client's connections by a relay that
// closes them after some bytes, Uppy's by playwright aborting one of its PATCH requests; each
// client resumes by itself (HEAD, then PATCH from the offset) and the file appears in /v1/files
// with the bytes' sha256.
//   CABINET_URL, CABINET_KEY   the server and its bootstrap admin key
//   CABINET_RELAY_PORT         the port the server's --public-url names: the relay listens there
//   CABINET_TUS_MODULES        the node_modules holding tus-js-client, uppy and playwright-core

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, connect } from 'node:net';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const api = process.env.CABINET_URL;
const key = process.env.CABINET_KEY;
const relayPort = Number(process.env.CABINET_RELAY_PORT);
assert.ok(api && key && relayPort, 'CABINET_URL, CABINET_KEY and CABINET_RELAY_PORT are set by dev/test-tus');
const modules = process.env.CABINET_TUS_MODULES || 'node_modules';
const require = createRequire(join(modules, 'x.js'));
const tus = require('tus-js-client');
const { chromium } = require('playwright-core');

const MiB = 1024 * 1024;
const relayUrl = `http://127.0.0.1:${relayPort}`;

/** Deterministic bytes that differ at every position that matters. */
function bytesOf(size, seed) {
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed + (i >> 14)) & 0xff;
  return bytes;
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** Forwards to the server; the next `cuts` PATCH connections are closed after `cutAfter` bytes. */
function relay() {
  const [host, port] = new URL(api).host.split(':');
  const state = { cuts: 0, cutAfter: 0, cut: 0 };
  const server = createTcpServer((client) => {
    const upstream = connect(Number(port), host);
    let forwarded = 0;
    let limit = null;
    client.on('data', (chunk) => {
      if (limit === null && chunk.subarray(0, 8).toString().startsWith('PATCH')) {
        limit = state.cuts > 0 ? (state.cuts--, state.cutAfter) : -1;
      }
      if (limit !== null && limit >= 0 && forwarded + chunk.length > limit) {
        upstream.write(chunk.subarray(0, Math.max(0, limit - forwarded)));
        state.cut++;
        client.destroy();
        upstream.destroy();
        return;
      }
      forwarded += chunk.length;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => client.write(chunk));
    for (const [a, b] of [[client, upstream], [upstream, client]]) {
      a.on('error', () => b.destroy());
      a.on('close', () => b.destroy());
    }
  });
  return new Promise((resolve) => server.listen(relayPort, '127.0.0.1', () => resolve({ server, state })));
}

async function fileNamed(name) {
  const response = await fetch(`${api}/v1/files?limit=100`, { headers: { authorization: `Bearer ${key}` } });
  const list = await response.json();
  assert.equal(response.status, 200, JSON.stringify(list));
  return list.data.find((file) => file.name === name);
}

let proxy;
before(async () => {
  proxy = await relay();
});
after(() => proxy?.server.close());

describe('tus-js-client in Node', () => {
  it('uploads with progress, resumes after connections are cut, and the file is in /v1/files', async () => {
    const bytes = bytesOf(12 * MiB + 5, 1);
    proxy.state.cuts = 2;
    proxy.state.cutAfter = 1_500_000;
    const progress = [];
    const url = await new Promise((resolve, reject) => {
      const upload = new tus.Upload(bytes, {
        endpoint: `${relayUrl}/tus/v1/`,
        headers: { authorization: `Bearer ${key}` },
        chunkSize: 4 * MiB,
        retryDelays: [100, 300, 500, 1000, 2000, 3000],
        metadata: { filename: 'tus-js-client.bin', filetype: 'application/octet-stream' },
        onProgress: (sent, total) => progress.push([sent, total]),
        onError: reject,
        onSuccess: () => resolve(upload.url),
      });
      upload.start();
    });
    // A retry that meets the server still finishing the cut request (423, retried) may use up a
    // planned cut without reaching its byte count: at least one cut is certain.
    assert.ok(proxy.state.cut >= 1, `connections were cut (${proxy.state.cut})`);
    assert.ok(url.startsWith(`${relayUrl}/tus/v1/upl_`), url);
    assert.ok(progress.length > 3, `progress was reported (${progress.length} events)`);
    assert.deepEqual(progress.at(-1), [bytes.length, bytes.length]);
    const file = await fileNamed('tus-js-client.bin');
    assert.ok(file, 'the file is listed');
    assert.equal(file.size, bytes.length);
    assert.equal(file.sha256, sha256(bytes));
  });
});

describe('Uppy with @uppy/tus in headless chromium', () => {
  let context;
  let profile;
  let page;
  let pageServer;

  before(async () => {
    const bundle = readFileSync(join(modules, 'uppy/dist/uppy.min.mjs'));
    pageServer = createHttpServer((request, response) => {
      if (request.url === '/uppy.min.mjs') {
        response.writeHead(200, { 'content-type': 'text/javascript' });
        response.end(bundle);
        return;
      }
      response.writeHead(200, { 'content-type': 'text/html' });
      response.end('<!doctype html><title>uppy</title><script type="module">import { Uppy, Tus } from "/uppy.min.mjs"; window.Uppy = Uppy; window.Tus = Tus; window.loaded = true;</script>');
    });
    await new Promise((resolve) => pageServer.listen(0, '127.0.0.1', resolve));
    profile = mkdtempSync(join(tmpdir(), 'cabinet-chromium-tus-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
    });
    page = await context.newPage();
  });

  after(async () => {
    await context?.close();
    pageServer?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('uploads a file with progress, resumes after a PATCH is cut, and the file is in /v1/files', async () => {
    // The second PATCH is cut as a network failure would cut it.
    let patches = 0;
    let aborted = 0;
    await page.route('**/tus/v1/upl_*', async (route) => {
      if (route.request().method() === 'PATCH' && ++patches === 2) {
        aborted++;
        await route.abort('connectionreset');
        return;
      }
      await route.continue();
    });
    await page.goto(`http://127.0.0.1:${pageServer.address().port}/`);
    await page.waitForFunction(() => window.loaded === true);
    const size = 3 * MiB + 123;
    const result = await page.evaluate(
      async ({ endpoint, key, size }) => {
        const bytes = new Uint8Array(size);
        for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 2 + (i >> 14)) & 0xff;
        const uppy = new window.Uppy({ autoProceed: false });
        uppy.use(window.Tus, {
          endpoint,
          headers: { authorization: `Bearer ${key}` },
          chunkSize: 1024 * 1024,
          retryDelays: [0, 300, 1000, 2000],
        });
        const progress = [];
        uppy.on('upload-progress', (file, p) => progress.push([p.bytesUploaded, p.bytesTotal]));
        uppy.addFile({ name: 'uppy.bin', type: 'application/octet-stream', data: new Blob([bytes]) });
        const outcome = await uppy.upload();
        return {
          successful: outcome.successful.length,
          failed: outcome.failed.map((file) => String(file.error)),
          url: outcome.successful[0]?.response?.uploadURL,
          progress,
        };
      },
      { endpoint: `${api}/tus/v1/`, key, size },
    );
    assert.deepEqual(result.failed, []);
    assert.equal(result.successful, 1);
    assert.equal(aborted, 1, 'one PATCH was cut');
    assert.ok(result.progress.length > 2, `progress was reported (${result.progress.length} events)`);
    assert.deepEqual(result.progress.at(-1), [size, size]);
    const file = await fileNamed('uppy.bin');
    assert.ok(file, 'the file is listed');
    assert.equal(file.size, size);
    assert.equal(file.sha256, sha256(bytesOf(size, 2)));
  });
});

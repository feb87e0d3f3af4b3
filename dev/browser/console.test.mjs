// Browser tests of the web console, run by dev/browser-test against a real server: headless
// Debian chromium driven by playwright-core. The steps share one signed-in page and build on
// each other, like a user's session: sign in, make a folder, drop files in, find, favorite, tag,
// link, trash and restore. Screenshots of each stage go to $CABINET_ARTIFACTS_DIR.
//   CABINET_URL, CABINET_KEY        the server and its bootstrap admin key
//   CABINET_BROWSER_MODULES         the node_modules holding playwright-core
//   CABINET_STORAGE_ORIGIN          the S3 bucket's origin when the server stores blobs there

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';

const url = process.env.CABINET_URL;
const key = process.env.CABINET_KEY;
const artifacts = process.env.CABINET_ARTIFACTS_DIR || 'target/browser-artifacts';
const storageOrigin = process.env.CABINET_STORAGE_ORIGIN || '';
const smallKey = process.env.CABINET_SMALL_KEY;
assert.ok(url && key, 'CABINET_URL and CABINET_KEY are set by dev/browser-test');
const require = createRequire(join(process.env.CABINET_BROWSER_MODULES || 'node_modules', 'x.js'));
const { chromium } = require('playwright-core');

const TIMEOUT = 10_000;
let browser;
let context;
let page;
let profile;
const problems = [];

/** A call of the native API with the bootstrap key, outside the page (setting up what it shows). */
async function call(method, path, body) {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${key}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${JSON.stringify(data)}`);
  return data;
}

async function shot(name, { fullPage = true } = {}) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage });
}

/** The grid tile of the item with this name. */
const tile = (name) => page.locator('#grid .item').filter({ has: page.locator('.name', { hasText: new RegExp(`^${name.replace('.', '\\.')}$`) }) });

/** A real 48×32 PNG (a gradient), so the server sniffs image/png and the grid shows it. */
function png(width = 48, height = 32) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes) => {
    let c = 0xffffffff;
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'ascii');
    data.copy(out, 8);
    out.writeUInt32BE(crc(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows = Buffer.alloc(height * (1 + width * 3));
  for (let y = 0; y < height; y += 1) {
    const row = y * (1 + width * 3);
    for (let x = 0; x < width; x += 1) {
      rows.set([255 - y * 6, 80 + x * 3, 40 + x * 4], row + 1 + x * 3);
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(rows)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

before(async () => {
  profile = mkdtempSync(join(tmpdir(), 'cabinet-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync',
      // s3s-fs sends no CORS headers; the page's CSP still decides what it may reach.
      ...(storageOrigin ? ['--disable-web-security'] : []),
    ],
    viewport: { width: 1280, height: 800 },
  });
  browser = context.browser();
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: url });
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // A policy violation or a script error is a bug, whatever the step (the 507 is a refused upload).
    if (message.type() === 'error' && !/Failed to load resource: the server responded with a status of (4\d\d|507)/.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });
});

after(async () => {
  await context?.close();
  await browser?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

describe('the web console', () => {
  it('is served from the binary under a policy that admits only its own origin', async () => {
    const response = await page.goto(`${url}/console`);
    assert.equal(response.status(), 200);
    const csp = response.headers()['content-security-policy'];
    assert.match(csp, /script-src 'self';/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    if (storageOrigin) {
      // With S3 storage, the bucket's origin (uploads go there) and nothing else.
      assert.ok(csp.includes(`connect-src 'self' ${storageOrigin};`), csp);
      assert.ok(csp.includes(`img-src 'self' ${storageOrigin};`), csp);
      assert.doesNotMatch(csp.replaceAll(storageOrigin, ''), /https?:/);
    } else {
      assert.doesNotMatch(csp, /https?:/);
    }
    await page.locator('#signin-key').waitFor();
    await shot('01-sign-in');
  });

  it('refuses a wrong key and signs in with the right one', async () => {
    await page.fill('#signin-key', 'cab_not_a_real_key');
    await page.press('#signin-key', 'Enter');
    await page.locator('#signin-error', { hasText: 'refused' }).waitFor();
    await page.fill('#signin-key', key);
    await page.click('button:has-text("Sign in")');
    await page.locator('#app').waitFor();
    await page.locator('#view-title', { hasText: 'All files' }).waitFor();
  });

  it('creates a folder, goes into it, and back by the breadcrumbs', async () => {
    await page.click('#new-folder');
    await page.fill('#new-folder-name', 'Holiday');
    await page.press('#new-folder-name', 'Enter');
    await tile('Holiday').waitFor();
    await tile('Holiday').locator('a.open').click();
    await page.locator('#crumbs [aria-current="page"]', { hasText: 'Holiday' }).waitFor();
    await page.locator('#view-title', { hasText: 'Holiday' }).waitFor();
    await page.click('#crumbs a:has-text("All files")');
    await page.locator('#view-title', { hasText: 'All files' }).waitFor();
    await tile('Holiday').waitFor();
    // And by keyboard: focus the folder's link and press Enter.
    await tile('Holiday').locator('a.open').focus();
    await page.keyboard.press('Enter');
    await page.locator('#crumbs [aria-current="page"]', { hasText: 'Holiday' }).waitFor();
  });

  it('uploads files dropped on the grid, with progress reaching 100%', async () => {
    const image = png().toString('base64');
    await page.evaluate(async (imageBase64) => {
      const bytes = Uint8Array.from(atob(imageBase64), (c) => c.charCodeAt(0));
      const big = new Uint8Array(3 * 1024 * 1024);
      for (let i = 0; i < big.length; i += 1) big[i] = (i * 31) & 0xff;
      const data = new DataTransfer();
      data.items.add(new File([bytes], 'sunset.png', { type: 'image/png' }));
      data.items.add(new File(['Packing list: towel, sunscreen.\n'], 'notes.txt', { type: 'text/plain' }));
      data.items.add(new File([big], 'raw-footage.bin', { type: 'application/octet-stream' }));
      const zone = document.querySelector('#dropzone');
      for (const type of ['dragenter', 'dragover', 'drop']) {
        zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: data }));
      }
    }, image);
    const rows = page.locator('#uploads li');
    await assert.doesNotReject(rows.nth(2).waitFor());
    for (const name of ['sunset.png', 'notes.txt', 'raw-footage.bin']) {
      const row = rows.filter({ hasText: name });
      await row.locator('.up-percent', { hasText: '100%' }).waitFor();
      assert.equal(await row.locator('progress').evaluate((p) => p.value), 100);
      await tile(name).waitFor();
    }
    await page.locator('#status', { hasText: 'Uploaded 3 file(s).' }).waitFor();
  });

  it('shows the server\'s thumbnail of an uploaded image in the grid', async () => {
    const image = tile('sunset.png').locator('.thumb img');
    await image.waitFor();
    const src = await image.getAttribute('src');
    // The file's thumbnail_url: a signed thumbnail URL that needs no key.
    assert.ok(src.startsWith(`${url}/storage/v1/thumbnails/`), src);
    await page.waitForFunction(() => document.querySelector('#grid .thumb img')?.complete);
    const drawn = await image.evaluate((img) => ({ width: img.naturalWidth, height: img.naturalHeight }));
    assert.ok(drawn.width > 0, 'the thumbnail did not load');
    // 48×32 is smaller than any thumbnail size: never enlarged.
    assert.deepEqual(drawn, { width: 48, height: 32 });
    const response = await page.request.get(src);
    assert.equal(response.status(), 200);
    assert.equal(response.headers()['content-type'], 'image/jpeg');
    // Files that are not images keep their icon.
    assert.equal(await tile('notes.txt').locator('.thumb img').count(), 0);
    await shot('02-folder-with-uploads');
  });

  it('shows the usage in the quota bar', async () => {
    await page.waitForFunction(() => !/^(…|0 B)/.test(document.querySelector('#quota-text').textContent));
    const text = await page.textContent('#quota-text');
    // Binary units, as the `cabinet` client and the server's flags write them.
    assert.match(text, /^3\.0 MiB used$/, text); // 3 MiB and a little
    assert.match(await page.getAttribute('#quota', 'aria-valuetext'), /MiB/);
  });

  it('finds a file as the user types', async () => {
    await page.click('#search');
    await page.keyboard.type('suns', { delay: 40 });
    await page.locator('#view-title', { hasText: 'Search “suns”: 1 result' }).waitFor();
    await tile('sunset.png').waitFor();
    assert.equal(await page.locator('#grid .item').count(), 1);
    assert.match(page.url(), /#\/search\/suns$/);
    await shot('03-search');
  });

  it('marks a favorite and lists it under Favorites', async () => {
    const star = tile('sunset.png').locator('.star');
    await star.click();
    await page.locator('#status', { hasText: 'Added “sunset.png” to favorites.' }).waitFor();
    await tile('sunset.png').locator('.star[aria-pressed="true"]').waitFor();
    await page.click('.sidebar a:has-text("Favorites")');
    await page.locator('#view-title', { hasText: 'Favorites' }).waitFor();
    await tile('sunset.png').waitFor();
    assert.equal(await page.inputValue('#search'), '');
  });

  it('edits tags and metadata, and lists the file by tag', async () => {
    await tile('sunset.png').locator('button.open').click();
    await page.locator('#details-title', { hasText: 'sunset.png' }).waitFor();
    await page.fill('#d-tags', 'beach, Summer 2024');
    await page.fill('#d-alt', 'An orange sky over the sea');
    await page.fill('#d-metadata', '{"camera": "phone"}');
    await page.click('#details-form button[type=submit]');
    await page.locator('#status', { hasText: 'Saved “sunset.png”.' }).waitFor();
    await page.locator('#tags a', { hasText: 'beach' }).waitFor();
    const saved = await page.evaluate(async ({ key }) => {
      const found = await fetch('/v1/files?q=sunset', { headers: { Authorization: `Bearer ${key}` } }).then((r) => r.json());
      return found.data[0];
    }, { key });
    // Tags keep the spelling they were given (matching ignores case).
    assert.deepEqual(saved.tags, ['beach', 'Summer 2024']);
    assert.equal(saved.alt_text, 'An orange sky over the sea');
    assert.deepEqual(saved.metadata, { camera: 'phone' });
    await page.click('#tags a:has-text("beach")');
    await page.locator('#view-title', { hasText: 'Tagged “beach”' }).waitFor();
    await tile('sunset.png').waitFor();
  });

  it('copies a signed link that works without a key', async () => {
    await tile('sunset.png').locator('button.open').click();
    await page.locator('#details-title', { hasText: 'sunset.png' }).waitFor();
    await page.click('#d-link');
    await page.locator('#d-link-value').waitFor();
    const link = await page.inputValue('#d-link-value');
    assert.ok(link.startsWith(storageOrigin ? `${storageOrigin}/` : `${url}/storage/v1/files/`), link);
    await page.locator('#status', { hasText: /signed link/ }).waitFor();
    const clipboard = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(clipboard, link);
    const response = await page.request.get(link);
    assert.equal(response.status(), 200);
    assert.deepEqual(await response.body(), png());
    await shot('04-details');
  });

  it('renames with F2 from the grid, while a change made elsewhere refreshes the view', async () => {
    await page.click('.sidebar a:has-text("All files")');
    await tile('Holiday').locator('a.open').click();
    await tile('notes.txt').waitFor();
    const holiday = await page.evaluate(() => decodeURIComponent(location.hash.replace(/^#\/folder\//, '')));
    await tile('notes.txt').locator('button.open').focus();
    // The refresh a change elsewhere brings starts while the tile has the focus, and its list is
    // held until F2 has moved the focus to the name field: the refresh must leave it there.
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    const listing = (address) => address.pathname === '/v1/files' && address.searchParams.has('folder_id');
    await page.route(listing, async (route) => { await held; await route.continue(); });
    const refreshing = page.waitForRequest((request) => listing(new URL(request.url())));
    await call('POST', '/v1/files', {
      name: 'arrived-while-renaming.txt', content_base64: Buffer.from('live').toString('base64'), folder_id: holiday,
    });
    await refreshing;
    await page.keyboard.press('F2');
    await page.locator('#d-name:focus').waitFor();
    release();
    await tile('arrived-while-renaming.txt').waitFor();
    await page.unroute(listing);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'd-name');
    await page.keyboard.type('packing-list.txt');
    await page.keyboard.press('Enter');
    await tile('packing-list.txt').waitFor();
  });

  it('moves a file to the trash with Delete and restores it from the trash', async () => {
    await page.keyboard.press('Escape');
    await tile('sunset.png').locator('button.open').focus();
    await page.keyboard.press('Delete');
    await page.locator('#status', { hasText: 'Moved “sunset.png” to the trash.' }).waitFor();
    await tile('sunset.png').waitFor({ state: 'detached' });
    await page.click('.sidebar a:has-text("Trash")');
    await page.locator('#view-title', { hasText: 'Trash' }).waitFor();
    await tile('sunset.png').waitFor();
    await shot('05-trash');
    await tile('sunset.png').locator('button.restore').click();
    await page.locator('#status', { hasText: 'Restored “sunset.png”.' }).waitFor();
    await tile('sunset.png').waitFor({ state: 'detached' });
    await page.click('.sidebar a:has-text("All files")');
    await tile('Holiday').locator('a.open').click();
    await tile('sunset.png').waitFor();
    assert.equal(await tile('sunset.png').locator('.star').getAttribute('aria-pressed'), 'true');
  });

  it('renames, moves and trashes a folder from its details', async () => {
    await page.click('.sidebar a:has-text("All files")');
    await page.click('#new-folder');
    await page.fill('#new-folder-name', 'Archive');
    await page.press('#new-folder-name', 'Enter');
    await tile('Archive').locator('button.more').click();
    await page.locator('#details-title', { hasText: 'Archive' }).waitFor();
    await page.fill('#d-name', 'Archive 2025');
    await page.selectOption('#d-move', { label: '/Holiday' });
    await page.click('#details-form button[type=submit]');
    await page.locator('#status', { hasText: 'Saved “Archive 2025”.' }).waitFor();
    await tile('Archive 2025').waitFor({ state: 'detached' });
    await tile('Holiday').locator('a.open').click();
    await tile('Archive 2025').locator('button.more').click();
    await page.click('#d-delete');
    await page.locator('#status', { hasText: 'Moved “Archive 2025” to the trash.' }).waitFor();
    await tile('Archive 2025').waitFor({ state: 'detached' });
  });

  it('shows a file uploaded through the API, and drops one trashed there, without a reload', async () => {
    const folder = await call('POST', '/v1/folders', { name: 'Live' });
    const before = await page.evaluate(() => location.hash);
    const title = await page.textContent('#view-title');
    await page.evaluate((id) => { location.hash = `#/folder/${id}`; }, folder.id);
    await page.locator('#view-title', { hasText: 'Live' }).waitFor();
    await page.locator('#empty').waitFor();
    // A reload would make a new window object, without this mark.
    await page.evaluate(() => { window.cabinetNotReloaded = true; });
    const name = 'arrived-elsewhere.txt';
    const file = await call('POST', '/v1/files', {
      name, content_base64: Buffer.from('live').toString('base64'), folder_id: folder.id,
    });
    await tile(name).waitFor({ timeout: 5_000 });
    await shot('07b-live-arrived');
    const trashed = await fetch(`${url}/v1/files/${file.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${key}` } });
    assert.ok(trashed.ok, `DELETE: ${trashed.status}`);
    await tile(name).waitFor({ state: 'detached', timeout: 5_000 });
    await page.locator('#empty').waitFor({ timeout: 5_000 });
    assert.equal(await page.evaluate(() => window.cabinetNotReloaded), true, 'the page was not reloaded');
    // Back where the steps before left it.
    await page.evaluate((hash) => { location.hash = hash; }, before);
    await page.locator('#view-title', { hasText: title }).waitFor();
  });

  it('stays usable at 375 px wide', async () => {
    await page.setViewportSize({ width: 375, height: 800 });
    await tile('sunset.png').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
    assert.ok(await page.locator('#search').isVisible());
    assert.ok(await page.locator('label[for=file-input]').isVisible());
    await shot('06-narrow');
    await tile('sunset.png').locator('button.open').click();
    await page.locator('#details-title', { hasText: 'sunset.png' }).waitFor();
    await shot('07-narrow-details', { fullPage: false }); // the panel covers the screen
    await page.keyboard.press('Escape');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('leads / to the console', async () => {
    const response = await page.request.get(`${url}/`, { maxRedirects: 0 });
    assert.equal(response.status(), 303);
    assert.equal(response.headers().location, '/console');
    const other = await context.newPage();
    await other.goto(`${url}/`);
    assert.equal(new URL(other.url()).pathname, '/console');
    await other.close();
  });

  it('pages through 1,000 files: scrolling shows more, and so does “Show more” in search', async () => {
    const folder = await call('POST', '/v1/folders', { name: 'Many' });
    const names = Array.from({ length: 1000 }, (_, n) => `item-${String(n).padStart(4, '0')}.txt`);
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < names.length) {
        const name = names[next++];
        await call('POST', '/v1/files', { name, content_base64: Buffer.from(name).toString('base64'), folder_id: folder.id });
      }
    }));
    await page.evaluate((id) => { location.hash = `#/folder/${id}`; }, folder.id);
    await page.locator('#view-title', { hasText: 'Many' }).waitFor();
    const tiles = page.locator('#grid .item');
    await page.waitForFunction(() => document.querySelectorAll('#grid .item').length >= 100);
    assert.equal(await tiles.count(), 100);
    assert.equal(await page.textContent('#shown'), 'Showing 100; there are more.');
    await shot('08-paged-folder');
    // Scrolling to the end loads the next page by itself, until there is no more.
    for (let shown = 100; shown < 1000;) {
      await page.locator('#more').scrollIntoViewIfNeeded();
      await page.waitForFunction((before) => document.querySelectorAll('#grid .item').length > before, shown);
      shown = await tiles.count();
    }
    await page.locator('#more').waitFor({ state: 'hidden' });
    const shownNames = await page.locator('#grid .item .name').allTextContents();
    assert.deepEqual(shownNames, names, 'every file once, in name order');
    assert.equal(await page.textContent('#shown'), '');

    await page.evaluate(() => { location.hash = '#/search/item-'; });
    await page.locator('#view-title', { hasText: 'Search “item-”: 1000 results' }).waitFor();
    await page.waitForFunction(() => document.querySelectorAll('#grid .item').length >= 100);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.click('#more');
    await page.waitForFunction(() => document.querySelectorAll('#grid .item').length >= 200);
    const found = await page.locator('#grid .item .name').allTextContents();
    assert.deepEqual(found.slice(0, 200), names.slice(0, 200));
    await page.evaluate(() => { location.hash = '#/'; });
    await page.locator('#view-title', { hasText: 'All files' }).waitFor();
  });

  it('uploads a folder whole, keeping its tree', async () => {
    const root = mkdtempSync(join(tmpdir(), 'cabinet-folder-'));
    mkdirSync(join(root, 'Trip', 'photos'), { recursive: true });
    writeFileSync(join(root, 'Trip', 'notes.txt'), 'tickets, passports\n');
    writeFileSync(join(root, 'Trip', 'photos', 'beach.txt'), 'sand\n');
    writeFileSync(join(root, 'Trip', 'photos', 'hill.txt'), 'grass\n');
    try {
      await page.setInputFiles('#folder-input', join(root, 'Trip'));
      await page.locator('#status', { hasText: 'Uploaded 3 file(s).' }).waitFor();
      await page.locator('#uploads li', { hasText: 'Trip/photos/beach.txt' }).locator('.up-percent', { hasText: '100%' }).waitFor();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
    await tile('Trip').waitFor();
    const trip = (await call('GET', '/v1/folders?parent_id=root&q=Trip')).data.find((f) => f.name === 'Trip');
    const photos = (await call('GET', `/v1/folders?parent_id=${trip.id}`)).data;
    assert.deepEqual(photos.map((f) => f.name), ['photos']);
    const inTrip = (await call('GET', `/v1/files?folder_id=${trip.id}`)).data.map((f) => f.name);
    const inPhotos = (await call('GET', `/v1/files?folder_id=${photos[0].id}&sort=name`)).data.map((f) => f.name);
    assert.deepEqual(inTrip, ['notes.txt']);
    assert.deepEqual(inPhotos, ['beach.txt', 'hill.txt']);

    // A dropped folder: the browser hands over directory entries, read in batches. A test cannot
    // drop real ones, so the drop handler's walk is given entries that behave like Chromium's.
    await page.evaluate(() => {
      const file = (name, text) => ({ isFile: true, isDirectory: false, name, file: (done) => done(new File([text], name, { type: 'text/plain' })) });
      const dir = (name, batches) => ({
        isFile: false, isDirectory: true, name,
        createReader: () => { const left = [...batches, []]; return { readEntries: (done) => done(left.shift()) }; },
      });
      const tree = dir('Trip', [[file('tickets.txt', 'booked')], [dir('photos', [[file('lake.txt', 'water')]])]]);
      const drop = new Event('drop', { bubbles: true, cancelable: true });
      Object.defineProperty(drop, 'dataTransfer', { value: { items: [{ kind: 'file', webkitGetAsEntry: () => tree }], files: [] } });
      document.querySelector('#dropzone').dispatchEvent(drop);
    });
    await page.locator('#status', { hasText: 'Uploaded 2 file(s).' }).waitFor();
    // Dropped where the tree already is: into the same folders, not copies of them.
    const trips = (await call('GET', '/v1/folders?parent_id=root&q=Trip')).data.filter((f) => f.name === 'Trip');
    assert.equal(trips.length, 1);
    const photosAgain = (await call('GET', `/v1/folders?parent_id=${trip.id}`)).data;
    assert.deepEqual(photosAgain.map((f) => f.id), [photos[0].id]);
    const tripFiles = (await call('GET', `/v1/files?folder_id=${trip.id}&sort=name`)).data.map((f) => f.name);
    const photoFiles = (await call('GET', `/v1/files?folder_id=${photos[0].id}&sort=name`)).data.map((f) => f.name);
    assert.deepEqual(tripFiles, ['notes.txt', 'tickets.txt']);
    assert.deepEqual(photoFiles, ['beach.txt', 'hill.txt', 'lake.txt']);
  });

  it('sends a file above the SDK\'s multipart threshold in parts, verified by its SHA-256', async () => {
    // 20 MiB made in the page (the SDK goes multipart above 16 MiB, in parts of 16 MiB: two).
    const size = 20 * 1024 * 1024;
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i += 1) bytes[i] = (i * 7 + (i >>> 12)) & 0xff;
    const expected = createHash('sha256').update(bytes).digest('hex');
    const reserved = page.waitForResponse((response) => response.request().method() === 'POST' && new URL(response.url()).pathname === '/v1/uploads');
    await page.evaluate((size) => {
      const bytes = new Uint8Array(size); // the same bytes as above
      for (let i = 0; i < size; i += 1) bytes[i] = (i * 7 + (i >>> 12)) & 0xff;
      const data = new DataTransfer();
      data.items.add(new File([bytes], 'film.bin', { type: 'application/octet-stream' }));
      const zone = document.querySelector('#dropzone');
      for (const type of ['dragenter', 'dragover', 'drop']) {
        zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: data }));
      }
    }, size);
    const ticket = await (await reserved).json();
    assert.ok(ticket.multipart, `reserved as one PUT: ${JSON.stringify(ticket)}`);
    assert.equal(ticket.multipart.part_count, 2);
    const row = page.locator('#uploads li', { hasText: 'film.bin' });
    await row.locator('.up-percent', { hasText: '100%' }).waitFor({ timeout: 60_000 });
    await page.locator('#status', { hasText: 'Uploaded 1 file(s).' }).waitFor();
    await tile('film.bin').waitFor();
    // The server verified the bytes against the SHA-256 the SDK declared, and kept the part plan
    // (a single PUT's upload has none: 409 here).
    const upload = await call('GET', `/v1/uploads/${ticket.id}`);
    assert.equal(upload.status, 'SUCCESS');
    assert.equal(upload.sha256, expected);
    assert.equal(upload.file.sha256, expected);
    assert.equal(upload.file.size, size);
    const parts = await call('GET', `/v1/uploads/${ticket.id}/parts`);
    assert.equal(parts.part_count, 2);
  });

  it('says in place why an upload failed', async () => {
    assert.ok(smallKey, 'CABINET_SMALL_KEY is set by dev/browser-test');
    await page.click('#signout');
    await page.fill('#signin-key', smallKey);
    await page.click('button:has-text("Sign in")');
    await page.locator('#view-title', { hasText: 'All files' }).waitFor();
    await page.evaluate(() => {
      const data = new DataTransfer();
      data.items.add(new File([new Uint8Array(4096)], 'too-big.bin', { type: 'application/octet-stream' }));
      const zone = document.querySelector('#dropzone');
      for (const type of ['dragenter', 'dragover', 'drop']) {
        zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: data }));
      }
    });
    const row = page.locator('#uploads li', { hasText: 'too-big.bin' });
    await row.locator('.up-percent', { hasText: 'Failed' }).waitFor();
    const reason = await row.locator('.up-reason').textContent();
    assert.match(reason, /quota/i, reason);
    assert.ok(await row.locator('.up-reason').isVisible(), 'the reason is on the page, not in a tooltip');
    await shot('09-failed-upload');
    await page.click('#signout');
    await page.fill('#signin-key', key);
    await page.click('button:has-text("Sign in")');
    await page.locator('#view-title', { hasText: 'All files' }).waitFor();
  });

  it('signs out and forgets the key', async () => {
    await page.click('#signout');
    await page.locator('#signin-key').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('cabinet.key')), null);
  });

  it('logged no script error or policy violation', () => {
    assert.deepEqual(problems, []);
  });
});

// Cabinet console: a client of the native API (/v1) with the key the user typed, kept in this
// tab's sessionStorage, built on the TypeScript SDK (clients/typescript, embedded as one module:
// cabinet-client.js, made by `npm run build:console`). No framework, no build step of its own: the
// DOM is built with createElement, and every text goes in through textContent, so no name can
// inject markup.

import { Cabinet, CabinetError, UnauthorizedError, UploadInterruptedError } from './cabinet-client.js';

const $ = (selector) => document.querySelector(selector);

const session = {
  get key() { return sessionStorage.getItem('cabinet.key'); },
  get workspace() { return sessionStorage.getItem('cabinet.workspace') || ''; },
  save(key, workspace) {
    sessionStorage.setItem('cabinet.key', key);
    if (workspace) sessionStorage.setItem('cabinet.workspace', workspace);
    else sessionStorage.removeItem('cabinet.workspace');
  },
  clear() {
    sessionStorage.removeItem('cabinet.key');
    sessionStorage.removeItem('cabinet.workspace');
  },
};

const state = {
  view: 'files', // files | favorites | trash | tag | search
  folderId: null,
  tag: null,
  query: '',
  items: [],
  selected: null,
  generation: 0,
  // Where the view's items come from: the SDK's paged lists, read in order (folders before
  // files), each a page at a time; `done` once read to the end.
  sources: [],
  loadingMore: false,
};

/** Items fetched per request: the API's default page. */
const PAGE = 100;

/** A refusal of the console's own (a form field it cannot send): its message is meant for people. */
class Refusal extends Error {}

/**
 * The SDK with the session's key (and workspace, sent as X-Cabinet-Workspace). Every API call goes
 * through `send`: a key refused (401) there leads back to the sign-in screen, except when quota
 * is what asked (signing in checks the key with it, and says so itself).
 */
class ConsoleCabinet extends Cabinet {
  async send(method, path, options) {
    try {
      return await super.send(method, path, options);
    } catch (error) {
      if (error instanceof UnauthorizedError && path !== '/v1/quota' && this === cabinet) {
        showSignIn('The key was refused; sign in again.');
      }
      throw error;
    }
  }
}

let cabinet = null;

/** A client for the key (and workspace) in the session. */
function connect() {
  cabinet = new ConsoleCabinet({
    baseUrl: location.origin,
    apiKey: session.key,
    workspaceId: session.workspace || undefined,
  });
  return cabinet;
}

// ---------------------------------------------------------------- status and formatting

function say(message, kind = 'info') {
  const status = $('#status');
  status.textContent = message;
  status.classList.toggle('error', kind === 'error');
}

/** What the user is told about a failure: the API's own words when it answered. */
function reason(error) {
  if (error instanceof UploadInterruptedError) {
    return `the upload was interrupted: ${reason(error.cause)}`;
  }
  if ((error instanceof CabinetError && error.status !== 0) || error instanceof Refusal) return error.message;
  return `Something went wrong: ${error?.message ?? error}`;
}

function fail(error) {
  say(reason(error), 'error');
}

/** Sizes in binary units (KiB = 1024 B), as the `cabinet` client and the server's flags write them. */
function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = n;
  let unit = -1;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

/** A drawn icon (no icon font, no emoji: both depend on fonts the machine may lack). */
function iconFor(item) {
  if (item.type === 'folder') return el('span', { class: 'folder-icon' });
  const dot = item.name.lastIndexOf('.');
  const extension = dot > 0 ? item.name.slice(dot + 1) : '';
  const label = /^[a-z0-9]{1,4}$/i.test(extension) ? extension : (item.mime_type || 'file').split('/')[0].slice(0, 4);
  return el('span', { class: 'file-icon', text: label.toUpperCase() });
}

// ---------------------------------------------------------------- signed URLs (cached until near expiry)

const signedUrls = new Map();

async function signedUrl(fileId, download = false) {
  const cacheKey = `${fileId}:${download}`;
  const cached = signedUrls.get(cacheKey);
  if (cached && Date.parse(cached.expires_at) - Date.now() > 60_000) return cached.url;
  const link = await cabinet.files.downloadUrl(fileId, { download: download || undefined });
  signedUrls.set(cacheKey, link);
  return link.url;
}

// ---------------------------------------------------------------- sign in

function showSignIn(message = '') {
  session.clear();
  live.abort();
  uploadsStop.abort(new Refusal('signed out'));
  uploadsStop = new AbortController();
  $('#app').hidden = true;
  $('#signin').hidden = false;
  $('#signin-error').textContent = message;
  $('#signin-key').value = '';
  $('#signin-key').focus();
}

async function signIn(event) {
  event.preventDefault();
  const key = $('#signin-key').value.trim();
  const workspace = $('#signin-workspace').value.trim();
  if (!key) return;
  session.save(key, workspace);
  try {
    await connect().quota();
  } catch (error) {
    session.clear();
    $('#signin-error').textContent = error instanceof UnauthorizedError ? 'That key was refused.' : reason(error);
    return;
  }
  $('#signin-key').value = '';
  start();
}

function start() {
  $('#signin').hidden = true;
  $('#app').hidden = false;
  route();
  refreshQuota();
  refreshTags();
  follow();
}

// ---------------------------------------------------------------- live updates

/** The running follow of the event stream (aborted on sign-out or a new sign-in). */
let live = new AbortController();

/** How long a burst of changes is gathered before the view is read again, in milliseconds. */
const LIVE_SETTLE_MS = 400;

/**
 * Follows the workspace's event stream (GET /v1/events/stream) with the session's key, so a change
 * made anywhere (another tab, an app, a dialect, S3) shows without a reload. EventSource cannot
 * send the Authorization header, so the server-sent events are read through fetch. A burst of
 * events reads the view again once. Only a view shown whole is read again: one with more pages to
 * show is left as it is, since reading it again would take the user's place in it (and race the
 * page being loaded as they scroll); it is current again when they next open it. A dropped stream
 * is opened again after a pause, from the last event seen; a key that may not read the feed (an
 * end-user token) just goes without.
 */
function follow() {
  live.abort();
  const stop = new AbortController();
  live = stop;
  const key = session.key;
  const workspace = session.workspace;
  let lastId = null;
  let settling = null;
  const changed = () => {
    if (settling) return;
    settling = setTimeout(() => {
      settling = null;
      if (!stop.signal.aborted) refreshView();
    }, LIVE_SETTLE_MS);
  };
  const run = async () => {
    while (!stop.signal.aborted) {
      try {
        const headers = { Authorization: `Bearer ${key}`, Accept: 'text/event-stream' };
        if (workspace) headers['X-Cabinet-Workspace'] = workspace;
        if (lastId !== null) headers['Last-Event-ID'] = lastId;
        const response = await fetch('/v1/events/stream', { headers, signal: stop.signal, cache: 'no-store' });
        if (response.status === 401 || response.status === 403) return;
        if (!response.ok || !response.body) throw new Error(`the event stream answered ${response.status}`);
        // Whatever happened while the stream was down is shown now.
        if (lastId !== null) changed();
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, '\n');
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let event = false;
            for (const line of block.split('\n')) {
              if (line.startsWith('id:')) lastId = line.slice(3).trim();
              else if (line.startsWith('event:')) event = true;
            }
            if (event) changed();
          }
        }
      } catch (error) {
        if (stop.signal.aborted) return;
      }
      await new Promise((resolve) => { setTimeout(resolve, 2000); });
    }
  };
  run();
}

/** Reads the view again after a change elsewhere (the grid keeps a focused tile focused). */
async function refreshView() {
  if (state.loadingMore || state.sources.some((list) => !list.done)) return;
  await render();
  refreshQuota();
  refreshTags();
}

// ---------------------------------------------------------------- routing (the hash is the view)

function route() {
  const hash = decodeURIComponent(location.hash.replace(/^#\/?/, ''));
  const [view, ...rest] = hash.split('/');
  const arg = rest.join('/');
  state.folderId = null;
  state.tag = null;
  if (view === 'folder' && arg) { state.view = 'files'; state.folderId = arg; }
  else if (view === 'favorites') state.view = 'favorites';
  else if (view === 'trash') state.view = 'trash';
  else if (view === 'tag' && arg) { state.view = 'tag'; state.tag = arg; }
  else if (view === 'search') { state.view = 'search'; state.query = arg; $('#search').value = arg; }
  else state.view = 'files';
  if (state.view !== 'search') $('#search').value = '';
  closeDetails();
  render();
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// ---------------------------------------------------------------- the grid

/**
 * One paged list: the pages of one of the SDK's list iterators (it follows the cursor), read one
 * at a time; `type` marks its items when the API's shape does not say (files and folders).
 */
function source(iterator, type) {
  return {
    pages: iterator.pages(),
    items: (page) => (type ? page.data.map((item) => ({ ...item, type })) : page.data),
    done: false,
  };
}

/** The next page of the view's lists: from the first list not yet read to its end. */
async function nextPage(sources) {
  const next = sources.find((list) => !list.done);
  if (!next) return { items: [] };
  const { value: page, done } = await next.pages.next();
  if (done) {
    next.done = true;
    return { items: [] };
  }
  // The iterator stops after a page without a next cursor: so does the view.
  next.done = !page.hasMore || !page.nextCursor;
  return { items: next.items(page), page };
}

async function load() {
  let title = '';
  let crumbs = [];
  let sources = [];
  switch (state.view) {
    case 'files': {
      const scope = state.folderId || 'root';
      sources = [
        source(cabinet.folders.list({ parent_id: scope, sort: 'name', limit: PAGE }), 'folder'),
        source(cabinet.files.list({ folder_id: scope, sort: 'name', limit: PAGE }), 'file'),
      ];
      const folder = state.folderId ? await cabinet.folders.get(state.folderId) : null;
      title = folder ? folder.name : 'All files';
      crumbs = folder ? folderPath(folder) : [];
      break;
    }
    case 'favorites':
      title = 'Favorites';
      sources = [
        source(cabinet.folders.list({ favorite: true, sort: 'name', limit: PAGE }), 'folder'),
        source(cabinet.files.list({ favorite: true, sort: 'name', limit: PAGE }), 'file'),
      ];
      break;
    case 'tag':
      title = `Tagged “${state.tag}”`;
      sources = [source(cabinet.files.list({ tags: state.tag, sort: 'name', limit: PAGE }), 'file')];
      break;
    case 'search':
      sources = [source(cabinet.search(state.query, { sort: 'name', limit: PAGE }))];
      break;
    case 'trash':
      title = 'Trash';
      // One page: the trash has no cursor (the SDK's iterator ends after it).
      sources = [source(cabinet.trash.list({ limit: PAGE }))];
      break;
    default:
      break;
  }
  // A first screen of items: a page, or more while the lists before the last run out short.
  const items = [];
  while (items.length < PAGE && sources.some((list) => !list.done)) {
    const { items: more, page } = await nextPage(sources);
    items.push(...more);
    if (state.view === 'search' && page) {
      title = `Search “${state.query}”: ${page.total === 1 ? '1 result' : `${page.total} results`}`;
    }
  }
  return { title, crumbs, items, sources };
}

/** Appends the next page of the view's lists (the “Show more” button, or scrolling to it). */
async function showMore() {
  if (state.loadingMore) return;
  const generation = state.generation;
  state.loadingMore = true;
  try {
    const { items } = await nextPage(state.sources);
    if (generation !== state.generation) return;
    state.items.push(...items);
    $('#grid').append(...items.map(tile));
    renderMore();
  } catch (error) {
    fail(error);
  } finally {
    state.loadingMore = false;
  }
}

function renderMore() {
  const more = state.sources.some((list) => !list.done);
  $('#more').hidden = !more;
  $('#shown').textContent = more ? `Showing ${state.items.length}; there are more.` : '';
}

function folderPath(folder) {
  const path = (folder.path || []).slice();
  if (!path.length || path[path.length - 1].id !== folder.id) path.push({ id: folder.id, name: folder.name });
  return path;
}

async function render() {
  const generation = ++state.generation;
  let page;
  try {
    page = await load();
  } catch (error) {
    if (generation === state.generation) fail(error);
    return;
  }
  // A newer render (the user typed on, or navigated) supersedes this one.
  if (generation !== state.generation) return;
  state.items = page.items;
  state.sources = page.sources;
  $('#view-title').textContent = page.title;
  renderCrumbs(page.crumbs || []);
  renderGrid(page.items);
  renderMore();
  for (const link of document.querySelectorAll('.sidebar a')) {
    const current = (link.dataset.view === state.view && !state.folderId) ||
      (link.dataset.view === 'files' && state.view === 'files') ||
      (state.view === 'tag' && link.dataset.tag === state.tag);
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const trash = state.view === 'trash';
  $('#folder-actions').hidden = trash;
  $('#trash-actions').hidden = !trash || page.items.length === 0;
}

function renderCrumbs(path) {
  const list = $('#crumbs');
  list.replaceChildren();
  const labels = { favorites: 'Favorites', trash: 'Trash', tag: 'Tags', search: 'Search' };
  const root = state.view === 'files' && !path.length
    ? el('span', { 'aria-current': 'page', text: 'All files' })
    : el('a', { href: '#/', text: 'All files' });
  list.append(el('li', {}, root));
  if (state.view !== 'files') {
    list.append(el('li', {}, el('span', { 'aria-current': 'page', text: labels[state.view] })));
    return;
  }
  path.forEach((step, index) => {
    const last = index === path.length - 1;
    const node = last
      ? el('span', { 'aria-current': 'page', text: step.name })
      : el('a', { href: `#/folder/${encodeURIComponent(step.id)}`, text: step.name });
    list.append(el('li', {}, node));
  });
}

function renderGrid(items) {
  const grid = $('#grid');
  // The tile focused when the grid is replaced, not one focused when its list was asked for: the
  // user may have moved on meanwhile (to another tile, or to the name field F2 opened).
  const focused = document.activeElement?.closest?.('#grid .item')?.dataset.id;
  grid.replaceChildren(...items.map(tile));
  if (focused) focusTile(focused);
  $('#empty').hidden = items.length > 0;
  $('#empty').textContent = state.view === 'files'
    ? 'Nothing here yet. Drop files or folders here, or use “Upload files”.'
    : state.view === 'trash' ? 'The trash is empty.' : 'Nothing found.';
}

function tile(item) {
  const trashed = state.view === 'trash';
  const thumb = el('span', { class: `thumb ${item.type}`, 'aria-hidden': 'true' }, iconFor(item));
  if (item.type === 'file' && !trashed && item.thumbnail_url) {
    // The server's thumbnail, at a signed URL that needs no key. In the tile at once (a lazy
    // image outside the document never loads); the icon comes back if no thumbnail can be made.
    const image = el('img', { src: item.thumbnail_url, alt: '', loading: 'lazy', decoding: 'async' });
    image.addEventListener('error', () => thumb.replaceChildren(iconFor(item)));
    thumb.replaceChildren(image);
  }
  const meta = item.type === 'folder'
    ? 'Folder'
    : `${bytes(item.size)} · ${item.mime_type}`;
  const label = el('span', { class: 'label' },
    el('span', { class: 'name', text: item.name, title: item.name }),
    el('span', { class: 'meta', text: meta }));
  const open = item.type === 'folder' && !trashed
    ? el('a', { class: 'open', href: `#/folder/${encodeURIComponent(item.id)}` }, thumb, label)
    : el('button', { class: 'open', type: 'button', onclick: () => select(item) }, thumb, label);
  open.setAttribute('aria-label', `${item.type === 'folder' ? 'Folder' : 'File'} ${item.name}, ${meta}`);
  const node = el('li', { class: 'item', dataset: { id: item.id, type: item.type } }, open);
  if (trashed) {
    node.append(el('button', {
      class: 'restore', type: 'button', text: 'Restore',
      'aria-label': `Restore ${item.name}`, onclick: () => restore(item),
    }));
  } else {
    if (item.type === 'folder') {
      node.append(el('button', {
        class: 'more', type: 'button', text: '⋯', title: 'Details',
        'aria-label': `Details of ${item.name}`, onclick: () => select(item),
      }));
    }
    node.append(el('button', {
      class: 'star', type: 'button', text: item.is_favorite ? '★' : '☆',
      'aria-pressed': String(item.is_favorite), 'aria-label': `Favorite ${item.name}`,
      title: item.is_favorite ? 'Remove from favorites' : 'Add to favorites',
      onclick: () => toggleFavorite(item),
    }));
  }
  if (state.selected?.id === item.id) node.classList.add('selected');
  return node;
}

function itemOf(node) {
  const tileNode = node?.closest?.('.item');
  return tileNode ? state.items.find((item) => item.id === tileNode.dataset.id) : null;
}

function focusTile(id) {
  const node = document.querySelector(`.item[data-id="${CSS.escape(id)}"] .open`);
  if (node) node.focus();
}

// ---------------------------------------------------------------- folders

function showNewFolder() {
  $('#new-folder-form').hidden = false;
  $('#new-folder-name').value = '';
  $('#new-folder-name').focus();
}

async function createFolder(event) {
  event.preventDefault();
  const name = $('#new-folder-name').value.trim();
  if (!name) return;
  try {
    const folder = await cabinet.folders.create(name, { parentId: state.folderId });
    $('#new-folder-form').hidden = true;
    say(`Created folder “${folder.name}”.`);
    await render();
    focusTile(folder.id);
  } catch (error) {
    fail(error);
  }
}

// ---------------------------------------------------------------- details: rename, move, metadata

async function folderChoices() {
  const folders = [];
  for await (const page of cabinet.folders.list({ sort: 'name', limit: PAGE }).pages()) {
    folders.push(...page.data);
    if (folders.length >= 1000) break;
  }
  const byId = new Map(folders.map((f) => [f.id, f]));
  const pathOf = (folder) => {
    const names = [];
    for (let f = folder, depth = 0; f && depth < 64; f = byId.get(f.parent_id), depth += 1) names.unshift(f.name);
    return `/${names.join('/')}`;
  };
  return folders.map((f) => ({ id: f.id, path: pathOf(f) })).sort((a, b) => a.path.localeCompare(b.path));
}

async function select(item) {
  state.selected = item;
  for (const node of document.querySelectorAll('.item')) node.classList.toggle('selected', node.dataset.id === item.id);
  const isFile = item.type === 'file';
  const trashed = Boolean(item.trashed_at);
  $('#details').hidden = false;
  $('#details-title').textContent = item.name;
  $('#d-name').value = item.name;
  $('#file-fields').hidden = !isFile;
  $('#d-link').hidden = !isFile || trashed;
  $('#d-download').hidden = true;
  $('#d-link-value').hidden = true;
  $('#d-link-label').hidden = true;
  $('#d-delete').hidden = trashed;
  $('#d-favorite').hidden = trashed;
  $('#details-form').querySelector('button[type=submit]').disabled = trashed;
  updateFavoriteButton(item);
  if (isFile) {
    $('#d-tags').value = (item.tags || []).join(', ');
    $('#d-alt').value = item.alt_text || '';
    $('#d-caption').value = item.caption || '';
    $('#d-copyright').value = item.copyright || '';
    $('#d-metadata').value = Object.keys(item.metadata || {}).length ? JSON.stringify(item.metadata, null, 2) : '';
  }
  const facts = $('#d-facts');
  facts.replaceChildren();
  const fact = (name, value) => facts.append(el('dt', { text: name }), el('dd', { text: value }));
  fact('Type', isFile ? item.mime_type : 'Folder');
  if (isFile) fact('Size', bytes(item.size));
  fact('Created', new Date(item.created_at).toLocaleString());
  fact('Updated', new Date(item.updated_at).toLocaleString());
  if (trashed) fact('Trashed', new Date(item.trashed_at).toLocaleString());
  if (isFile) fact('SHA-256', item.sha256);
  fact('Id', item.id);

  const preview = $('#details-preview');
  preview.replaceChildren();
  const move = $('#d-move');
  move.replaceChildren(el('option', { value: '', text: '/ (top level)' }));
  const parent = isFile ? item.folder_id : item.parent_id;
  try {
    for (const choice of await folderChoices()) {
      if (item.type === 'folder' && (choice.id === item.id)) continue;
      move.append(el('option', { value: choice.id, text: choice.path }));
    }
    move.value = parent || '';
    if (isFile && !trashed) {
      const download = await signedUrl(item.id, true);
      $('#d-download').href = download;
      $('#d-download').hidden = false;
      if ((item.mime_type || '').startsWith('image/')) {
        preview.append(el('img', { src: await signedUrl(item.id), alt: item.alt_text || item.name }));
      }
    }
  } catch (error) {
    fail(error);
  }
}

function updateFavoriteButton(item) {
  const button = $('#d-favorite');
  button.setAttribute('aria-pressed', String(Boolean(item.is_favorite)));
  button.textContent = item.is_favorite ? '★ Favorite' : '☆ Favorite';
}

function closeDetails() {
  const selected = state.selected;
  state.selected = null;
  $('#details').hidden = true;
  for (const node of document.querySelectorAll('.item.selected')) node.classList.remove('selected');
  return selected;
}

async function saveDetails(event) {
  event.preventDefault();
  const item = state.selected;
  if (!item) return;
  const name = $('#d-name').value.trim();
  const target = $('#d-move').value || null;
  try {
    let updated;
    if (item.type === 'file') {
      let metadata = {};
      const raw = $('#d-metadata').value.trim();
      if (raw) {
        try { metadata = JSON.parse(raw); } catch { throw new Refusal('Metadata must be a JSON object.'); }
        if (typeof metadata !== 'object' || Array.isArray(metadata) || metadata === null) {
          throw new Refusal('Metadata must be a JSON object.');
        }
      }
      const text = (id) => $(id).value.trim() || null;
      updated = await cabinet.files.update(item.id, {
        name,
        folder_id: target,
        tags: $('#d-tags').value.split(',').map((tag) => tag.trim()).filter(Boolean),
        alt_text: text('#d-alt'),
        caption: text('#d-caption'),
        copyright: text('#d-copyright'),
        metadata,
      });
      updated.type = 'file';
      refreshTags();
    } else {
      updated = await cabinet.folders.update(item.id, { name, parent_id: target });
      updated.type = 'folder';
    }
    say(`Saved “${updated.name}”.`);
    await render();
    const still = state.items.find((i) => i.id === updated.id);
    if (still) { await select(still); focusTile(still.id); } else closeDetails();
  } catch (error) {
    fail(error);
  }
}

async function toggleFavorite(item) {
  try {
    // The SDK has files.favorite; a folder's mark goes through its request().
    const mark = item.type === 'folder'
      ? await cabinet.request('POST', `/v1/folders/${encodeURIComponent(item.id)}/favorite`)
      : await cabinet.files.favorite(item.id);
    const selected = state.selected?.id === item.id;
    // Announced once the grid shows the new star, so the message and the view agree.
    await render();
    say(mark.is_favorite ? `Added “${item.name}” to favorites.` : `Removed “${item.name}” from favorites.`);
    const fresh = state.items.find((i) => i.id === item.id);
    if (selected && fresh) { state.selected = fresh; updateFavoriteButton(fresh); }
    else if (selected) closeDetails();
  } catch (error) {
    fail(error);
  }
}

async function trashItem(item) {
  try {
    if (item.type === 'folder') await cabinet.folders.delete(item.id, { recursive: true });
    else await cabinet.files.delete(item.id);
    if (state.selected?.id === item.id) closeDetails();
    say(`Moved “${item.name}” to the trash.`);
    await render();
    refreshQuota();
    refreshTags();
    $('#main').focus();
  } catch (error) {
    fail(error);
  }
}

async function restore(item) {
  try {
    const restored = item.type === 'folder'
      ? await cabinet.folders.restore(item.id)
      : await cabinet.files.restore(item.id);
    const note = restored.restore || {};
    let message = `Restored “${item.name}”`;
    if (note.renamed_to) message += ` as “${note.renamed_to}”`;
    if (note.restored_to_root) message += ' to the top level';
    say(`${message}.`);
    await render();
    refreshQuota();
    refreshTags();
  } catch (error) {
    fail(error);
  }
}

async function emptyTrash() {
  if (!window.confirm('Delete everything in the trash for good? This cannot be undone.')) return;
  try {
    const done = await cabinet.trash.empty();
    say(`Deleted ${done.purged} item(s) for good.`);
    await render();
    refreshQuota();
  } catch (error) {
    fail(error);
  }
}

async function copyLink() {
  const item = state.selected;
  if (!item || item.type !== 'file') return;
  try {
    const link = await cabinet.files.downloadUrl(item.id);
    const field = $('#d-link-value');
    field.value = link.url;
    field.hidden = false;
    $('#d-link-label').hidden = false;
    const expires = new Date(link.expires_at).toLocaleString();
    try {
      await navigator.clipboard.writeText(link.url);
      say(`Copied a signed link to “${item.name}”; it works until ${expires}.`);
    } catch {
      field.select();
      say(`Here is a signed link to “${item.name}” (works until ${expires}); copy it with Ctrl+C.`);
    }
  } catch (error) {
    fail(error);
  }
}

// ---------------------------------------------------------------- uploads

/** Files with the folders they sit in (a picked or dropped folder keeps its tree). */
const fileEntries = (fileList) => Array.from(fileList || []).map((file) => ({
  file,
  dirs: (file.webkitRelativePath || '').split('/').slice(0, -1).filter(Boolean),
}));

function uploadFiles(fileList) {
  uploadEntries(fileEntries(fileList));
}

/** Aborted when the user signs out: the uploads started with that key stop. */
let uploadsStop = new AbortController();

async function uploadEntries(entries) {
  if (!entries.length) return;
  const folderId = state.view === 'files' ? state.folderId : null;
  const { signal } = uploadsStop;
  $('#uploads-section').hidden = false;
  const rows = entries.map(({ file, dirs }) => uploadRow(file, [...dirs, file.name].join('/')));
  say(entries.length === 1 ? `Uploading “${entries[0].file.name}”…` : `Uploading ${entries.length} files…`);
  const folders = new Map();
  let next = 0;
  let failed = 0;
  // Two at a time: steady progress, and the server's quota sees every reservation promptly.
  const worker = async () => {
    while (next < entries.length) {
      const index = next++;
      try {
        const target = await folderFor(entries[index].dirs, folderId, folders);
        await uploadOne(entries[index].file, target, rows[index], signal);
      } catch (error) {
        failed += 1;
        rows[index].fail(error);
      }
    }
  };
  await Promise.all([worker(), worker()]);
  say(failed ? `${failed} of ${entries.length} uploads failed.` : `Uploaded ${entries.length} file(s).`, failed ? 'error' : 'info');
  render();
  refreshQuota();
}

/**
 * The folder `dirs` names under `parentId`, made where missing and reused where a folder of that
 * name is already there (a tree dropped twice lands in the same folders). `made` remembers each
 * path's folder (as a promise, so two uploads into a new folder make it once).
 */
function folderFor(dirs, parentId, made) {
  if (!dirs.length) return Promise.resolve(parentId);
  const key = dirs.join('/');
  if (!made.has(key)) {
    made.set(key, folderFor(dirs.slice(0, -1), parentId, made).then(async (parent) => {
      const name = dirs[dirs.length - 1];
      try {
        const folder = await cabinet.folders.create(name, { parentId: parent });
        return folder.id;
      } catch (error) {
        if (error.code !== 'name_taken') throw error;
        for await (const folder of cabinet.folders.list({ parent_id: parent || 'root', q: name, limit: PAGE })) {
          if (folder.name.toLowerCase() === name.toLowerCase()) return folder.id;
        }
        throw error;
      }
    }));
  }
  return made.get(key);
}

/** What was dropped, folders walked to their files (the browser hands over entries, not paths). */
async function droppedEntries(dataTransfer) {
  const roots = Array.from(dataTransfer?.items || [])
    .map((item) => (item.kind === 'file' && item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
    .filter(Boolean);
  if (!roots.length) return fileEntries(dataTransfer?.files);
  const entries = [];
  const walk = async (entry, dirs) => {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      entries.push({ file, dirs });
      return;
    }
    const reader = entry.createReader();
    // A directory reader hands its children over in batches until it hands over none.
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) await walk(child, [...dirs, entry.name]);
    }
  };
  for (const root of roots) await walk(root, []);
  return entries;
}

function uploadRow(file, shownAs = file.name) {
  const progress = el('progress', { max: '100', value: '0', 'aria-label': `Progress of ${shownAs}` });
  const percent = el('span', { class: 'up-percent', text: '0%' });
  const row = el('li', { class: 'upload' }, el('span', { class: 'up-name', text: shownAs, title: shownAs }), progress, percent);
  $('#uploads').prepend(row);
  return {
    progress(fraction) {
      const value = Math.round(fraction * 100);
      progress.value = value;
      percent.textContent = `${value}%`;
    },
    done() {
      progress.value = 100;
      percent.textContent = '100%';
      row.classList.add('done');
      row.setAttribute('aria-label', `${shownAs} uploaded`);
    },
    fail(error) {
      row.classList.add('failed');
      percent.textContent = 'Failed';
      // The reason in place, where the user looks: “the quota is full”, not a tooltip.
      const why = reason(error);
      row.append(el('span', { class: 'up-reason', role: 'alert', text: why }));
      row.setAttribute('aria-label', `${shownAs} failed: ${why}`);
    },
  };
}

/** Times a multipart upload cut off by the network or the server is resumed before giving up. */
const RESUMES = 2;

/**
 * One file through the SDK's upload: it declares the SHA-256, reserves, sends the bytes (one PUT
 * up to the SDK's threshold, 16 MiB; above, parts in parallel, each reported as it lands) and
 * returns once the server has verified them. A multipart upload cut off midway is resumed: only
 * the parts the server lacks are sent again. One that still fails, or is stopped, is cancelled so
 * its reservation does not hold the quota.
 */
async function uploadOne(file, folderId, row, signal) {
  const client = cabinet; // the key it started with, even if the user signs out meanwhile
  const options = {
    folder: folderId,
    signal,
    onProgress: ({ loaded, total }) => row.progress(total ? loaded / total : 1),
  };
  for (let resumes = 0; ; resumes += 1) {
    try {
      await client.upload(file, options);
      break;
    } catch (error) {
      if (!(error instanceof UploadInterruptedError) || !error.resumable) throw error;
      if (!signal.aborted && resumes < RESUMES) {
        options.resumeUploadId = error.uploadId;
        await new Promise((resolve) => setTimeout(resolve, 1000 * (resumes + 1)));
        continue;
      }
      client.uploads.cancel(error.uploadId).catch(() => undefined);
      throw error;
    }
  }
  row.done();
}

function setUpDropzone() {
  const zone = $('#dropzone');
  let depth = 0;
  const hasFiles = (event) => Array.from(event.dataTransfer?.types || []).includes('Files');
  zone.addEventListener('dragenter', (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth += 1;
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragover', (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
  });
  zone.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove('dragging');
  });
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    depth = 0;
    zone.classList.remove('dragging');
    droppedEntries(event.dataTransfer).then(uploadEntries, fail);
  });
  // A file dropped beside the zone must not make the browser leave the console to open it.
  for (const type of ['dragover', 'drop']) window.addEventListener(type, (event) => event.preventDefault());
}

// ---------------------------------------------------------------- quota and tags

async function refreshQuota() {
  try {
    const quota = await cabinet.quota();
    const used = quota.used_bytes + quota.reserved_bytes;
    const percent = quota.limit_bytes ? Math.min(100, (used / quota.limit_bytes) * 100) : 0;
    const fill = $('#quota-fill');
    fill.style.width = `${percent}%`;
    fill.classList.toggle('high', percent >= 90);
    const text = quota.limit_bytes
      ? `${bytes(quota.used_bytes)} of ${bytes(quota.limit_bytes)}`
      : `${bytes(quota.used_bytes)} used`;
    $('#quota-text').textContent = text;
    const bar = $('#quota');
    bar.setAttribute('role', 'meter');
    bar.setAttribute('aria-label', 'Storage used');
    bar.setAttribute('aria-valuemin', '0');
    bar.setAttribute('aria-valuemax', '100');
    bar.setAttribute('aria-valuenow', percent.toFixed(1));
    bar.setAttribute('aria-valuetext', text);
  } catch {
    $('#quota-text').textContent = 'quota unavailable';
  }
}

async function refreshTags() {
  try {
    // The SDK has no method for tags: its request() (the key, the workspace, typed errors).
    const tags = await cabinet.request('GET', '/v1/tags');
    $('#tags').replaceChildren(...tags.map(({ tag, count }) => el('li', {},
      el('a', { href: `#/tag/${encodeURIComponent(tag)}`, dataset: { tag } },
        tag, el('span', { class: 'count', text: String(count), 'aria-label': `${count} files` })))));
    $('#tags-heading').hidden = tags.length === 0;
  } catch {
    // The tag list is a convenience; the grid says what went wrong.
  }
}

// ---------------------------------------------------------------- search as you type

let searchTimer;

function searchAsYouType() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    const q = $('#search').value.trim();
    if (!q) {
      if (state.view === 'search') go('#/');
      return;
    }
    state.view = 'search';
    state.query = q;
    state.folderId = null;
    history.replaceState(null, '', `#/search/${encodeURIComponent(q)}`);
    closeDetails();
    render();
  }, 200);
}

// ---------------------------------------------------------------- keyboard

function onKeyDown(event) {
  const typing = event.target.closest?.('input, textarea, select');
  if (event.key === 'Escape') {
    if (!$('#new-folder-form').hidden) { $('#new-folder-form').hidden = true; $('#new-folder').focus(); return; }
    const closed = closeDetails();
    if (closed) focusTile(closed.id);
    return;
  }
  if (event.key === '/' && !typing) {
    event.preventDefault();
    $('#search').focus();
    return;
  }
  if (typing) return;
  const item = itemOf(event.target);
  if (!item) return;
  if (event.key === 'Delete' && state.view !== 'trash') {
    event.preventDefault();
    trashItem(item);
  } else if (event.key === 'F2' && state.view !== 'trash') {
    event.preventDefault();
    select(item).then(() => { $('#d-name').focus(); $('#d-name').select(); });
  }
}

// ---------------------------------------------------------------- wiring

function wire() {
  $('#signin-form').addEventListener('submit', signIn);
  $('#signout').addEventListener('click', () => showSignIn('Signed out.'));
  $('#search-form').addEventListener('submit', (event) => event.preventDefault());
  $('#search').addEventListener('input', searchAsYouType);
  $('#new-folder').addEventListener('click', showNewFolder);
  $('#new-folder-form').addEventListener('submit', createFolder);
  $('#new-folder-cancel').addEventListener('click', () => { $('#new-folder-form').hidden = true; });
  $('#file-input').addEventListener('change', (event) => { uploadFiles(event.target.files); event.target.value = ''; });
  $('#folder-input').addEventListener('change', (event) => { uploadFiles(event.target.files); event.target.value = ''; });
  $('#more').addEventListener('click', showMore);
  // Scrolling to the end shows more by itself; the button stays for keyboards and slow scrolls.
  new IntersectionObserver((seen) => { if (seen.some((entry) => entry.isIntersecting)) showMore(); })
    .observe($('#more'));
  $('#empty-trash').addEventListener('click', emptyTrash);
  $('#details-form').addEventListener('submit', saveDetails);
  $('#details-close').addEventListener('click', () => { const closed = closeDetails(); if (closed) focusTile(closed.id); });
  $('#d-favorite').addEventListener('click', () => state.selected && toggleFavorite(state.selected));
  $('#d-delete').addEventListener('click', () => state.selected && trashItem(state.selected));
  $('#d-link').addEventListener('click', copyLink);
  window.addEventListener('hashchange', () => { route(); $('#main').focus({ preventScroll: true }); });
  document.addEventListener('keydown', onKeyDown);
  setUpDropzone();
  if (session.key) {
    connect();
    start();
  } else {
    showSignIn();
  }
}

wire();

// The page at / and at an upload link's URL (/u/<secret>).
//
// At /: sign in with an API token or a JWT (kept in sessionStorage only),
// upload through Uppy's Dashboard to the service's own tus endpoint
// (resumable; Uppy keeps the upload URLs), list the files (searched and
// sorted by the service, a page at a time), download, share and delete them,
// one or a selection at once, and make upload links. Downloads go through download links, so
// a large file is fetched by the browser itself, never through this script's
// memory.
//
// At /u/<secret>: the drop-box mode, for people without an account: the
// link's note and limits, and the Dashboard uploading through the link.
import Uppy from '@uppy/core';
import Dashboard from '@uppy/dashboard';
import Tus from '@uppy/tus';
import '@uppy/core/css/style.min.css';
import '@uppy/dashboard/css/style.min.css';
import './app.css';

const TOKEN_KEY = 's3uploader.token';
const $ = (id) => document.getElementById(id);
// Phones get a smaller upload area, so the list is on the first screen too.
const dashboardHeight = () => (window.matchMedia('(max-width: 40rem)').matches ? 220 : 340);

// What the API's errors mean for a person.
function sentence(status, fallback) {
  switch (status) {
    case 401: return 'Your sign-in was not accepted: the token may be mistyped, revoked or expired. Sign in again.';
    case 403: return fallback || 'You are not allowed to do that.';
    case 404: return 'That is gone.';
    case 410: return fallback || 'This link no longer works.';
    case 411: return 'The size of the file must be known before it is sent.';
    case 413: return fallback || 'The file is too large, or it would take you over your storage quota.';
    case 415: return 'Files of this type are not accepted here.';
    case 429: return 'Too many requests or uploads at once; wait a moment and try again.';
    case 503: return 'The service is unavailable right now; try again shortly.';
    default: return fallback || `Something went wrong (HTTP ${status}).`;
  }
}

// Sizes as Uppy's Dashboard writes them (1024-based, "MB"), so one file,
// and one limit, has one size everywhere on the page.
function formatBytes(n) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : Number(n.toFixed(1))} ${units[i]}`;
}

function parseSize(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$/i.exec(text);
  if (!m) return null;
  const scale = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase()];
  return Math.round(Number(m[1]) * scale);
}

function show(el, visible) { el.hidden = !visible; }

// A line at the top of the page instead of alert(): errors and what happened.
function say(text, isError = false) {
  const el = $('message');
  el.textContent = text;
  el.classList.toggle('error', isError);
  show(el, Boolean(text));
}

class Session {
  constructor(token) { this.token = token; }

  async api(path, init = {}) {
    const headers = { ...(init.headers || {}), Authorization: `Bearer ${this.token}` };
    if (init.body) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, { ...init, headers });
    if (!res.ok) {
      let message = '';
      try { message = (await res.json()).error.message; } catch { /* not JSON */ }
      const error = new Error(sentence(res.status, message));
      error.status = res.status;
      throw error;
    }
    return res.status === 204 ? null : res.json();
  }
}

// The Dashboard on `target`, uploading over tus with `token`, held to `limits`.
function makeUploader(target, token, limits, onComplete, errorLine) {
  const uploader = new Uppy({
    autoProceed: false,
    restrictions: {
      maxFileSize: limits.maxFileSize ?? null,
      maxNumberOfFiles: limits.maxNumberOfFiles ?? null,
      allowedFileTypes: limits.allowedTypes?.length > 0 ? limits.allowedTypes : null,
    },
  });
  uploader.use(Dashboard, {
    inline: true, target, height: dashboardHeight(), proudlyDisplayPoweredByUppy: false, theme: 'auto',
  });
  uploader.use(Tus, {
    endpoint: '/upload/resumable',
    headers: () => ({ Authorization: `Bearer ${token()}` }),
    retryDelays: [0, 1000, 3000, 5000, 10000],
    removeFingerprintOnSuccess: true,
  });
  uploader.on('upload-error', (file, error, response) => {
    const status = response?.status ?? error?.originalResponse?.getStatus?.();
    let message = '';
    try { message = JSON.parse(error?.originalResponse?.getBody?.() ?? '').error.message; } catch { /* not JSON */ }
    errorLine.textContent = `${file?.name ?? 'A file'}: ${sentence(status, message || error?.message)}`;
    show(errorLine, true);
  });
  uploader.on('upload-success', () => show(errorLine, false));
  // The last file's progress, on the page for whoever reads it (assistive tools, tests).
  uploader.on('upload', () => { document.querySelector(target).dataset.progress = '0'; });
  uploader.on('upload-progress', (file, progress) => {
    if (progress.bytesTotal > 0) {
      document.querySelector(target).dataset.progress = String(Math.floor((100 * progress.bytesUploaded) / progress.bytesTotal));
    }
  });
  uploader.on('complete', (result) => {
    onComplete(result);
    if (result.failed.length === 0) uploader.clear();
  });
  return uploader;
}

// ---- signed in ------------------------------------------------------------

let session = null;
let uppy = null;
let cursor = null;
let listing = 0;  // numbers each listing, so a slow answer to an old search is dropped
const shown = new Map();  // file_id -> file, the rows listed
const selected = new Map();  // file_id -> file, the rows ticked

function signInForm(message) {
  show($('workspace'), false);
  show($('account'), false);
  show($('sign-in'), true);
  $('sign-in-error').textContent = message || '';
  show($('sign-in-error'), Boolean(message));
  $('token').focus();
}

async function signIn(token) {
  const candidate = new Session(token);
  let config;
  try {
    config = await candidate.api('/api/config');
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    signInForm(e.status === 401 ? 'That token was not accepted.' : e.message);
    return;
  }
  session = candidate;
  sessionStorage.setItem(TOKEN_KEY, token);
  show($('sign-in'), false);
  show($('account'), true);
  show($('workspace'), true);
  showAccount(config);
  if (uppy) uppy.destroy();
  uppy = makeUploader('#uploader', () => session.token, {
    maxFileSize: config.max_upload_bytes, allowedTypes: config.allowed_types,
  }, (result) => {
    // The list and the quota are fetched once per batch, not once per file.
    if (result.successful.length > 0) {
      listFiles(true);
      session.api('/api/config').then(showAccount, () => {});
    }
  }, $('upload-error'));
  await Promise.all([listFiles(true), listLinks()]);
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  session = null;
  if (uppy) { uppy.destroy(); uppy = null; }
  $('files').querySelector('tbody').replaceChildren();
  $('links').querySelector('tbody').replaceChildren();
  shown.clear();
  selected.clear();
  showSelection();
  $('search').value = '';
  show($('share'), false);
  show($('new-link-url'), false);
  say('');
  signInForm('');
}

// Who is signed in, what they have used of their quota, and what an upload
// may be, before a file breaks it.
function showAccount(config) {
  $('who').textContent = config.user ? `Signed in as ${config.user.name}${config.user.admin ? ' (admin)' : ''}` : '';
  $('quota').textContent = config.quota
    ? `${formatBytes(config.quota.used)} of ${formatBytes(config.quota.bytes)} used, ` +
      `${formatBytes(Math.max(0, config.quota.bytes - config.quota.used))} left`
    : '';
  const types = config.allowed_types.length > 0 ? `; types: ${config.allowed_types.join(', ')}` : '';
  $('limits').textContent = `Files up to ${formatBytes(config.max_upload_bytes)}${types}.`;
}

// The first page (again) of the files as the search box and the sort ask,
// or the next page.
async function listFiles(first) {
  const [sort, order] = $('sort').value.split(':');
  const query = new URLSearchParams({ limit: '50', sort, order });
  const search = $('search').value.trim();
  if (search) query.set('q', search);
  if (!first && cursor) query.set('cursor', cursor);
  const number = ++listing;
  let page;
  try {
    page = await session.api(`/files?${query}`);
  } catch (e) {
    if (e.status === 401) return signInForm(e.message);
    return say(e.message, true);
  }
  if (number !== listing) return;  // a newer search or sort has been asked for
  const body = $('files').querySelector('tbody');
  if (first) {
    body.replaceChildren();
    shown.clear();
  }
  for (const file of page.files) {
    shown.set(file.file_id, file);
    body.append(fileRow(file));
  }
  // Ticked files no longer shown (after another search) are not acted on unseen.
  for (const id of [...selected.keys()]) if (!shown.has(id)) selected.delete(id);
  cursor = page.next_cursor;
  show($('more'), Boolean(cursor));
  $('no-files').textContent = search ? `No file names contain "${search}".` : 'No files yet.';
  show($('no-files'), body.children.length === 0);
  showSelection();
}

// The selection bar and the select-all box, from `selected`.
function showSelection() {
  const n = selected.size;
  show($('selection'), n > 0);
  $('selection-count').textContent = n === 1 ? '1 file selected' : `${n} files selected`;
  const boxes = [...$('files').querySelectorAll('tbody input[type=checkbox]')];
  const ticked = boxes.filter((b) => b.checked).length;
  $('select-all').checked = boxes.length > 0 && ticked === boxes.length;
  $('select-all').indeterminate = ticked > 0 && ticked < boxes.length;
  const remove = $('selection-delete');
  delete remove.dataset.armed;
  remove.textContent = 'Delete';
}

function select(file, on) {
  if (on) selected.set(file.file_id, file); else selected.delete(file.file_id);
  const box = $('files').querySelector(`tr[data-id="${file.file_id}"] input[type=checkbox]`);
  if (box) box.checked = on;
}

// Deletes the selected files one after another; says what happened to each.
async function deleteSelected(button) {
  const files = [...selected.values()];
  if (!armed(button, files.length === 1 ? 'Really delete 1 file?' : `Really delete ${files.length} files?`)) return;
  const failed = [];
  let deleted = 0;
  for (const file of files) {
    try {
      await session.api(`/files/${file.file_id}`, { method: 'DELETE' });
      deleted += 1;
      selected.delete(file.file_id);
      shown.delete(file.file_id);
      $('files').querySelector(`tr[data-id="${file.file_id}"]`)?.remove();
    } catch (e) {
      if (e.status === 401) return signInForm(e.message);
      failed.push(`${file.file_name}: ${e.message}`);
    }
  }
  showSelection();
  show($('no-files'), $('files').querySelector('tbody').children.length === 0);
  const done = `Deleted ${deleted} file${deleted === 1 ? '' : 's'}.`;
  say(failed.length > 0 ? `${done} Not deleted: ${failed.join('; ')}` : done, failed.length > 0);
  session.api('/api/config').then(showAccount, () => {});
}

function actionButton(cell, label, subject, action) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.setAttribute('aria-label', `${label} ${subject}`);  // which one, for screen readers
  b.addEventListener('click', () => action(b).catch((e) => say(e.message, true)));
  cell.append(b);
  return b;
}

// A second click within a few seconds confirms, instead of confirm().
function armed(button, question) {
  if (button.dataset.armed) return true;
  const label = button.textContent;
  button.dataset.armed = '1';
  button.textContent = question;
  setTimeout(() => { delete button.dataset.armed; button.textContent = label; }, 4000);
  return false;
}

let sharing = [];  // the files the share panel is for

// Types the browser shows by itself (the service serves these inline, and
// no others): images get a thumbnail in the list, all get a Preview.
const THUMBNAIL_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif']);
const previewable = (type) => THUMBNAIL_TYPES.has(type) || ['application/pdf', 'text/plain'].includes(type) ||
  /^(video\/(mp4|webm)|audio\/(mpeg|ogg|wav))$/.test(type);

// A small image from a short-lived inline link (the image is the file
// itself: the service makes no thumbnails; the browser scales it).
function addThumbnail(cell, file) {
  session.api(`/files/${file.file_id}/link`, {
    method: 'POST', body: JSON.stringify({ expires_in: '1h', disposition: 'inline' }),
  }).then((link) => {
    const img = document.createElement('img');
    img.className = 'thumb';
    img.alt = '';  // the name beside it says what it is
    img.loading = 'lazy';
    img.src = link.url;
    cell.prepend(img);
  }, () => { /* no thumbnail: the row works without one */ });
}

function fileRow(file) {
  const row = document.createElement('tr');
  row.dataset.id = file.file_id;
  const pick = document.createElement('td');
  pick.className = 'select';
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.checked = selected.has(file.file_id);
  box.setAttribute('aria-label', `Select ${file.file_name}`);
  box.addEventListener('change', () => { select(file, box.checked); showSelection(); });
  pick.append(box);
  row.append(pick);
  // Uploaded: when its last byte was stored (a large file's start is not when it arrived).
  for (const [kind, text] of [['name', file.file_name], ['size', formatBytes(file.file_size)],
    ['type', file.content_type], ['uploaded', new Date(file.completed_at ?? file.upload_time).toLocaleString()]]) {
    const cell = document.createElement('td');
    cell.className = kind;
    cell.textContent = text;  // never markup: names are the users'
    row.append(cell);
  }
  if (THUMBNAIL_TYPES.has(file.content_type)) addThumbnail(row.querySelector('td.name'), file);
  const actions = document.createElement('td');
  actions.className = 'actions';
  if (previewable(file.content_type)) {
    actionButton(actions, 'Preview', file.file_name, async () => {
      // Opened first, in the click, so no pop-up blocker takes it; then pointed at the link.
      const tab = window.open('', '_blank');
      const link = await session.api(`/files/${file.file_id}/link`, {
        method: 'POST', body: JSON.stringify({ expires_in: '1h', disposition: 'inline' }),
      });
      if (tab) { tab.opener = null; tab.location.href = link.url; } else { window.location.assign(link.url); }
    });
  }
  actionButton(actions, 'Download', file.file_name, async () => {
    const link = await session.api(`/files/${file.file_id}/link`, { method: 'POST' });
    window.location.assign(link.url);
  });
  actionButton(actions, 'Share', file.file_name, async () => openShare([file]));
  actionButton(actions, 'Delete', file.file_name, async (button) => {
    if (!armed(button, 'Really delete?')) return;
    await session.api(`/files/${file.file_id}`, { method: 'DELETE' });
    row.remove();
    shown.delete(file.file_id);
    selected.delete(file.file_id);
    showSelection();
    show($('no-files'), $('files').querySelector('tbody').children.length === 0);
    say(`Deleted ${file.file_name}.`);
    session.api('/api/config').then(showAccount, () => {});
  });
  row.append(actions);
  return row;
}

function openShare(files) {
  sharing = files;
  $('share-what').textContent = files.length === 1
    ? `Share ${files[0].file_name}: a link that works without signing in, until it expires.`
    : `Share ${files.length} files: a link for each that works without signing in, until it expires.`;
  $('share-link').replaceChildren();
  show($('share'), true);
  $('share').querySelector('button').focus();
}

async function share(expires) {
  const files = sharing;
  const links = await Promise.all(files.map((file) => session.api(`/files/${file.file_id}/link`, {
    method: 'POST', body: JSON.stringify({ expires_in: expires }),
  })));
  let copied = '';
  try {
    await navigator.clipboard.writeText(links.map((l) => l.url).join('\n'));
    copied = ' (copied)';
  } catch { /* not allowed here: shown */ }
  const until = new Date(links[0].expires_at).toLocaleString();
  const out = $('share-link');
  if (files.length === 1) {
    out.textContent = `Link to ${files[0].file_name}${copied}, valid until ${until}: ${links[0].url}`;
    return;
  }
  const intro = document.createElement('p');
  intro.textContent = `${files.length} links${copied}, valid until ${until}:`;
  const list = document.createElement('ul');
  files.forEach((file, i) => {
    const item = document.createElement('li');
    item.textContent = `${file.file_name}: ${links[i].url}`;
    list.append(item);
  });
  out.replaceChildren(intro, list);
}

// ---- upload links ----------------------------------------------------------

async function listLinks() {
  let page;
  try {
    page = await session.api('/upload-links');
  } catch (e) {
    return say(e.message, true);
  }
  const body = $('links').querySelector('tbody');
  body.replaceChildren();
  for (const link of page.links) body.append(linkRow(link));
  show($('no-links'), page.links.length === 0);
}

function linkRow(link) {
  const row = document.createElement('tr');
  row.dataset.id = link.id;
  const gone = link.revoked_at ? 'revoked' : (Date.parse(link.expires_at) <= Date.now() ? 'expired' : '');
  const received = `${link.files}${link.max_files ? ` of ${link.max_files}` : ''} file(s), ${formatBytes(link.bytes)}` +
    `${link.max_bytes ? ` of ${formatBytes(link.max_bytes)}` : ''}`;
  for (const text of [link.note || '(no note)', received, gone || new Date(link.expires_at).toLocaleString()]) {
    const cell = document.createElement('td');
    cell.textContent = text;
    row.append(cell);
  }
  const actions = document.createElement('td');
  actions.className = 'actions';
  if (!gone) {
    actionButton(actions, 'Revoke', `the link ${link.note || link.id}`, async (button) => {
      if (!armed(button, 'Really revoke?')) return;
      await session.api(`/upload-links/${link.id}`, { method: 'DELETE' });
      say('The link is revoked: it no longer takes files.');
      await listLinks();
    });
  }
  row.append(actions);
  return row;
}

async function makeLink() {
  const spec = { expires_in: $('link-expires').value };
  if ($('link-note').value.trim()) spec.note = $('link-note').value.trim();
  if ($('link-files').value) spec.max_files = Number($('link-files').value);
  if ($('link-bytes').value.trim()) {
    const bytes = parseSize($('link-bytes').value);
    if (!bytes) throw new Error('"At most in all" takes a size such as 500MB or 2GB.');
    spec.max_bytes = bytes;
  }
  if ($('link-types').value.trim()) spec.allowed_types = $('link-types').value;
  const link = await session.api('/upload-links', { method: 'POST', body: JSON.stringify(spec) });
  let copied = '';
  try { await navigator.clipboard.writeText(link.url); copied = ' (copied)'; } catch { /* not allowed here: shown */ }
  $('new-link-url').textContent = `Send this link${copied}; it is shown only now: ${link.url}`;
  show($('new-link-url'), true);
  $('new-link').reset();
  await listLinks();
}

// ---- drop-box mode ---------------------------------------------------------

async function dropBox(secret) {
  show($('drop-box'), true);
  const infoUrl = `/u/${encodeURIComponent(secret)}/info`;
  const describe = async () => {
    const res = await fetch(infoUrl);
    if (!res.ok) {
      let message = '';
      try { message = (await res.json()).error.message; } catch { /* not JSON */ }
      throw Object.assign(new Error(sentence(res.status, message)), { status: res.status });
    }
    const info = await res.json();
    $('drop-box-note').textContent = info.note || 'Drop the files for the person who sent you this link.';
    const limits = [`Files up to ${formatBytes(info.bytes_left === null ? info.max_upload_bytes
      : Math.min(info.max_upload_bytes, info.bytes_left))}`];
    if (info.files_left !== null) limits.push(`${info.files_left} more file(s)`);
    if (info.allowed_types.length > 0) limits.push(`types: ${info.allowed_types.join(', ')}`);
    limits.push(`until ${new Date(info.expires_at).toLocaleString()}`);
    $('drop-box-limits').textContent = `${limits.join('; ')}.`;
    return info;
  };
  let info;
  try {
    info = await describe();
  } catch (e) {
    show($('drop-box-uploader'), false);
    $('drop-box-error').textContent = e.message;
    show($('drop-box-error'), true);
    return;
  }
  const sent = [];
  const uploader = makeUploader('#drop-box-uploader', () => secret, {
    maxFileSize: info.bytes_left === null ? info.max_upload_bytes : Math.min(info.max_upload_bytes, info.bytes_left),
    maxNumberOfFiles: info.files_left ?? null,
    allowedTypes: info.allowed_types,
  }, (result) => {
    for (const file of result.successful) sent.push(file.name);
    if (sent.length > 0) {
      $('drop-box-sent').textContent = `Sent: ${sent.join(', ')}. Thank you.`;
      show($('drop-box-sent'), true);
    }
    describe().then((now) => {
      uploader.setOptions({
        restrictions: {
          maxNumberOfFiles: now.files_left ?? null,
          maxFileSize: now.bytes_left === null ? now.max_upload_bytes : Math.min(now.max_upload_bytes, now.bytes_left),
        },
      });
    }, () => {});
  }, $('drop-box-error'));
}

// ---- start -----------------------------------------------------------------

const linkPath = /^\/u\/([^/]+)\/?$/.exec(window.location.pathname);
if (linkPath) {
  dropBox(decodeURIComponent(linkPath[1]));
} else {
  $('sign-in').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token').value.trim();
    $('token').value = '';
    if (token) signIn(token);
  });
  $('sign-out').addEventListener('click', signOut);
  $('more').addEventListener('click', () => listFiles(false));
  // Searching asks the service once typing pauses, not per key.
  let typing = null;
  $('search').addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => listFiles(true), 250);
  });
  $('sort').addEventListener('change', () => listFiles(true));
  $('select-all').addEventListener('change', () => {
    for (const file of shown.values()) select(file, $('select-all').checked);
    showSelection();
  });
  $('selection-share').addEventListener('click', () => openShare([...selected.values()]));
  $('selection-delete').addEventListener('click', (event) => {
    deleteSelected(event.currentTarget).catch((e) => say(e.message, true));
  });
  $('selection-clear').addEventListener('click', () => {
    for (const file of [...selected.values()]) select(file, false);
    showSelection();
  });
  for (const b of $('share').querySelectorAll('button[data-expires]')) {
    b.addEventListener('click', () => share(b.dataset.expires).catch((e) => say(e.message, true)));
  }
  $('new-link').addEventListener('submit', (event) => {
    event.preventDefault();
    makeLink().catch((e) => say(e.message, true));
  });
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved); else signInForm('');
}

// The page at /: sign in with an API token (kept in sessionStorage only),
// upload through Uppy's Dashboard to the service's own tus endpoint
// (resumable; Uppy keeps the upload URLs), and list, download, share and
// delete the files. Downloads go through download links, so a large file is
// fetched by the browser itself, never through this script's memory.
import Uppy from '@uppy/core';
import Dashboard from '@uppy/dashboard';
import Tus from '@uppy/tus';
import '@uppy/core/css/style.min.css';
import '@uppy/dashboard/css/style.min.css';
import './app.css';

const TOKEN_KEY = 's3uploader.token';
const $ = (id) => document.getElementById(id);

// What the API's errors mean for a person.
function sentence(status, fallback) {
  switch (status) {
    case 401: return 'Your token was not accepted: it may be mistyped, revoked or expired. Sign in again.';
    case 403: return 'You are not allowed to do that.';
    case 404: return 'That file is gone.';
    case 413: return 'The file is too large, or it would take you over your storage quota.';
    case 415: return 'Files of this type are not accepted here.';
    case 429: return 'Too many requests or uploads at once; wait a moment and try again.';
    case 503: return 'The service is unavailable right now; try again shortly.';
    default: return fallback || `Something went wrong (HTTP ${status}).`;
  }
}

function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function show(el, visible) { el.hidden = !visible; }

class Session {
  constructor(token) { this.token = token; }

  async api(path, init = {}) {
    const res = await fetch(path, { ...init, headers: { ...(init.headers || {}), Authorization: `Bearer ${this.token}` } });
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

let session = null;
let uppy = null;
let cursor = null;

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
  showQuota(config);
  startUploader(config);
  await listFiles(true);
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  session = null;
  if (uppy) { uppy.destroy(); uppy = null; }
  $('files').querySelector('tbody').replaceChildren();
  signInForm('');
}

function showQuota(config) {
  $('quota').textContent = config.quota
    ? `${formatBytes(config.quota.used)} of ${formatBytes(config.quota.bytes)} used`
    : '';
}

function startUploader(config) {
  if (uppy) uppy.destroy();
  uppy = new Uppy({
    autoProceed: false,
    restrictions: {
      maxFileSize: config.max_upload_bytes,
      allowedFileTypes: config.allowed_types.length > 0 ? config.allowed_types : null,
    },
  });
  uppy.use(Dashboard, { inline: true, target: '#uploader', height: 360, proudlyDisplayPoweredByUppy: false });
  uppy.use(Tus, {
    endpoint: config.tus_endpoint,
    headers: () => ({ Authorization: `Bearer ${session.token}` }),
    retryDelays: [0, 1000, 3000, 5000, 10000],
    removeFingerprintOnSuccess: true,
  });
  uppy.on('upload-error', (file, error, response) => {
    const status = response?.status ?? error?.originalResponse?.getStatus?.();
    $('upload-error').textContent = `${file?.name ?? 'A file'}: ${sentence(status, error?.message)}`;
    show($('upload-error'), true);
  });
  uppy.on('upload-success', () => show($('upload-error'), false));
  // The last file's progress, on the page for whoever reads it (assistive tools, tests).
  uppy.on('upload', () => { $('uploader').dataset.progress = '0'; });
  uppy.on('upload-progress', (file, progress) => {
    if (progress.bytesTotal > 0) {
      $('uploader').dataset.progress = String(Math.floor((100 * progress.bytesUploaded) / progress.bytesTotal));
    }
  });
  // Finished files are in the list below: the Dashboard is ready for the next ones.
  // The list and the quota are fetched once per batch, not once per file.
  uppy.on('complete', (result) => {
    if (result.successful.length > 0) {
      listFiles(true);
      session.api('/api/config').then(showQuota, () => {});
    }
    if (result.failed.length === 0) uppy.clear();
  });
}

async function listFiles(first) {
  if (first) cursor = null;
  const query = new URLSearchParams({ limit: '50' });
  if (cursor) query.set('cursor', cursor);
  let page;
  try {
    page = await session.api(`/files?${query}`);
  } catch (e) {
    if (e.status === 401) return signInForm(e.message);
    throw e;
  }
  const body = $('files').querySelector('tbody');
  if (first) body.replaceChildren();
  for (const file of page.files) body.append(fileRow(file));
  cursor = page.next_cursor;
  show($('more'), Boolean(cursor));
  show($('no-files'), body.children.length === 0);
}

function fileRow(file) {
  const row = document.createElement('tr');
  row.dataset.id = file.file_id;
  for (const text of [file.file_name, formatBytes(file.file_size), file.content_type,
    new Date(file.upload_time).toLocaleString()]) {
    const cell = document.createElement('td');
    cell.textContent = text;  // never markup: names are the users'
    row.append(cell);
  }
  const actions = document.createElement('td');
  actions.className = 'actions';
  const button = (label, action) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    b.setAttribute('aria-label', `${label} ${file.file_name}`);  // which file, for screen readers
    b.addEventListener('click', () => action().catch((e) => alert(e.message)));
    actions.append(b);
  };
  button('Download', async () => {
    const link = await session.api(`/files/${file.file_id}/link`, { method: 'POST' });
    window.location.assign(link.url);
  });
  button('Share', async () => {
    const link = await session.api(`/files/${file.file_id}/link`, { method: 'POST' });
    try { await navigator.clipboard.writeText(link.url); } catch { /* not allowed here: shown below */ }
    $('share').textContent = `Link to ${file.file_name} (copied), valid until ${new Date(link.expires_at).toLocaleString()}: ${link.url}`;
    show($('share'), true);
  });
  button('Delete', async () => {
    if (!confirm(`Delete ${file.file_name}?`)) return;
    await session.api(`/files/${file.file_id}`, { method: 'DELETE' });
    row.remove();
    show($('no-files'), $('files').querySelector('tbody').children.length === 0);
    session.api('/api/config').then(showQuota, () => {});
  });
  row.append(actions);
  return row;
}

$('sign-in').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = $('token').value.trim();
  $('token').value = '';
  if (token) signIn(token);
});
$('sign-out').addEventListener('click', signOut);
$('more').addEventListener('click', () => listFiles(false));

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) signIn(saved); else signInForm('');

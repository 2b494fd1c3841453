// The web page in a real browser: Debian's chromium, driven by
// puppeteer-core, against the real binary on loopback.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import puppeteer from 'puppeteer-core';
import { MiB, Stack, Server, content, sha256, fetchWithToken } from '../tus-client/harness.mjs';
import { Provider } from '../tus-client/provider.mjs';
import { Receiver, newSecret } from '../tus-client/receiver.mjs';

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
// axe-core's WCAG 2.1 A/AA rules on the page as it stands: the violations,
// each as "rule: the elements". (Injected past the page's CSP, which allows
// no inline script.)
async function accessibilityProblems(page) {
  await page.setBypassCSP(true);
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  }));
  return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => `${n.target.join(' ')} (${n.any[0]?.message ?? n.failureSummary})`).join(', ')}`);
}

// The system's colour scheme, as the page sees it, once the page's own
// transitions into it have ended (a colour caught mid-way fails contrast).
async function colorScheme(page, value) {
  await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value }]);
  await page.evaluate(async () => {
    for (let i = 0; i < 20; i += 1) {
      const running = document.getAnimations().filter((a) => a instanceof CSSTransition);
      if (running.length === 0) return;
      await Promise.all(running.map((a) => a.finished.catch(() => {})));  // one replaced by another: rejected
    }
  });
}

const chromium = process.env.S3UP_CHROMIUM || '/usr/bin/chromium';
// S3UP_SCREENSHOTS=DIR keeps a screenshot of each main state there (docs/screenshots).
const shots = process.env.S3UP_SCREENSHOTS;
const screenshot = async (page, name) => {
  if (shots) await page.screenshot({ path: join(shots, `${name}.png`) });
};

describe('the web page', () => {
  let stack;
  let server;
  let token;
  let browser;
  let page;
  const uploads = [];  // tus requests the page made
  const patches = [];  // the same, with their Upload-Offset
  const created = [];  // the upload URLs the service gave out
  const dialogs = [];  // alert(), confirm() and prompt() the page opened

  // Uploads at `bytesPerSecond` (Chrome's own throttling), or at full speed.
  const throttle = async (bytesPerSecond) => {
    const cdp = await page.createCDPSession();
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: bytesPerSecond ?? -1,
    });
  };
  const progress = () => page.$eval('#uploader', (e) => Number(e.dataset.progress ?? 0));
  const waitForProgress = (atLeast) => page.waitForFunction(
    (p) => Number(document.querySelector('#uploader').dataset.progress ?? 0) >= p, { timeout: 60000 }, atLeast);
  const listed = (name) => page.waitForFunction(
    (n) => [...document.querySelectorAll('#files tbody tr td.name')].some((c) => c.textContent === n),
    { timeout: 60000 }, name);
  const storedSha = async (name) => {
    const list = await (await fetchWithToken(`${server.url}/files`, token)).json();
    return list.files.find((f) => f.file_name === name)?.sha256;
  };

  before(async () => {
    stack = await new Stack('local').init();
    server = await new Server(stack, { env: { S3UP_MAX_UPLOAD_BYTES: '40MiB' } }).start();
    token = stack.token('alice');
    browser = await puppeteer.launch({
      executablePath: chromium,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    });
    page = await browser.newPage();
    await page.setViewport({ width: 1100, height: 900 });
    page.on('request', (r) => {
      if (!r.url().includes('/upload/resumable')) return;
      uploads.push(`${r.method()} ${r.url()}`);
      patches.push({ method: r.method(), url: r.url(), offset: r.headers()['upload-offset'] });
    });
    page.on('response', (r) => {
      if (r.request().method() === 'POST' && r.url().endsWith('/upload/resumable')) created.push(r.headers().location);
    });
    // The page says what it has to say in the page: no alert() or confirm().
    page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    await stack?.close();
  });

  const files = (...specs) => specs.map(([name, size, seed]) => {
    const path = join(stack.dir, name);
    const data = content(size, seed);
    writeFileSync(path, data);
    return { path, name, data };
  });

  test('a wrong token shows the sign-in error', async () => {
    await page.goto(server.url, { waitUntil: 'networkidle0' });
    assert.deepEqual(await accessibilityProblems(page), []);
    await page.type('#token', 's3u_not-a-token');
    await page.click('#sign-in button[type=submit]');
    await page.waitForSelector('#sign-in-error:not([hidden])');
    await screenshot(page, 'sign-in-error');
    assert.match(await page.$eval('#sign-in-error', (e) => e.textContent), /not accepted/);
  });

  test('sign in, upload through the file input, see the files, share and delete', async () => {
    await page.type('#token', token);
    await page.click('#sign-in button[type=submit]');
    await page.waitForSelector('#workspace:not([hidden]) .uppy-Dashboard');
    assert.match(await page.$eval('#who', (e) => e.textContent), /Signed in as alice/);
    const visible = (selector) => page.$eval(selector, (e) => getComputedStyle(e).display !== 'none');
    assert.equal(await visible('#sign-in'), false, 'the sign-in form is gone once signed in');
    assert.equal(await visible('#account'), true);
    const picked = files(['small.txt', 2000, 1], ['large.bin', 30 * MiB, 2]);
    const input = await page.$('.uppy-Dashboard-input');
    await input.uploadFile(...picked.map((f) => f.path));
    await page.waitForSelector('.uppy-StatusBar-actionBtn--upload');
    await screenshot(page, 'files-added');
    await page.click('.uppy-StatusBar-actionBtn--upload');
    await page.waitForFunction(() => document.querySelectorAll('#files tbody tr').length === 2, { timeout: 60000 });
    const names = await page.$$eval('#files tbody tr td.name', (cells) => cells.map((c) => c.textContent).sort());
    assert.deepEqual(names, ['large.bin', 'small.txt']);
    // "Uploaded" is when a file finished arriving, not when it started.
    const meta = await (await fetchWithToken(`${server.url}/files`, token)).json();
    assert.equal(meta.files.length, 2);
    for (const f of meta.files) {
      assert.ok(Date.parse(f.completed_at) >= Date.parse(f.upload_time), `${f.file_name}: ${f.completed_at}`);
      const shown = await page.$eval(`#files tr[data-id="${f.file_id}"] td.uploaded`, (c) => c.textContent);
      const expected = await page.evaluate((t) => new Date(t).toLocaleString(), f.completed_at);
      assert.equal(shown, expected, f.file_name);
    }
    await screenshot(page, 'uploaded');
    assert.ok(uploads.some((u) => u.startsWith('POST')) && uploads.some((u) => u.startsWith('PATCH')), String(uploads));

    // Share: a download link, shown with its expiry, that works without a token.
    const row = await page.$('#files tbody tr[data-id] ~ tr, #files tbody tr');
    const id = await row.evaluate((r) => r.dataset.id);
    const name = await row.$eval('td.name', (c) => c.textContent);
    await (await row.$('button[aria-label^="Share "]')).click();
    await page.waitForSelector('#share:not([hidden])');
    // A link for a day.
    await page.click('#share button[data-expires="1d"]');
    await page.waitForFunction(() => document.querySelector('#share-link').textContent.includes('http'));
    const shared = await page.$eval('#share-link', (e) => e.textContent);
    const url = shared.slice(shared.indexOf('http'));
    const expires = Number(new URL(url).searchParams.get('expires')) * 1000;
    assert.ok(Math.abs(expires - Date.now() - 86400e3) < 60e3, `expires ${new Date(expires).toISOString()}`);
    const got = Buffer.from(await (await fetch(url)).arrayBuffer());
    assert.equal(sha256(got), sha256(picked.find((f) => f.name === name).data));
    assert.deepEqual(await accessibilityProblems(page), []);

    // Delete: the first click asks (on the button, not in a dialog), the second deletes.
    const remove = await row.$('button[aria-label^="Delete "]');
    await remove.click();
    assert.equal(await remove.evaluate((b) => b.textContent), 'Really delete?');
    assert.equal(await page.$$eval('#files tbody tr', (rows) => rows.length), 2, 'nothing deleted yet');
    await remove.click();
    await page.waitForFunction(() => document.querySelectorAll('#files tbody tr').length === 1);
    const left = await (await fetchWithToken(`${server.url}/files`, token)).json();
    assert.deepEqual(left.files.map((f) => f.file_id).includes(id), false);
    assert.deepEqual(dialogs, []);
  });

  // One file through the Dashboard at 6 MiB/s, until `percent` of it is up:
  // the file and the tus URL its upload got.
  const startThrottled = async (spec, percent) => {
    const [file] = files(spec);
    await throttle(6 * MiB);
    await (await page.waitForSelector('.uppy-Dashboard-input')).uploadFile(file.path);
    const known = created.length;
    await page.click('.uppy-StatusBar-actionBtn--upload');
    await waitForProgress(percent);
    assert.equal(created.length, known + 1, 'one upload was created');
    return { file, url: created[created.length - 1] };
  };

  test('progress reaches 100 %, with a pause and a resume of a 30 MiB upload', async () => {
    const { file, url } = await startThrottled(['paused.bin', 30 * MiB, 4], 20);
    await page.click('[data-cy="togglePauseResume"]');
    await new Promise((r) => setTimeout(r, 1500));
    const paused = (await (await fetchWithToken(url, token, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } })).headers.get('upload-offset'));
    assert.ok(Number(paused) > 0 && Number(paused) < file.data.length, `kept ${paused} bytes while paused`);
    const before = await progress();
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await progress(), before, 'nothing moves while paused');
    await throttle(null);
    await page.click('[data-cy="togglePauseResume"]');
    await listed('paused.bin');
    assert.equal(await storedSha('paused.bin'), sha256(file.data));
    assert.equal(await progress(), 100);
    const resumed = patches.filter((p) => p.url === url && p.method === 'PATCH').map((p) => Number(p.offset));
    assert.ok(resumed.length >= 2 && resumed[resumed.length - 1] > 0, `PATCHes at ${resumed}`);
  });

  test('a reload mid-upload resumes it when the file is added again', async () => {
    const { file, url } = await startThrottled(['reloaded.bin', 30 * MiB, 5], 30);
    await page.reload({ waitUntil: 'networkidle0' });
    await throttle(null);
    // Still signed in (the tab's sessionStorage); the same file again.
    await (await page.waitForSelector('#workspace:not([hidden]) .uppy-Dashboard-input')).uploadFile(file.path);
    const seen = patches.length;
    await page.click('.uppy-StatusBar-actionBtn--upload');
    await listed('reloaded.bin');
    const after = patches.slice(seen);
    assert.ok(after.some((p) => p.method === 'HEAD' && p.url === url), 'it asked the old upload where it stands');
    assert.ok(!after.some((p) => p.method === 'POST'), 'no new upload was created');
    const resumedAt = Number(after.find((p) => p.method === 'PATCH').offset);
    assert.ok(resumedAt > 0, `resumed at ${resumedAt}`);
    assert.equal(await storedSha('reloaded.bin'), sha256(file.data));
  });

  test('the Download button fetches the file itself through a download link', async () => {
    const dir = join(stack.dir, 'downloads');
    mkdirSync(dir, { recursive: true });
    const cdp = await page.createCDPSession();
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: dir, eventsEnabled: true });
    const row = await page.waitForSelector('#files tbody tr');
    const name = await row.$eval('td.name', (c) => c.textContent);
    await (await row.$('button[aria-label^="Download "]')).click();
    const path = join(dir, name);
    const deadline = Date.now() + 30000;
    while (!existsSync(path) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(existsSync(path), `downloaded ${name}`);
    assert.equal(sha256(readFileSync(path)), await storedSha(name));
  });

  test('a file dropped on the page is uploaded', async () => {
    await page.waitForSelector('.uppy-Dashboard-inner');
    await page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['dropped on the page'], 'dropped.txt', { type: 'text/plain' }));
      const target = document.querySelector('.uppy-Dashboard-inner');
      for (const type of ['dragenter', 'dragover', 'drop']) {
        target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
      }
    });
    await page.waitForSelector('.uppy-StatusBar-actionBtn--upload');
    await page.click('.uppy-StatusBar-actionBtn--upload');
    await listed('dropped.txt');
    assert.equal(await storedSha('dropped.txt'), sha256(Buffer.from('dropped on the page')));
  });

  test('an image gets a thumbnail, and Preview shows a file in a new tab', async () => {
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');
    const put = await fetchWithToken(`${server.url}/upload/dot.png`, token, { method: 'PUT', body: png });
    assert.equal(put.status, 201);
    const id = (await put.json()).file_id;
    await page.reload({ waitUntil: 'networkidle0' });
    await page.waitForFunction((i) => {
      const img = document.querySelector(`#files tr[data-id="${i}"] img.thumb`);
      return img && img.complete && img.naturalWidth === 1;
    }, { timeout: 15000 }, id);
    const opened = browser.waitForTarget((t) => t.url().includes(`/files/${id}/content?`), { timeout: 15000 });
    await page.click(`#files tr[data-id="${id}"] button[aria-label="Preview dot.png"]`);
    const url = (await opened).url();
    assert.match(url, /disposition=inline/);
    const shown = await fetch(url);
    assert.match(shown.headers.get('content-disposition'), /^inline/);
    assert.deepEqual(Buffer.from(await shown.arrayBuffer()), png);
    await (await (await opened).page())?.close();
    assert.deepEqual(await accessibilityProblems(page), []);
  });

  test('a file over max_upload_bytes is refused before a byte is sent', async () => {
    const before = uploads.length;
    const [big] = files(['too-big.bin', 41 * MiB, 3]);
    // The finished uploads were cleared from the Dashboard: it takes files again.
    const input = await page.waitForSelector('.uppy-Dashboard-input');
    await input.uploadFile(big.path);
    await page.waitForFunction(() => document.body.textContent.includes('exceeds maximum allowed size'), { timeout: 10000 });
    assert.equal(uploads.length, before, 'no tus request for it');
  });

  test('search and sort; a selection shared and deleted at once; dark mode', async () => {
    const sizes = { 'report-b.pdf': 3000, 'Report-a.txt': 10, 'zebra.txt': 500 };
    const data = {};
    for (const [name, size] of Object.entries(sizes)) {
      data[name] = content(size, size);
      const res = await fetchWithToken(`${server.url}/upload/${name}`, token, { method: 'PUT', body: data[name] });
      assert.equal(res.status, 201);
    }
    await page.reload({ waitUntil: 'networkidle0' });
    await listed('zebra.txt');
    const names = () => page.$$eval('#files tbody tr td.name', (cells) => cells.map((c) => c.textContent));
    const namesAre = (expected) => page.waitForFunction(
      (e) => JSON.stringify([...document.querySelectorAll('#files tbody tr td.name')].map((c) => c.textContent)) === e,
      { timeout: 10000 }, JSON.stringify(expected)).catch(async () => assert.deepEqual(await names(), expected));
    const clearSearch = async () => {
      await page.focus('#search');
      await page.keyboard.down('Control');
      await page.keyboard.press('KeyA');
      await page.keyboard.up('Control');
      await page.keyboard.press('Backspace');
    };

    // The service searches (ignoring case) and sorts; the page asks once typing pauses.
    await page.type('#search', 'REPORT', { delay: 30 });
    await namesAre(['Report-a.txt', 'report-b.pdf']);  // newest first
    await page.select('#sort', 'name:asc');
    await namesAre(['Report-a.txt', 'report-b.pdf']);
    await page.select('#sort', 'size:desc');
    await namesAre(['report-b.pdf', 'Report-a.txt']);
    await page.type('#search', '-nothing');
    await page.waitForFunction(() => !document.querySelector('#no-files').hidden);
    assert.equal(await page.$eval('#no-files', (e) => e.textContent), 'No file names contain "REPORT-nothing".');
    await clearSearch();
    await page.type('#search', 'report');
    await namesAre(['report-b.pdf', 'Report-a.txt']);

    // Tick every file shown: a bar says how many, and offers links and delete.
    await page.click('#select-all');
    await page.waitForSelector('#selection:not([hidden])');
    assert.equal(await page.$eval('#selection-count', (e) => e.textContent), '2 files selected');
    await screenshot(page, 'selection');
    assert.deepEqual(await accessibilityProblems(page), []);
    await page.click('#selection-share');
    await page.waitForSelector('#share:not([hidden])');
    await page.click('#share button[data-expires="1h"]');
    await page.waitForFunction(() => document.querySelectorAll('#share-link li').length === 2);
    const shared = await page.$$eval('#share-link li', (items) => items.map((i) => i.textContent));
    for (const line of shared) {
      const name = line.slice(0, line.indexOf(': '));
      const got = Buffer.from(await (await fetch(line.slice(line.indexOf('http')))).arrayBuffer());
      assert.equal(sha256(got), sha256(data[name]), name);
    }

    // One box unticked: the select-all box shows a part; delete asks on its own button.
    await page.click('#files input[aria-label="Select Report-a.txt"]');
    assert.equal(await page.$eval('#selection-count', (e) => e.textContent), '1 file selected');
    assert.equal(await page.$eval('#select-all', (e) => e.indeterminate), true);
    await page.click('#files input[aria-label="Select Report-a.txt"]');
    await page.click('#selection-delete');
    assert.equal(await page.$eval('#selection-delete', (e) => e.textContent), 'Really delete 2 files?');
    assert.equal((await names()).length, 2, 'nothing deleted yet');
    await page.click('#selection-delete');
    await page.waitForFunction(() => document.querySelector('#message').textContent === 'Deleted 2 files.');
    assert.equal(await page.$eval('#selection', (e) => e.hidden), true);
    const left = (await (await fetchWithToken(`${server.url}/files?q=report`, token)).json()).files;
    assert.deepEqual(left, []);
    assert.deepEqual(dialogs, []);

    // Dark mode, as the system asks: the same page, still every contrast rule met.
    await clearSearch();
    await listed('zebra.txt');
    await page.click('#files input[aria-label="Select zebra.txt"]');
    await colorScheme(page, 'dark');
    try {
      const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      assert.equal(background, 'rgb(18, 19, 22)');
      assert.deepEqual(await accessibilityProblems(page), []);
      await screenshot(page, 'dark');
    } finally {
      await colorScheme(page, 'light');
      await page.click('#selection-clear');
    }
    assert.equal(await page.$eval('#selection', (e) => e.hidden), true);
    await page.select('#sort', 'created:desc');
  });

  test('upload links: made on the page, used without an account in drop-box mode, revoked', async () => {
    await page.type('#link-note', 'Photos from the trip, please');
    await page.type('#link-files', '2');
    await page.type('#link-types', 'text/plain, image/*');
    await page.click('#new-link button[type=submit]');
    await page.waitForSelector('#new-link-url:not([hidden])');
    const made = await page.$eval('#new-link-url', (e) => e.textContent);
    const url = made.slice(made.indexOf('http'));
    assert.match(url, /\/u\/s3l_/);
    await page.waitForFunction(() => document.querySelector('#links tbody tr td')?.textContent === 'Photos from the trip, please');
    assert.deepEqual(await accessibilityProblems(page), []);
    await screenshot(page, 'upload-links');

    // Someone without an account opens it: no sign-in, the note, the limits.
    const guest = await (await browser.createBrowserContext()).newPage();
    try {
      await guest.setViewport({ width: 900, height: 800 });
      await guest.goto(url, { waitUntil: 'networkidle0' });
      await guest.waitForSelector('#drop-box:not([hidden]) .uppy-Dashboard');
      assert.equal(await guest.$eval('#sign-in', (e) => e.hidden), true);
      assert.equal(await guest.$eval('#drop-box-note', (e) => e.textContent), 'Photos from the trip, please');
      assert.match(await guest.$eval('#drop-box-limits', (e) => e.textContent), /2 more file\(s\); types: text\/plain, image\/\*/);
      assert.deepEqual(await accessibilityProblems(guest), []);
      // Text, as the link's types ask (the service decides by the bytes).
      const sent = { path: join(stack.dir, 'from-a-guest.txt'), data: Buffer.from('Sent without an account.\n'.repeat(60)) };
      writeFileSync(sent.path, sent.data);
      await (await guest.waitForSelector('.uppy-Dashboard-input')).uploadFile(sent.path);
      await guest.click('.uppy-StatusBar-actionBtn--upload');
      await guest.waitForSelector('#drop-box-sent:not([hidden])', { timeout: 30000 });
      assert.match(await guest.$eval('#drop-box-sent', (e) => e.textContent), /from-a-guest\.txt/);
      await guest.waitForFunction(() => document.querySelector('#drop-box-limits').textContent.includes('1 more file(s)'));
      await screenshot(guest, 'drop-box');
      await colorScheme(guest, 'dark');
      assert.deepEqual(await accessibilityProblems(guest), []);
      await screenshot(guest, 'drop-box-dark');
      const owned = await (await fetchWithToken(`${server.url}/files`, token)).json();
      const received = owned.files.find((f) => f.file_name === 'from-a-guest.txt');
      assert.ok(received?.upload_link, 'the file is the owner\'s, marked with the link');
      assert.equal(received.sha256, sha256(sent.data));
    } finally {
      await guest.browserContext().close();
    }

    // The owner sees what came in, and revokes it (two clicks); its URL then says so.
    await page.reload({ waitUntil: 'networkidle0' });
    await page.waitForFunction(() => document.querySelector('#links tbody tr td:nth-child(2)')?.textContent.startsWith('1 of 2'));
    const revoke = await page.waitForSelector('#links tbody tr button');
    await revoke.click();
    await revoke.click();
    await page.waitForFunction(() => document.querySelector('#links tbody tr td:nth-child(3)')?.textContent === 'revoked');
    const gone = await fetch(url);
    assert.equal(gone.status, 410);
    assert.match(await gone.text(), /no longer works/);
  });

  test('sign in with a JWT from the app\'s identity provider, and upload with it', async () => {
    const provider = await new Provider().start();
    const kid = await provider.addKey('ES256');
    const jwtServer = await new Server(stack, {
      env: { S3UP_JWT_ISSUER: provider.issuer, S3UP_JWT_AUDIENCE: 'uploads' },
    }).start();
    const tab = await browser.newPage();
    try {
      const jwt = await provider.token(kid, { sub: 'jwt-person' });
      await tab.goto(jwtServer.url, { waitUntil: 'networkidle0' });
      await tab.type('#token', jwt);
      await tab.click('#sign-in button[type=submit]');
      await tab.waitForSelector('#workspace:not([hidden]) .uppy-Dashboard');
      assert.match(await tab.$eval('#who', (e) => e.textContent), /Signed in as jwt-person/);
      const [picked] = files(['by-jwt.txt', 3000, 9]);
      await (await tab.waitForSelector('.uppy-Dashboard-input')).uploadFile(picked.path);
      await tab.click('.uppy-StatusBar-actionBtn--upload');
      await tab.waitForFunction(() => [...document.querySelectorAll('#files tbody tr td.name')]
        .some((c) => c.textContent === 'by-jwt.txt'), { timeout: 30000 });
      const mine = await (await fetchWithToken(`${jwtServer.url}/files`, jwt)).json();
      assert.equal(mine.files.find((f) => f.file_name === 'by-jwt.txt')?.sha256, sha256(picked.data));
    } finally {
      await tab.close();
      await jwtServer.stop();
      await provider.stop();
    }
  });

  test('an upload the app\'s pre-upload hook refuses: its message on the page, nothing stored', async () => {
    const secret = newSecret();
    const receiver = await new Receiver(secret).start();
    receiver.decide = () => ({ allow: false, status: 403, message: 'Uploads are closed on Sundays.' });
    const hooked = await new Server(stack, {
      env: { S3UP_PRE_UPLOAD_HOOK_URL: receiver.hookUrl, S3UP_WEBHOOK_SECRET: secret },
    }).start();
    const tab = await browser.newPage();
    try {
      await tab.goto(hooked.url, { waitUntil: 'networkidle0' });
      await tab.type('#token', token);
      await tab.click('#sign-in button[type=submit]');
      await tab.waitForSelector('#workspace:not([hidden]) .uppy-Dashboard');
      const before = (await (await fetchWithToken(`${hooked.url}/files`, token)).json()).files.length;
      const [picked] = files(['on-a-sunday.txt', 2000, 11]);
      await (await tab.waitForSelector('.uppy-Dashboard-input')).uploadFile(picked.path);
      await tab.click('.uppy-StatusBar-actionBtn--upload');
      await tab.waitForSelector('#upload-error:not([hidden])', { timeout: 30000 });
      assert.match(await tab.$eval('#upload-error', (e) => e.textContent), /on-a-sunday\.txt: Uploads are closed on Sundays\./);
      assert.equal(receiver.questions.at(-1).file_name, 'on-a-sunday.txt');
      assert.equal(receiver.questions.at(-1).source, 'tus');
      await screenshot(tab, 'refused-by-hook');
      assert.equal((await (await fetchWithToken(`${hooked.url}/files`, token)).json()).files.length, before);
    } finally {
      await tab.close();
      await hooked.stop();
      await receiver.stop();
    }
  });

  test('on a phone-sized screen, by keyboard alone: sign in, nothing scrolls sideways, every action is reachable', async () => {
    const narrow = await browser.newPage();  // a new tab: sessionStorage is per tab, so signed out
    try {
      await narrow.setViewport({ width: 360, height: 740 });
      await narrow.goto(server.url, { waitUntil: 'networkidle0' });
      const focused = () => narrow.evaluate(() => {
        const e = document.activeElement;
        return e ? (e.getAttribute('aria-label') || e.id || e.textContent.trim()) : '';
      });
      for (let i = 0; i < 10 && (await focused()) !== 'token'; i += 1) await narrow.keyboard.press('Tab');
      assert.equal(await focused(), 'token', 'Tab reaches the token field');
      await narrow.keyboard.type(token);
      await narrow.keyboard.press('Enter');
      await narrow.waitForSelector('#workspace:not([hidden]) .uppy-Dashboard');
      await narrow.waitForSelector('#files tbody tr');
      const overflow = await narrow.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
      await screenshot(narrow, 'narrow');
      const name = await narrow.$eval('#files tbody tr td.name', (c) => c.textContent);
      const reached = new Set();
      for (let i = 0; i < 80; i += 1) {
        await narrow.keyboard.press('Tab');
        reached.add(await focused());
      }
      for (const label of ['sign-out', `Download ${name}`, `Share ${name}`, `Delete ${name}`]) {
        assert.ok(reached.has(label), `Tab never reaches "${label}": ${[...reached].join(' | ')}`);
      }
    } finally {
      await narrow.close();
    }
  });
});

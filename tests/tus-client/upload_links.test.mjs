// Upload links against the real binary: made, listed and revoked by their
// owner; used by curl -T and tus-js-client without an account; each limit
// refused at its edge, across two instances too; nothing but uploading
// possible through one. And download links with a lifetime and a disposition.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tus from 'tus-js-client';
import { MiB, Stack, Server, content, sha256, download } from './harness.mjs';

const bearer = (token) => ({ Authorization: `Bearer ${token}` });
const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6300010000050001' +
  '0d0a2db40000000049454e44ae426082', 'hex');

async function json(res) {
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text.startsWith('{') ? JSON.parse(text) : text };
}

async function makeLink(server, token, spec) {
  const res = await json(await fetch(`${server.url}/upload-links`, {
    method: 'POST', headers: { ...bearer(token), 'Content-Type': 'application/json' }, body: JSON.stringify(spec),
  }));
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body;
}

const linkToken = (link) => link.url.slice(link.url.lastIndexOf('/') + 1);

async function putThrough(link, name, data, init = {}) {
  return json(await fetch(`${link.url}/${encodeURIComponent(name)}`, { method: 'PUT', body: data, ...init }));
}

function tusThrough(server, link, data, name) {
  return new Promise((resolve, reject) => {
    const u = new tus.Upload(data, {
      endpoint: `${server.url}/upload/resumable`,
      headers: bearer(linkToken(link)),
      chunkSize: 2 * MiB,
      metadata: { filename: name },
      storeFingerprintForResuming: false,
      onSuccess: () => resolve(u),
      onError: reject,
    });
    u.start();
  });
}

describe('upload links (local disk, SQLite)', () => {
  let stack;
  let server;
  let owner;
  before(async () => {
    stack = await new Stack('local').init();
    owner = stack.token('owner');
    server = await new Server(stack).start();
  });
  after(async () => {
    await server?.stop();
    await stack?.close();
  });

  test('made and listed by their owner; the URL only once; bad requests refused', async () => {
    const link = await makeLink(server, owner, {
      expires_in: '1h', max_files: 3, max_bytes: '2MiB', allowed_types: ['text/plain', 'image/*'], note: 'Logs, please',
    });
    assert.match(link.id, /^lnk_[0-9a-f]{16}$/);
    assert.match(link.url, new RegExp(`^${server.url}/u/s3l_[A-Za-z0-9_-]{43}$`));
    assert.deepEqual([link.max_files, link.max_bytes, link.allowed_types, link.note, link.files, link.bytes],
      [3, 2 * MiB, ['text/plain', 'image/*'], 'Logs, please', 0, 0]);
    const lifetime = Date.parse(link.expires_at) - Date.parse(link.created_at);
    assert.ok(Math.abs(lifetime - 3600e3) < 2000);
    const listed = await json(await fetch(`${server.url}/upload-links`, { headers: bearer(owner) }));
    assert.equal(listed.body.links[0].id, link.id);
    assert.ok(!JSON.stringify(listed.body).includes(linkToken(link)), 'the link secret in the list');
    // The default lifetime is 7 days.
    const plain = await makeLink(server, owner, {});
    assert.ok(Math.abs(Date.parse(plain.expires_at) - Date.parse(plain.created_at) - 7 * 86400e3) < 2000);
    for (const bad of [{ expires_in: '31d' }, { expires_in: 0 }, { max_files: 0 }, { max_bytes: -5 },
      { allowed_types: ['not a type'] }, { allowed_types: [5] }, { note: 'a\u0000b' }, { notes: 'typo' }]) {
      const res = await fetch(`${server.url}/upload-links`, { method: 'POST', headers: bearer(owner), body: JSON.stringify(bad) });
      assert.equal(res.status, 400, JSON.stringify(bad));
    }
  });

  test('curl -T and tus-js-client upload through it, into the owner\'s account', async () => {
    const link = await makeLink(server, owner, { note: 'anything' });
    const file = join(stack.dir, 'from-curl.txt');
    writeFileSync(file, 'uploaded with curl -T\n');
    const out = execFileSync('curl', ['-sS', '-w', '\n%{http_code}', '-T', file, `${link.url}/`], { encoding: 'utf8' });
    assert.match(out, /\n201$/, out);
    const data = content(5 * MiB, 'through a link');
    await tusThrough(server, link, data, 'from-tus.bin');
    const files = await json(await fetch(`${server.url}/files`, { headers: bearer(owner) }));
    const byName = Object.fromEntries(files.body.files.map((f) => [f.file_name, f]));
    assert.equal(byName['from-curl.txt'].upload_link, link.id);
    assert.equal(byName['from-tus.bin'].upload_link, link.id);
    assert.equal(sha256(await download(server, owner, byName['from-tus.bin'].file_id)), sha256(data));
    const info = await json(await fetch(`${link.url}/info`));
    assert.equal(info.status, 200);
    assert.equal(info.body.note, 'anything');
    assert.equal(info.body.files_left, null);
    const listed = await json(await fetch(`${server.url}/upload-links`, { headers: bearer(owner) }));
    const counted = listed.body.links.find((l) => l.id === link.id);
    assert.equal(counted.files, 2);
  });

  test('each limit at its edge: files, bytes, types, a length it must know', async () => {
    const files = await makeLink(server, owner, { max_files: 2 });
    assert.equal((await putThrough(files, 'one.txt', 'one')).status, 201);
    assert.equal((await putThrough(files, 'two.txt', 'two')).status, 201);
    const third = await putThrough(files, 'three.txt', 'three');
    assert.equal(third.status, 403);
    assert.match(third.body.error.message, /no more files/);

    const bytes = await makeLink(server, owner, { max_bytes: 1000 });
    assert.equal((await putThrough(bytes, 'a.bin', Buffer.alloc(600))).status, 201);
    const over = await putThrough(bytes, 'b.bin', Buffer.alloc(401));
    assert.equal(over.status, 413);
    assert.match(over.body.error.message, /400 left/);
    assert.equal((await putThrough(bytes, 'c.bin', Buffer.alloc(400))).status, 201);
    assert.equal((await putThrough(bytes, 'd.bin', Buffer.alloc(1))).status, 413);
    // A body of unknown length cannot be held to a byte limit.
    const chunked = await putThrough(await makeLink(server, owner, { max_bytes: 1000 }), 'e.bin',
      new ReadableStream({ start(c) { c.enqueue(new Uint8Array(10)); c.close(); } }), { duplex: 'half' });
    assert.equal(chunked.status, 411);

    const types = await makeLink(server, owner, { allowed_types: 'text/plain', max_files: 1 });
    const png = await putThrough(types, 'picture.txt', PNG);
    assert.equal(png.status, 415);
    // A refused upload gives its file back: the one allowed is still there.
    assert.equal((await putThrough(types, 'notes.txt', 'plain text\n')).status, 201);
  });

  test('it only uploads: nothing listed, read, deleted or made through it', async () => {
    const link = await makeLink(server, owner, {});
    const token = linkToken(link);
    const mine = await json(await fetch(`${server.url}/upload/mine.txt`, { method: 'PUT', headers: bearer(owner), body: 'mine' }));
    const id = mine.body.file_id;
    for (const [method, path] of [['GET', '/files'], ['GET', `/files/${id}`], ['GET', `/files/${id}/content`],
      ['DELETE', `/files/${id}`], ['POST', `/files/${id}/link`], ['GET', '/api/config'], ['GET', '/upload-links'],
      ['POST', '/upload-links'], ['PUT', '/upload/x.txt'], ['GET', '/admin/users']]) {
      const res = await fetch(`${server.url}${path}`, { method, headers: bearer(token), body: method === 'PUT' ? 'x' : undefined });
      assert.equal(res.status, 403, `${method} ${path}`);
    }
    // A tus upload its owner made directly is not the link's to see.
    const created = await fetch(`${server.url}/upload/resumable`, {
      method: 'POST', headers: { ...bearer(owner), 'Tus-Resumable': '1.0.0', 'Upload-Length': '10' },
    });
    const location = created.headers.get('location');
    const head = await fetch(location, { method: 'HEAD', headers: { ...bearer(token), 'Tus-Resumable': '1.0.0' } });
    assert.equal(head.status, 404);
  });

  test('revoked, expired and unknown links: 410 or 404, with a page that says so', async () => {
    const revoked = await makeLink(server, owner, {});
    assert.equal((await fetch(`${server.url}/upload-links/${revoked.id}`, { method: 'DELETE', headers: bearer(owner) })).status, 204);
    assert.equal((await fetch(`${server.url}/upload-links/${revoked.id}`, { method: 'DELETE', headers: bearer(owner) })).status, 404);
    assert.equal((await putThrough(revoked, 'late.txt', 'x')).status, 410);
    const page = await fetch(revoked.url);
    assert.equal(page.status, 410);
    assert.match(await page.text(), /was revoked/);
    const tusCreate = await fetch(`${server.url}/upload/resumable`, {
      method: 'POST', headers: { ...bearer(linkToken(revoked)), 'Tus-Resumable': '1.0.0', 'Upload-Length': '1' },
    });
    assert.equal(tusCreate.status, 410);

    const expiring = await makeLink(server, owner, { expires_in: 1 });
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await putThrough(expiring, 'late.txt', 'x')).status, 410);
    const expiredPage = await fetch(expiring.url);
    assert.equal(expiredPage.status, 410);
    assert.match(await expiredPage.text(), /has expired/);

    const unknown = `${server.url}/u/s3l_${'A'.repeat(43)}`;
    assert.equal((await fetch(unknown)).status, 404);
    assert.equal((await fetch(`${unknown}/x.txt`, { method: 'PUT', body: 'x' })).status, 404);
    // Another owner cannot revoke it.
    const other = stack.token('other-owner');
    const live = await makeLink(server, owner, {});
    assert.equal((await fetch(`${server.url}/upload-links/${live.id}`, { method: 'DELETE', headers: bearer(other) })).status, 404);
    assert.equal((await putThrough(live, 'still.txt', 'x')).status, 201);
  });

  test('the page at the link\'s URL is the web page', async () => {
    const link = await makeLink(server, owner, {});
    const res = await fetch(link.url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/html/);
    assert.match(res.headers.get('content-security-policy'), /default-src 'none'/);
  });

  test('download links: a chosen lifetime, inline for types a browser shows safely', async () => {
    const text = await json(await fetch(`${server.url}/upload/note.txt`, { method: 'PUT', headers: { ...bearer(owner), 'Content-Type': 'text/plain' }, body: 'hello\n' }));
    const html = await json(await fetch(`${server.url}/upload/page.html`, { method: 'PUT', headers: { ...bearer(owner), 'Content-Type': 'text/html' }, body: '<script>alert(1)</script>' }));
    const linkFor = async (id, spec) => json(await fetch(`${server.url}/files/${id}/link`, { method: 'POST', headers: bearer(owner), body: JSON.stringify(spec) }));
    const day = await linkFor(text.body.file_id, { expires_in: '1d', disposition: 'inline' });
    assert.equal(day.status, 200);
    assert.equal(day.body.expires_in, 86400);
    assert.equal(day.body.disposition, 'inline');
    const shown = await fetch(day.body.url);
    assert.match(shown.headers.get('content-disposition'), /^inline; filename="note.txt"/);
    // The disposition is signed: taking it off (or changing it) breaks the link.
    assert.equal((await fetch(day.body.url.replace('&disposition=inline', ''))).status, 403);
    assert.equal((await fetch(day.body.url.replace('disposition=inline', 'disposition=attachment'))).status, 403);
    // HTML is never shown inline, whatever the link asks.
    const page = await linkFor(html.body.file_id, { disposition: 'inline' });
    assert.match((await fetch(page.body.url)).headers.get('content-disposition'), /^attachment/);
    // Without a body: the default lifetime, saved.
    const plain = await linkFor(text.body.file_id, undefined);
    assert.equal(plain.body.expires_in, 300);
    assert.match((await fetch(plain.body.url)).headers.get('content-disposition'), /^attachment/);
    assert.equal((await linkFor(text.body.file_id, { expires_in: '8d' })).status, 400);
    assert.equal((await linkFor(text.body.file_id, { disposition: 'download' })).status, 400);
  });
});

describe('one upload link, two instances (radosgw, PostgreSQL)', () => {
  let stack;
  let servers = [];
  let owner;
  before(async () => {
    stack = await new Stack('s3').init();
    owner = stack.token('owner');
    servers = [await new Server(stack).start(), await new Server(stack).start()];
  });
  after(async () => {
    for (const s of servers) await s.stop();
    await stack?.close();
  });

  test('concurrent uploads through it never pass its file count or byte total', async () => {
    const byCount = await makeLink(servers[0], owner, { max_files: 5 });
    const byBytes = await makeLink(servers[0], owner, { max_bytes: 10 * 1024 });
    const tokenOf = (l) => linkToken(l);
    const attempt = (link, i) => fetch(`${servers[i % 2].url}/u/${tokenOf(link)}/f${i}.bin`, {
      method: 'PUT', body: content(1024, `${link.id} ${i}`),
    }).then((r) => r.status);
    const counts = await Promise.all(Array.from({ length: 20 }, (_, i) => attempt(byCount, i)));
    assert.equal(counts.filter((s) => s === 201).length, 5, counts.join(' '));
    assert.ok(counts.every((s) => s === 201 || s === 403), counts.join(' '));
    const sized = await Promise.all(Array.from({ length: 20 }, (_, i) => attempt(byBytes, i)));
    assert.equal(sized.filter((s) => s === 201).length, 10, sized.join(' '));
    const files = await json(await fetch(`${servers[1].url}/files?limit=100`, { headers: bearer(owner) }));
    assert.equal(files.body.files.filter((f) => f.upload_link === byCount.id).length, 5);
    assert.equal(files.body.files.filter((f) => f.upload_link === byBytes.id).length, 10);
  });

  test('a rate limit per link', async () => {
    const limited = await new Server(stack, { env: { S3UP_RATE_LIMIT: '0.1', S3UP_RATE_LIMIT_BURST: '2' } }).start();
    servers.push(limited);
    const link = await makeLink(limited, owner, {});
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await putThrough({ url: `${limited.url}/u/${linkToken(link)}` }, `r${i}.txt`, 'r')).status);
    assert.deepEqual(statuses.slice(0, 2), [201, 201]);
    assert.equal(statuses[2], 429);
  });
});

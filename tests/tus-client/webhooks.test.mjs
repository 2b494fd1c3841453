// Webhooks against the real binary: every event, signed as Standard Webhooks
// says and checked with the `standardwebhooks` package; retried with the same
// webhook-id through failures, timeouts and a receiver that is away; dead
// after webhook_max_age; an endpoint disabled by 410; never lost to a kill -9;
// and on radosgw + PostgreSQL, two instances delivering each event once.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as tus from 'tus-js-client';
import { Stack, Server, content, eventually, fetchWithToken } from './harness.mjs';
import { Receiver, newSecret } from './receiver.mjs';

const bearer = (token) => ({ Authorization: `Bearer ${token}` });

async function put(server, token, name, data) {
  const res = await fetchWithToken(`${server.url}/upload/${encodeURIComponent(name)}`, token, { method: 'PUT', body: data });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  return body.file_id;
}

function tusUpload(server, token, data, metadata) {
  return new Promise((resolve, reject) => {
    const u = new tus.Upload(data, {
      endpoint: `${server.url}/upload/resumable`,
      headers: bearer(token),
      metadata,
      storeFingerprintForResuming: false,
      onSuccess: () => resolve(u.url.slice(u.url.lastIndexOf('/') + 1)),
      onError: reject,
    });
    u.start();
  });
}

function hookEnv(receiver, secret, extra = {}) {
  return { S3UP_WEBHOOK_URLS: receiver.url, S3UP_WEBHOOK_SECRET: secret, ...extra };
}

describe('webhooks (local disk, SQLite)', () => {
  let stack;
  let receiver;
  let server;
  let token;
  const secret = newSecret();
  before(async () => {
    stack = await new Stack('local').init();
    receiver = await new Receiver(secret).start();
    server = await new Server(stack, { env: hookEnv(receiver, secret) }).start();
    token = stack.token('alice');
  });
  after(async () => {
    await server?.stop();
    await receiver?.stop();
    await stack?.close();
  });

  test('every event arrives, verified, with the file as GET /files/{id} shows it', async () => {
    const id = await put(server, token, 'report.pdf', 'a report');
    assert.ok(await eventually(() => receiver.of('upload.completed', id).length === 1), server.log);
    const [created] = receiver.of('upload.created', id);
    const [completed] = receiver.of('upload.completed', id);
    assert.ok(created && created.at <= completed.at, 'created before completed');
    const file = await (await fetchWithToken(`${server.url}/files/${id}`, token)).json();
    const { user_name: userName, metadata, ...data } = completed.data;
    assert.deepEqual(data, file);
    assert.equal(userName, 'alice');
    assert.deepEqual(metadata, {});
    assert.equal(created.data.status, 'pending');
    assert.match(completed.headers['user-agent'], /^s3uploader\/\d/);
    assert.equal(completed.headers['content-type'], 'application/json');
    assert.match(completed.id, /^msg_/);
    assert.notEqual(created.id, completed.id);

    // tus, with its metadata; then deleted.
    const tusId = await tusUpload(server, token, content(300 * 1024, 'webhook tus'), { filename: 'tus.bin', album: 'Été' });
    assert.ok(await eventually(() => receiver.of('upload.completed', tusId).length === 1), server.log);
    assert.deepEqual(receiver.of('upload.completed', tusId)[0].data.metadata, { filename: 'tus.bin', album: 'Été' });
    assert.equal((await fetchWithToken(`${server.url}/files/${tusId}`, token, { method: 'DELETE' })).status, 204);
    assert.ok(await eventually(() => receiver.of('upload.deleted', tusId).length === 1), server.log);
    assert.equal(receiver.of('upload.deleted', tusId)[0].data.file_name, 'tus.bin');

    // An unfinished tus upload ended by its client: failed, no deleted (it was never a file).
    const created2 = await fetch(`${server.url}/upload/resumable`, {
      method: 'POST', headers: { ...bearer(token), 'Tus-Resumable': '1.0.0', 'Upload-Length': '100' },
    });
    assert.equal(created2.status, 201);
    const url = new URL(created2.headers.get('location'), server.url).href;
    const unfinished = url.slice(url.lastIndexOf('/') + 1);
    assert.equal((await fetch(url, { method: 'DELETE', headers: { ...bearer(token), 'Tus-Resumable': '1.0.0' } })).status, 204);
    assert.ok(await eventually(() => receiver.of('upload.failed', unfinished).length === 1), server.log);
    assert.equal(receiver.of('upload.deleted', unfinished).length, 0);

    // Through an upload link: upload_link.used beside upload.completed.
    const link = await (await fetch(`${server.url}/upload-links`, {
      method: 'POST', headers: { ...bearer(token), 'Content-Type': 'application/json' }, body: JSON.stringify({ note: 'x' }),
    })).json();
    const sent = await (await fetch(`${link.url}/from-a-guest.txt`, { method: 'PUT', body: 'hello' })).json();
    assert.ok(await eventually(() => receiver.of('upload_link.used', sent.file_id).length === 1), server.log);
    assert.equal(receiver.of('upload_link.used', sent.file_id)[0].data.upload_link, link.id);
    assert.deepEqual(receiver.invalid, []);
    assert.equal(receiver.duplicates(), 0);
  });

  // A stack and a server of its own, so no other instance delivers its events.
  async function alone(extraEnv, body) {
    const own = await new Stack('local').init();
    const ownServer = await new Server(own, { env: hookEnv(receiver, secret, extraEnv) }).start();
    try {
      await body(ownServer, own.token('carol'), own);
    } finally {
      receiver.answer = () => 204;
      await ownServer.stop();
      await own.close();
    }
  }

  test('a 500 and a timeout are tried again with the same webhook-id, and the event arrives once', async () => {
    await alone({ S3UP_WEBHOOK_TIMEOUT: '1s', S3UP_WEBHOOK_EVENTS: 'upload.completed' }, async (timed, carol) => {
      receiver.answer = (attempt) => (attempt.n === 1 ? 500 : attempt.n === 2 ? 'stall' : 204);
      const id = await put(timed, carol, 'flaky.txt', 'x');
      // 5 s after the 500, 10 s after the timeout (each ±20 %).
      assert.ok(await eventually(() => receiver.of('upload.completed', id).length === 1, 40000), timed.log);
      const eventId = receiver.of('upload.completed', id)[0].id;
      assert.equal(receiver.attempts.filter((a) => a.id === eventId).length, 3);
      assert.match(timed.log, /failed \(attempt 1\): HTTP 500/);
      assert.match(timed.log, /failed \(attempt 2\): Timeout/i);
      assert.equal(receiver.of('upload.created', id).length, 0, 'only the events asked for');
    });
  });

  test('never lost: killed after the 201 with the receiver away, the event arrives after a restart', async () => {
    await receiver.stop();
    const id = await put(server, token, 'kill-9.txt', 'x');
    await new Promise((r) => setTimeout(r, 300));  // a delivery was tried and refused
    await server.kill();
    await receiver.start();
    await server.restart();
    assert.ok(await eventually(() => receiver.of('upload.completed', id).length === 1, 30000), server.log);
    assert.equal(receiver.duplicates(), 0);
  });

  test('a receiver away for 20 s gets the event when it is back; one whose answer was lost gets it twice, same id', async () => {
    await alone({ S3UP_WEBHOOK_EVENTS: 'upload.completed' }, async (hooked, carol) => {
      await receiver.stop();
      const id = await put(hooked, carol, 'while-away.txt', 'x');
      await new Promise((r) => setTimeout(r, 20000));
      assert.equal(receiver.of('upload.completed', id).length, 0);
      await receiver.start();
      // Tried at 0, 5, 15 and 35 s, each wait ±20 %: the third by 18 s, the
      // fourth between 28 and 42 s, so the fourth finds it. (Away for 30 s,
      // the fourth could come a moment too early, and the fifth only at
      // 60-90 s: a CI run saw that.)
      assert.ok(await eventually(() => receiver.of('upload.completed', id).length === 1, 30000), hooked.log);
      assert.match(hooked.log, /Couldn't connect|Connection refused/i);

      const before = receiver.duplicates();
      receiver.answer = (attempt) => (attempt.n === 1 ? 'lost' : 204);
      const lost = await put(hooked, carol, 'answer-lost.txt', 'x');
      assert.ok(await eventually(() => receiver.of('upload.completed', lost).length === 2, 20000), hooked.log);
      const [first, second] = receiver.of('upload.completed', lost);
      assert.equal(first.id, second.id, 'the same webhook-id: the receiver can tell');
      assert.equal(receiver.duplicates(), before + 1, 'a duplicate only where an answer was lost');
    });
  });

  test('dead after webhook_max_age; listed, and sent again when an operator says so', async () => {
    await alone({ S3UP_WEBHOOK_MAX_AGE: '3s', S3UP_WEBHOOK_EVENTS: 'upload.completed' }, async (short, carol, own) => {
      receiver.answer = () => 503;
      const id = await put(short, carol, 'never.txt', 'x');
      assert.ok(await eventually(() => /is dead after \d+ attempt/.test(short.log), 20000), short.log);
      // The CLI and the admin API both see it.
      const listed = own.cli(['webhook', 'list', '--status', 'dead']);
      assert.match(listed, /upload\.completed\s+dead\s+1/);
      assert.match(listed, /HTTP 503/);
      own.cli(['user', 'add', 'root', '--admin']);
      const root = own.cli(['token', 'create', 'root']).trim();
      const api = await (await fetchWithToken(`${short.url}/admin/webhooks?status=dead`, root)).json();
      assert.equal(api.deliveries.length, 1);
      assert.equal(api.deliveries[0].file_id, id);
      assert.equal(api.deliveries[0].last_error, 'HTTP 503');
      assert.equal((await fetchWithToken(`${short.url}/admin/webhooks`, carol)).status, 403, 'admins only');
      receiver.answer = () => 204;
      const retried = await fetchWithToken(`${short.url}/admin/webhooks/retry`, root, { method: 'POST', body: '{"dead": true}' });
      assert.deepEqual(await retried.json(), { retried: 1 });
      assert.ok(await eventually(() => receiver.of('upload.completed', id).length === 1, 10000), short.log);
      assert.match(own.cli(['webhook', 'retry', '--dead']), /^0 deliveries are due again/);
    });
  });

  test('a 410 disables the endpoint: nothing more is sent to it', async () => {
    await alone({}, async (gone, carol, own) => {
      receiver.answer = () => 410;
      const before = receiver.attempts.length;
      await put(gone, carol, 'gone.txt', 'x');
      assert.ok(await eventually(() => /answered 410 Gone/.test(gone.log), 20000), gone.log);
      const after = await put(gone, carol, 'after-gone.txt', 'x');
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(receiver.attempts.length, before + 1, 'one request, the one answered 410');
      // An operator enables it: what waited goes out.
      receiver.answer = () => 204;
      assert.match(own.cli(['webhook', 'list']), /disabled since .*410 Gone/);
      own.cli(['webhook', 'enable', receiver.url]);
      assert.ok(await eventually(() => receiver.of('upload.completed', after).length === 1, 30000), gone.log);
    });
  });
});

describe('the pre-upload hook (local disk, SQLite)', () => {
  let stack;
  let receiver;
  let server;
  let token;
  const secret = newSecret();
  before(async () => {
    stack = await new Stack('local').init();
    receiver = await new Receiver(secret).start();
    server = await new Server(stack, {
      env: { S3UP_PRE_UPLOAD_HOOK_URL: receiver.hookUrl, S3UP_WEBHOOK_SECRET: secret, S3UP_PRE_UPLOAD_HOOK_TIMEOUT: '1s' },
    }).start();
    token = stack.token('dave', { quota: '1MiB' });
  });
  after(async () => {
    await server?.stop();
    await receiver?.stop();
    await stack?.close();
  });
  const used = async () => (await (await fetchWithToken(`${server.url}/api/config`, token)).json()).quota.used;
  const files = async () => (await (await fetchWithToken(`${server.url}/files`, token)).json()).files;

  test('asked before every upload, signed, with what is known; it may rename and add metadata', async () => {
    receiver.decide = (q) => (q.file_name === 'rename-me.txt' ? { allow: true, file_name: 'renamed.txt' } : { allow: true });
    const putId = await put(server, token, 'rename-me.txt', 'abc');
    const renamed = await (await fetchWithToken(`${server.url}/files/${putId}`, token)).json();
    assert.equal(renamed.file_name, 'renamed.txt');
    const q = receiver.questions.at(-1);
    assert.deepEqual({ ...q, headers: undefined, request_id: undefined }, {
      user: { id: q.user.id, name: 'dave' }, file_name: 'rename-me.txt', declared_type: 'text/plain;charset=UTF-8', length: 3, metadata: {},
      source: 'put', client_ip: '127.0.0.1', headers: undefined, request_id: undefined,
    });
    assert.match(q.request_id, /^[0-9a-f]{16}$/);

    const form = new FormData();
    form.append('file', new Blob(['posted'], { type: 'text/plain' }), 'posted.txt');
    const posted = await fetchWithToken(`${server.url}/upload`, token, { method: 'POST', body: form });
    assert.equal(posted.status, 201);
    assert.equal(receiver.questions.at(-1).source, 'form');
    assert.equal(receiver.questions.at(-1).declared_type, 'text/plain');
    assert.equal(receiver.questions.at(-1).length, null, 'a form file\'s length is not known before its bytes');

    receiver.decide = () => ({ allow: true, metadata: { project: 'apollo' } });
    const tusId = await tusUpload(server, token, content(1000, 'hooked tus'), { filename: 'tus.bin' });
    assert.equal(receiver.questions.at(-1).source, 'tus');
    assert.deepEqual(receiver.questions.at(-1).metadata, { filename: 'tus.bin' });
    const head = await fetch(`${server.url}/upload/resumable/${tusId}`, { method: 'HEAD', headers: { ...bearer(token), 'Tus-Resumable': '1.0.0' } });
    assert.match(head.headers.get('upload-metadata'), /project YXBvbGxv/);

    const link = await (await fetch(`${server.url}/upload-links`, {
      method: 'POST', headers: { ...bearer(token), 'Content-Type': 'application/json' }, body: '{}',
    })).json();
    assert.equal((await fetch(`${link.url}/guest.txt`, { method: 'PUT', body: 'g' })).status, 201);
    assert.equal(receiver.questions.at(-1).source, 'link');
    assert.deepEqual(receiver.invalid, []);
  });

  test('a refusal reaches curl, a raw request and tus-js-client with its status and message; nothing is kept', async () => {
    const before = { used: await used(), files: (await files()).length };
    for (const status of [403, 413, 415, 422]) {
      receiver.decide = () => ({ allow: false, status, message: `not this one (${status})` });
      const res = await fetchWithToken(`${server.url}/upload/refused.txt`, token, { method: 'PUT', body: 'x' });
      assert.equal(res.status, status);
      const body = await res.json();
      assert.equal(body.error.message, `not this one (${status})`);
      // curl -T, as a person would (asynchronously: the hook answers from this process).
      const curl = await promisify(execFile)('curl', ['-s', '-w', '\\n%{http_code}', '-T', `${stack.dir}/s3uploader.db`,
        '-H', `Authorization: Bearer ${token}`, `${server.url}/upload/by-curl.txt`]);
      const cut = curl.stdout.lastIndexOf('\n');
      const [answer, code] = [curl.stdout.slice(0, cut), curl.stdout.slice(cut + 1)];
      assert.equal(code, String(status));
      assert.equal(JSON.parse(answer).error.message, `not this one (${status})`);
    }
    receiver.decide = () => ({ allow: false, status: 403, message: 'uploads are closed on Sundays' });
    await assert.rejects(tusUpload(server, token, content(100, 'refused tus'), { filename: 'no.bin' }),
      (e) => /uploads are closed on Sundays/.test(e.message) && /403/.test(e.message));
    assert.equal(await used(), before.used, 'no quota taken');
    assert.equal((await files()).length, before.files, 'no file');
    assert.equal(stack.cli(['config']).includes(secret), false);
  });

  test('a hook that is slow, down or unreadable fails closed with 503, or lets it through when told to', async () => {
    const before = { used: await used(), files: (await files()).length };
    for (const decide of [() => 'stall', () => ({ httpStatus: 500 }), () => ({ httpStatus: 200, body: 'not json' })]) {
      receiver.decide = decide;
      const res = await fetchWithToken(`${server.url}/upload/hook-down.txt`, token, { method: 'PUT', body: 'x' });
      assert.equal(res.status, 503);
      assert.equal((await res.json()).error.code, 'pre_upload_hook_unavailable');
    }
    assert.equal(await used(), before.used);
    assert.equal((await files()).length, before.files);
    const open = await new Server(stack, {
      env: { S3UP_PRE_UPLOAD_HOOK_URL: receiver.hookUrl, S3UP_WEBHOOK_SECRET: secret, S3UP_PRE_UPLOAD_HOOK_TIMEOUT: '1s', S3UP_PRE_UPLOAD_HOOK_FAIL_OPEN: 'true' },
    }).start();
    try {
      receiver.decide = () => ({ httpStatus: 500 });
      await put(open, token, 'let-through.txt', 'x');
      assert.match(open.log, /letting the upload through/);
    } finally {
      receiver.decide = () => ({ allow: true });
      await open.stop();
    }
  });
});

describe('webhooks on radosgw and PostgreSQL, two instances', () => {
  let stack;
  let receiver;
  let servers = [];
  let token;
  const secret = newSecret();
  before(async () => {
    stack = await new Stack('s3').init();
    receiver = await new Receiver(secret).start();
    servers = [await new Server(stack, { env: hookEnv(receiver, secret) }).start(),
      await new Server(stack, { env: hookEnv(receiver, secret) }).start()];
    token = stack.token('bob');
  });
  after(async () => {
    for (const s of servers) await s.stop();
    await receiver?.stop();
    await stack?.close();
  });

  test('1,000 uploads through two instances: 1,000 completed events, none twice', async () => {
    const ids = [];
    const acknowledged = new Map();
    const queue = Array.from({ length: 1000 }, (_, i) => i);
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (queue.length > 0) {
        const i = queue.shift();
        const id = await put(servers[i % 2], token, `small-${i}.txt`, `file ${i}`);
        acknowledged.set(id, Date.now());
        ids.push(id);
      }
    }));
    assert.ok(await eventually(() => receiver.of('upload.completed').length >= 1000, 60000),
      `${receiver.of('upload.completed').length} of 1000\n${servers.map((s) => s.log).join('\n')}`);
    await new Promise((r) => setTimeout(r, 1000));  // anything sent twice would be here by now
    assert.equal(receiver.of('upload.completed').length, 1000);
    assert.equal(receiver.of('upload.created').length, 1000);
    assert.equal(receiver.duplicates(), 0);
    assert.deepEqual(receiver.invalid, []);
    const delays = receiver.of('upload.completed').map((e) => e.at - acknowledged.get(e.data.file_id)).sort((a, b) => a - b);
    console.log(`delay from 201 to delivery: median ${delays[500]} ms, 95th percentile ${delays[950]} ms, max ${delays[999]} ms`);
    assert.equal(stack.psqlValue("SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'"), '0');
  });
});

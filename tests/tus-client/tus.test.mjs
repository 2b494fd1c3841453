// tus-js-client, the client Uppy and most browser uploaders use, against the
// real s3uploader binary: what it sends, what it resumes, what it refuses.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import * as tus from 'tus-js-client';
import { MiB, Stack, Server, content, sha256, head, download, eventually, fetchWithToken } from './harness.mjs';

const retryDelays = [200, 500, 1000, 1000, 2000, 2000, 3000, 3000];

// Runs one upload to its end: resolves with the Upload, rejects with its error.
function upload(data, options) {
  return new Promise((resolve, reject) => {
    const u = new tus.Upload(data, {
      retryDelays,
      storeFingerprintForResuming: false,
      ...options,
      onSuccess: () => resolve(u),
      onError: (e) => reject(e),
    });
    if (options.onCreated) options.onCreated(u);
    u.start();
  });
}

// Starts an upload and aborts it (terminates it, with `terminate`) as soon as
// `stop(bytes, event)` says so, on 'progress' (bytes sent) or 'chunk'
// (bytes the server accepted); resolves with its URL.
function uploadThenStop(data, options, stop, { terminate = false } = {}) {
  return new Promise((resolve, reject) => {
    let stopped = false;
    const check = (event, bytes) => {
      if (stopped || !stop(bytes, event)) return;
      stopped = true;
      u.abort(terminate).then(() => resolve(u.url), reject);
    };
    const u = new tus.Upload(data, {
      storeFingerprintForResuming: false,
      ...options,
      onProgress: (sent) => check('progress', sent),
      onChunkComplete: (_, accepted) => check('chunk', accepted),
      onSuccess: () => reject(new Error('finished before it was stopped')),
      onError: reject,
    });
    u.start();
  });
}

function idOf(url) {
  return url.slice(url.lastIndexOf('/') + 1);
}

const auth = (token) => ({ Authorization: `Bearer ${token}` });

describe('on local disk and SQLite', () => {
  let stack;
  let server;
  let token;
  before(async () => {
    stack = await new Stack('local').init();
    server = await new Server(stack).start();
    token = stack.token('alice');
  });
  after(async () => {
    await server.stop();
    await stack.close();
  });

  test('a 50 MiB upload with non-Latin metadata arrives byte for byte', async () => {
    const data = content(50 * MiB, 1);
    const metadata = { filename: 'отчёт 報告 ✓.bin', filetype: 'application/x-test', title: 'Ελληνικά', owner: 'José' };
    const u = await upload(data, { endpoint: `${server.url}/upload/resumable`, headers: auth(token), metadata });
    const h = await head(u.url, token);
    assert.equal(h.status, 200);
    assert.equal(h.offset, data.length);
    assert.equal(h.headers.get('upload-length'), String(data.length));
    const pairs = Object.fromEntries(h.headers.get('upload-metadata').split(',').map((p) => {
      const [k, v] = p.split(' ');
      return [k, Buffer.from(v, 'base64').toString('utf8')];
    }));
    assert.deepEqual(pairs, metadata);
    const stored = await download(server, token, idOf(u.url));
    assert.equal(sha256(stored), sha256(data));
    const file = await (await fetchWithToken(`${server.url}/files/${idOf(u.url)}`, token)).json();
    assert.equal(file.file_name, metadata.filename);
    assert.equal(file.sha256, sha256(data));
  });

  test('creation-with-upload sends the first chunk in the POST', async () => {
    const data = content(300 * 1024, 2);
    const methods = [];
    const u = await upload(data, {
      endpoint: `${server.url}/upload/resumable`,
      headers: auth(token),
      uploadDataDuringCreation: true,
      metadata: { filename: 'small.bin' },
      onBeforeRequest: (req) => methods.push(req.getMethod()),
    });
    assert.deepEqual(methods, ['POST'], 'one request for a file smaller than a chunk');
    assert.equal(sha256(await download(server, token, idOf(u.url))), sha256(data));
  });

  test('a deferred length, from a Node stream', async () => {
    const data = content(7 * MiB + 5, 3);
    const stream = Readable.from((function* pieces() {
      for (let at = 0; at < data.length; at += 64 * 1024) yield data.subarray(at, at + 64 * 1024);
    })());
    const u = await upload(stream, {
      endpoint: `${server.url}/upload/resumable`,
      headers: auth(token),
      uploadLengthDeferred: true,
      chunkSize: 2 * MiB,
      metadata: { filename: 'streamed.bin' },
    });
    const h = await head(u.url, token);
    assert.equal(h.headers.get('upload-length'), String(data.length));
    assert.equal(sha256(await download(server, token, idOf(u.url))), sha256(data));
  });

  test('resumes after the client aborts at a random point', async () => {
    const data = content(20 * MiB, 4);
    const stopAt = (0.2 + Math.random() * 0.6) * data.length;
    const url = await uploadThenStop(data,
      { endpoint: `${server.url}/upload/resumable`, headers: auth(token), chunkSize: 3 * MiB },
      (sent, event) => event === 'progress' && sent >= stopAt);
    const before = (await head(url, token)).offset;
    assert.ok(before > 0 && before < data.length, `offset ${before}`);
    const sent = [];
    const u = await upload(data, {
      uploadUrl: url,
      headers: auth(token),
      chunkSize: 3 * MiB,
      onBeforeRequest: (req) => sent.push(`${req.getMethod()} ${req.getHeader('Upload-Offset') ?? ''}`.trim()),
    });
    assert.equal(u.url, url);
    assert.equal(sent[0], 'HEAD');
    assert.equal(sent[1], `PATCH ${before}`, 'it goes on from the offset the server kept');
    assert.equal(sha256(await download(server, token, idOf(url))), sha256(data));
  });

  test('chunks of 5 MiB + 1 byte', async () => {
    const data = content(16 * MiB, 5);
    const u = await upload(data, { endpoint: `${server.url}/upload/resumable`, headers: auth(token), chunkSize: 5 * MiB + 1 });
    assert.equal(sha256(await download(server, token, idOf(u.url))), sha256(data));
  });

  test('20 uploads at once', async () => {
    const files = Array.from({ length: 20 }, (_, i) => content(MiB + i * 1000, 100 + i));
    const uploads = await Promise.all(files.map((data, i) => upload(data, {
      endpoint: `${server.url}/upload/resumable`,
      headers: auth(token),
      chunkSize: 256 * 1024,
      metadata: { filename: `file-${i}.bin` },
    })));
    for (let i = 0; i < files.length; i++) {
      assert.equal(sha256(await download(server, token, idOf(uploads[i].url))), sha256(files[i]), `file ${i}`);
    }
  });

  test('a checksum mismatch is 460 and the offset stays; then it succeeds', async () => {
    const data = content(3 * MiB, 6);
    const chunkSize = MiB;
    // A checksum per PATCH, of the chunk the PATCH carries (tus-js-client
    // sends chunkSize bytes from Upload-Offset); the first one is wrong.
    let spoil = true;
    const withChecksums = (req) => {
      if (req.getMethod() !== 'PATCH') return;
      const offset = Number(req.getHeader('Upload-Offset'));
      const chunk = data.subarray(offset, offset + chunkSize);
      const digest = createHash('sha1').update(chunk).digest();
      if (spoil && offset === MiB) digest[0] ^= 1;
      req.setHeader('Upload-Checksum', `sha1 ${digest.toString('base64')}`);
    };
    let first;
    const failure = await upload(data, {
      endpoint: `${server.url}/upload/resumable`,
      headers: auth(token),
      chunkSize,
      onBeforeRequest: withChecksums,
      onCreated: (u) => { first = u; },
    }).then(() => null, (e) => e);
    assert.ok(failure, 'the spoilt chunk fails');
    const url = first.url;
    assert.equal(failure.originalResponse.getStatus(), 460);
    assert.equal((await head(url, token)).offset, MiB, 'the offset did not move');
    spoil = false;
    const u = await upload(data, { uploadUrl: url, headers: auth(token), chunkSize, onBeforeRequest: withChecksums });
    assert.equal(sha256(await download(server, token, idOf(u.url))), sha256(data));
  });

  test('termination removes the upload', async () => {
    const data = content(6 * MiB, 7);
    const url = await uploadThenStop(data,
      { endpoint: `${server.url}/upload/resumable`, headers: auth(token), chunkSize: MiB },
      (sent, event) => event === 'chunk' && sent >= 2 * MiB, { terminate: true });
    assert.equal((await head(url, token)).status, 404);
    assert.deepEqual(await stack.leftovers(idOf(url)), []);
  });

  test('another user\'s token gets 404, and the upload is untouched', async () => {
    const data = content(2 * MiB, 8);
    const url = await uploadThenStop(data,
      { endpoint: `${server.url}/upload/resumable`, headers: auth(token), chunkSize: MiB },
      (_, event) => event === 'chunk');
    const bob = stack.token('bob');
    assert.equal((await head(url, bob)).status, 404);
    // tus-js-client, refused the URL, starts a new upload of bob's own.
    const mine = await upload(data, { uploadUrl: url, endpoint: `${server.url}/upload/resumable`, headers: auth(bob) });
    assert.notEqual(mine.url, url);
    assert.equal((await head(url, token)).offset, MiB);
  });

  test('over max_upload_bytes and over the quota are 413', async () => {
    const limited = await new Server(stack, { env: { S3UP_MAX_UPLOAD_BYTES: '1MiB' } }).start();
    try {
      const big = await upload(content(MiB + 1, 9), { endpoint: `${limited.url}/upload/resumable`, headers: auth(token) })
        .then(() => null, (e) => e);
      assert.equal(big?.originalResponse?.getStatus(), 413);
    } finally {
      await limited.stop();
    }
    const carol = stack.token('carol', { quota: '1MiB' });
    const over = await upload(content(2 * MiB, 10), { endpoint: `${server.url}/upload/resumable`, headers: auth(carol) })
      .then(() => null, (e) => e);
    assert.equal(over?.originalResponse?.getStatus(), 413);
    assert.match(await over.originalResponse.getBody(), /quota/);
  });

  test('resumes after the server is killed with SIGKILL mid-PATCH', async () => {
    const data = content(60 * MiB, 11);
    let killed = false;
    let restarted;
    const u = await upload(data, {
      endpoint: `${server.url}/upload/resumable`,
      headers: auth(token),
      onProgress: (sent) => {
        if (!killed && sent > data.length / 3) {
          killed = true;
          restarted = server.kill('SIGKILL').then(() => server.restart());
        }
      },
    });
    assert.ok(killed);
    await restarted;
    assert.equal(sha256(await download(server, token, idOf(u.url))), sha256(data));
  });

  test('an expired upload leaves nothing behind', async () => {
    const short = await new Server(stack, { env: { S3UP_RESUMABLE_EXPIRY: '2s', S3UP_JANITOR_INTERVAL: '1s' } }).start();
    try {
      const data = content(4 * MiB, 12);
      const url = await uploadThenStop(data,
        { endpoint: `${short.url}/upload/resumable`, headers: auth(token), chunkSize: MiB },
        (_, event) => event === 'chunk');
      assert.notDeepEqual(await stack.leftovers(idOf(url)), []);
      assert.ok(await eventually(async () => (await head(url, token)).status === 404, 15000));
      assert.ok(await eventually(async () => (await stack.leftovers(idOf(url))).length === 0, 10000),
        String(await stack.leftovers(idOf(url))));
    } finally {
      await short.stop();
    }
  });
});

describe('on radosgw and PostgreSQL, two instances', () => {
  let stack;
  let a;
  let b;
  let token;
  before(async () => {
    stack = await new Stack('s3').init();
    [a, b] = await Promise.all([new Server(stack).start(), new Server(stack).start()]);
    token = stack.token('alice');
  });
  after(async () => {
    await Promise.all([a.stop(), b.stop()]);
    await stack.close();
  });

  test('an upload begun on one instance is finished through the other', async () => {
    const data = content(23 * MiB + 11, 20);
    const url = await uploadThenStop(data,
      { endpoint: `${a.url}/upload/resumable`, headers: auth(token), chunkSize: 5 * MiB + 1, metadata: { filename: 'two-instances.bin' } },
      (sent, event) => event === 'chunk' && sent > 10 * MiB);
    const offset = (await head(url, token)).offset;
    assert.ok(offset > 10 * MiB, `offset ${offset}`);
    const elsewhere = url.replace(a.url, b.url);
    const u = await upload(data, { uploadUrl: elsewhere, headers: auth(token), chunkSize: 5 * MiB + 1 });
    assert.equal(u.url, elsewhere);
    assert.equal(sha256(await download(a, token, idOf(url))), sha256(data));
    assert.deepEqual(await stack.leftovers(), [], 'no multipart upload, no tail object');
  });

  test('a 50 MiB upload through the S3 store, checked byte for byte', async () => {
    const data = content(50 * MiB, 21);
    const u = await upload(data, {
      endpoint: `${b.url}/upload/resumable`,
      headers: auth(token),
      chunkSize: 16 * MiB,
      metadata: { filename: 'δεδομένα.bin', filetype: 'application/octet-stream' },
    });
    assert.equal(sha256(await download(a, token, idOf(u.url))), sha256(data));
    const file = await (await fetchWithToken(`${a.url}/files/${idOf(u.url)}`, token)).json();
    assert.equal(file.sha256, sha256(data), 'the whole-file hash carried across chunks');
  });

  test('resumes after an instance is killed with SIGKILL mid-PATCH, through the other', async () => {
    const data = content(40 * MiB, 22);
    let url;
    let killed = false;
    await new Promise((resolve, reject) => {
      const u = new tus.Upload(data, {
        endpoint: `${a.url}/upload/resumable`,
        headers: auth(token),
        retryDelays: [],
        storeFingerprintForResuming: false,
        onProgress: (sent) => {
          if (!killed && sent > 15 * MiB) {
            killed = true;
            url = u.url;
            a.kill('SIGKILL');
          }
        },
        onSuccess: () => reject(new Error('finished before the kill')),
        onError: () => resolve(),
      });
      u.start();
    });
    const elsewhere = url.replace(a.url, b.url);
    const u = await upload(data, { uploadUrl: elsewhere, headers: auth(token) });
    assert.equal(sha256(await download(b, token, idOf(u.url))), sha256(data));
    await a.restart();
  });

  test('an expired upload leaves zero multipart uploads and zero tail objects', async () => {
    const short = await new Server(stack, { env: { S3UP_RESUMABLE_EXPIRY: '2s', S3UP_JANITOR_INTERVAL: '1s' } }).start();
    try {
      const data = content(12 * MiB, 23);
      // Chunks of 7 MiB: a part and a tail.
      const url = await uploadThenStop(data,
        { endpoint: `${short.url}/upload/resumable`, headers: auth(token), chunkSize: 7 * MiB },
        (_, event) => event === 'chunk');
      const left = await stack.leftovers(idOf(url));
      assert.ok(left.some((l) => l.startsWith('multipart')) && left.some((l) => l.startsWith('tail')), String(left));
      assert.ok(await eventually(async () => (await head(url, token)).status === 404, 15000));
      assert.ok(await eventually(async () => (await stack.leftovers(idOf(url))).length === 0, 10000),
        String(await stack.leftovers(idOf(url))));
    } finally {
      await short.stop();
    }
  });
});

describe('over HTTPS (tls_cert), verified against a CA made here', () => {
  let stack;
  let server;
  let token;
  let ca;
  before(async () => {
    stack = await new Stack('local').init();
    const d = stack.dir;
    const openssl = (args) => execFileSync('openssl', args, { stdio: 'pipe' });
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout',
      `${d}/ca.key`, '-out', `${d}/ca.pem`, '-days', '2', '-subj', '/CN=s3uploader tus test CA']);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${d}/server.key`,
      '-out', `${d}/server.csr`, '-subj', '/CN=localhost']);
    writeFileSync(`${d}/ext.cnf`, 'subjectAltName=DNS:localhost\n');
    openssl(['x509', '-req', '-in', `${d}/server.csr`, '-CA', `${d}/ca.pem`, '-CAkey', `${d}/ca.key`, '-CAcreateserial',
      '-out', `${d}/server.crt`, '-days', '2', '-extfile', `${d}/ext.cnf`]);
    ca = readFileSync(`${d}/ca.pem`);
    server = await new Server(stack, { env: { S3UP_TLS_CERT: `${d}/server.crt`, S3UP_TLS_KEY: `${d}/server.key` } })
      .start();
    server.url = `https://localhost:${server.port}`;
    token = stack.token('tina');
  });
  after(async () => {
    await server.stop();
    await stack.close();
  });

  // GET over https with the test CA: status and body.
  const get = (url) => new Promise((resolve, reject) => {
    https.get(url, { ca, headers: auth(token) }, (res) => {
      const parts = [];
      res.on('data', (p) => parts.push(p));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts) }));
    }).on('error', reject);
  });

  test('an upload stopped midway resumes and arrives whole; every URL is https', async () => {
    const data = content(12 * MiB, 41);
    const httpStack = new tus.DefaultHttpStack({ ca });
    const options = { endpoint: `${server.url}/upload/resumable`, headers: auth(token), chunkSize: 4 * MiB, httpStack };
    const url = await uploadThenStop(data, options, (bytes, event) => event === 'chunk' && bytes >= 4 * MiB);
    assert.ok(url.startsWith(`${server.url}/upload/resumable/`), url);
    const u = await upload(data, { ...options, uploadUrl: url });
    assert.equal(u.url, url);
    const stored = await get(`${server.url}/files/${idOf(url)}/content`);
    assert.equal(stored.status, 200);
    assert.equal(sha256(stored.body), sha256(data));
  });

  test('a client without the CA is refused before it sends a byte', async () => {
    await assert.rejects(upload(content(1000, 42), {
      endpoint: `${server.url}/upload/resumable`,
      headers: auth(token),
      retryDelays: [],
    }), /certificate/);
  });
});

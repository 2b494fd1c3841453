// The admin API against the real binary: every call, who may make it, and a
// user's deletion on radosgw + PostgreSQL leaving nothing behind, a kill -9
// in the middle included.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as tus from 'tus-js-client';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { MiB, Stack, Server, content, eventually } from './harness.mjs';
import { Provider } from './provider.mjs';

const bearer = (token) => ({ Authorization: `Bearer ${token}` });

async function call(server, token, method, path, body) {
  const init = { method, headers: bearer(token) };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(`${server.url}${path}`, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

async function put(server, token, name, data) {
  const res = await fetch(`${server.url}/upload/${encodeURIComponent(name)}`, { method: 'PUT', headers: bearer(token), body: data });
  const text = await res.text();
  assert.equal(res.status, 201, text);
  return JSON.parse(text).file_id;
}

describe('the admin API (local disk, SQLite)', () => {
  let stack;
  let server;
  let root;
  let plain;
  before(async () => {
    stack = await new Stack('local').init();
    stack.cli(['user', 'add', 'root', '--admin']);
    root = stack.cli(['token', 'create', 'root']).trim();
    plain = stack.token('plain');
    server = await new Server(stack).start();
  });
  after(async () => {
    await server?.stop();
    await stack?.close();
  });

  test('only admins: 401 without a token, 403 for a user who is not one', async () => {
    const routes = [
      ['POST', '/admin/users', { name: 'x' }],
      ['GET', '/admin/users'],
      ['GET', '/admin/users/plain'],
      ['PATCH', '/admin/users/plain', { admin: true }],
      ['DELETE', '/admin/users/plain'],
      ['POST', '/admin/users/plain/tokens', {}],
      ['GET', '/admin/users/plain/tokens'],
      ['DELETE', '/admin/tokens/tok_0000000000000000'],
    ];
    for (const [method, path, body] of routes) {
      assert.equal((await call(server, '', method, path, body)).status, 401, `${method} ${path}`);
      const refused = await call(server, plain, method, path, body);
      assert.equal(refused.status, 403, `${method} ${path}`);
      assert.equal(refused.body.error.code, 'forbidden');
    }
    // Nothing changed.
    const me = await call(server, root, 'GET', '/admin/users/plain');
    assert.equal(me.body.admin, false);
    assert.equal(me.body.deleting, false);
  });

  test('users: create, list in pages, read, change', async () => {
    const made = await call(server, root, 'POST', '/admin/users', { name: 'bob', quota: '1MiB' });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    assert.equal(made.headers.get('location'), '/admin/users/bob');
    assert.deepEqual(
      { name: made.body.name, admin: made.body.admin, quota: made.body.quota, used: made.body.used_bytes, issuer: made.body.issuer },
      { name: 'bob', admin: false, quota: 1048576, used: 0, issuer: null },
    );
    assert.equal((await call(server, root, 'POST', '/admin/users', { name: 'bob' })).status, 409);
    assert.equal((await call(server, root, 'POST', '/admin/users', { name: '' })).status, 400);
    assert.equal((await call(server, root, 'POST', '/admin/users', { name: 'a\u202Eb' })).status, 400);
    assert.equal((await call(server, root, 'POST', '/admin/users', { name: 'c', quota: -1 })).status, 400);
    assert.equal((await call(server, root, 'POST', '/admin/users', { name: 'c', admn: true })).status, 400);
    assert.equal((await call(server, root, 'POST', '/admin/users', '{"name": ')).status, 400);
    assert.equal((await call(server, root, 'POST', '/admin/users', '[]')).status, 400);
    assert.equal((await call(server, root, 'POST', '/admin/users', { name: 'auth0|42', admin: true })).status, 201);

    const names = [];
    let cursor = '';
    for (let pages = 0; pages < 10; pages++) {
      const page = await call(server, root, 'GET', `/admin/users?limit=2&cursor=${encodeURIComponent(cursor)}`);
      assert.equal(page.status, 200);
      assert.ok(page.body.users.length <= 2);
      names.push(...page.body.users.map((u) => u.name));
      if (!page.body.next_cursor) break;
      cursor = page.body.next_cursor;
    }
    assert.deepEqual(names, ['auth0|42', 'bob', 'plain', 'root']);
    assert.equal((await call(server, root, 'GET', '/admin/users?limit=0')).status, 400);
    assert.equal((await call(server, root, 'GET', '/admin/users?cursor=bogus')).status, 400);

    const encoded = await call(server, root, 'GET', `/admin/users/${encodeURIComponent('auth0|42')}`);
    assert.equal(encoded.body.admin, true);
    const changed = await call(server, root, 'PATCH', '/admin/users/bob', { quota: 2048, disabled: true, admin: true });
    assert.equal(changed.status, 200);
    assert.deepEqual([changed.body.quota, changed.body.disabled, changed.body.admin], [2048, true, true]);
    const back = await call(server, root, 'PATCH', '/admin/users/bob', { quota: null, disabled: false, admin: false });
    assert.deepEqual([back.body.quota, back.body.disabled, back.body.admin], [null, false, false]);
    assert.equal((await call(server, root, 'PATCH', '/admin/users/bob', {})).status, 400);
    assert.equal((await call(server, root, 'PATCH', '/admin/users/bob', { disabled: 'yes' })).status, 400);
    assert.equal((await call(server, root, 'PATCH', '/admin/users/nobody', { admin: true })).status, 404);
    assert.equal((await call(server, root, 'GET', '/admin/users/nobody')).status, 404);
    // The CLI sees what the API did.
    assert.match(stack.cli(['user', 'list']), /auth0\|42/);
  });

  test('tokens: made once, listed without secrets, revoked', async () => {
    await call(server, root, 'POST', '/admin/users', { name: 'carol' });
    const made = await call(server, root, 'POST', '/admin/users/carol/tokens', { name: 'ci', expires_in: '1h' });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    assert.match(made.body.token, /^s3u_/);
    assert.equal(made.body.name, 'ci');
    const lifetime = Date.parse(made.body.expires_at) - Date.parse(made.body.created_at);
    assert.ok(Math.abs(lifetime - 3600 * 1000) < 2000, `${lifetime}`);
    await put(server, made.body.token, 'by-carol.txt', 'c');
    const listed = await call(server, root, 'GET', '/admin/users/carol/tokens');
    assert.equal(listed.body.tokens.length, 1);
    assert.equal(listed.body.tokens[0].id, made.body.id);
    assert.ok(!JSON.stringify(listed.body).includes(made.body.token), 'a secret in the list');
    assert.equal((await call(server, root, 'POST', '/admin/users/carol/tokens', { expires_in: 'soon' })).status, 400);
    assert.equal((await call(server, root, 'POST', '/admin/users/carol/tokens', { expires_in: 0 })).status, 400);
    assert.equal((await call(server, root, 'POST', '/admin/users/nobody/tokens', {})).status, 404);
    assert.equal((await call(server, root, 'DELETE', `/admin/tokens/${made.body.id}`)).status, 204);
    assert.equal((await call(server, made.body.token, 'GET', '/files')).status, 401);
    assert.equal((await call(server, root, 'DELETE', `/admin/tokens/${made.body.id}`)).status, 404);
    assert.equal((await call(server, root, 'DELETE', '/admin/tokens/not-a-token')).status, 404);
    // Every call was logged with who made it; no secret was.
    assert.match(server.log, /admin root: created token tok_[0-9a-f]{16} for user carol/);
    assert.ok(!server.log.includes(made.body.token));
  });

  test('deleting: keep_files refuses while files remain; a user without files goes at once', async () => {
    await call(server, root, 'POST', '/admin/users', { name: 'dave' });
    const token = (await call(server, root, 'POST', '/admin/users/dave/tokens', {})).body.token;
    const id = await put(server, token, 'keep.txt', 'k');
    assert.equal((await call(server, root, 'DELETE', '/admin/users/dave?keep_files=true')).status, 409);
    assert.equal((await call(server, token, 'DELETE', `/files/${id}`)).status, 204);
    assert.equal((await call(server, root, 'DELETE', '/admin/users/dave?keep_files=true')).status, 204);
    assert.equal((await call(server, root, 'GET', '/admin/users/dave')).status, 404);
    assert.equal((await call(server, token, 'GET', '/files')).status, 401);
    await call(server, root, 'POST', '/admin/users', { name: 'erin' });
    assert.equal((await call(server, root, 'DELETE', '/admin/users/erin')).status, 204);
    assert.equal((await call(server, root, 'DELETE', '/admin/users/erin')).status, 404);
  });

  test('a JWT with the admin claim may use it too', async () => {
    const provider = await new Provider().start();
    const kid = await provider.addKey('ES256');
    const jwtServer = await new Server(stack, {
      env: { S3UP_JWT_ISSUER: provider.issuer, S3UP_JWT_AUDIENCE: 'uploads', S3UP_JWT_ADMIN_CLAIM: 'role', S3UP_JWT_ADMIN_VALUE: 'service_role' },
    }).start();
    try {
      const admin = await provider.token(kid, { sub: 'backend', role: 'service_role' });
      assert.equal((await call(jwtServer, admin, 'POST', '/admin/users', { name: 'from-jwt' })).status, 201);
      const user = await provider.token(kid, { sub: 'someone', role: 'authenticated' });
      assert.equal((await call(jwtServer, user, 'GET', '/admin/users')).status, 403);
    } finally {
      await jwtServer.stop();
      await provider.stop();
    }
  });
});

describe('deleting a user on radosgw and PostgreSQL', () => {
  let stack;
  let server;
  let root;
  before(async () => {
    stack = await new Stack('s3').init();
    stack.cli(['user', 'add', 'root', '--admin']);
    root = stack.cli(['token', 'create', 'root']).trim();
    // The janitor every 2 s, so a restarted server finishes soon.
    server = await new Server(stack, { env: { S3UP_JANITOR_INTERVAL: '2s' } }).start();
  });
  after(async () => {
    await server?.stop();
    await stack?.close();
  });

  async function objectsOf(userId) {
    const listed = await stack.s3.send(new ListObjectsV2Command({ Bucket: stack.bucket, Prefix: `objects/u/${userId}/` }));
    return (listed.Contents ?? []).map((o) => o.Key);
  }

  function rows(sql) {
    return Number(stack.psqlValue(sql));
  }

  // A user with `files` small files and one tus upload left unfinished
  // (an S3 multipart upload with parts behind it).
  async function userWithFiles(name, files) {
    const made = await call(server, root, 'POST', '/admin/users', { name });
    const token = (await call(server, root, 'POST', `/admin/users/${name}/tokens`, {})).body.token;
    for (let i = 0; i < files; i++) await put(server, token, `f${i}.bin`, content(4096, `${name} ${i}`));
    await new Promise((resolve, reject) => {
      const u = new tus.Upload(content(12 * MiB, `${name} tus`), {
        endpoint: `${server.url}/upload/resumable`,
        headers: bearer(token),
        chunkSize: 6 * MiB,
        storeFingerprintForResuming: false,
        onChunkComplete: (_, accepted) => {
          if (accepted >= 6 * MiB) u.abort().then(resolve, reject);
        },
        onError: reject,
        onSuccess: () => reject(new Error('finished')),
      });
      u.start();
    });
    assert.ok((await stack.leftovers()).length > 0, 'the unfinished upload left a multipart upload');
    return { id: made.body.id, token };
  }

  test('files, the unfinished upload, the tokens and the user all go', async () => {
    const { id, token } = await userWithFiles('frank', 5);
    assert.equal((await objectsOf(id)).filter((key) => !key.includes('.tail')).length, 5);
    const deleting = await call(server, root, 'DELETE', '/admin/users/frank');
    assert.equal(deleting.status, 202, JSON.stringify(deleting.body));
    assert.deepEqual(deleting.body, { status: 'deleting', files: 5 });
    // At once: the user's tokens stop, and the user shows as being deleted.
    assert.equal((await call(server, token, 'GET', '/files')).status, 401);
    assert.ok(await eventually(async () => (await call(server, root, 'GET', '/admin/users/frank')).status === 404, 20000));
    assert.deepEqual(await objectsOf(id), []);
    assert.deepEqual(await stack.leftovers(), []);
    assert.equal(rows(`SELECT count(*) FROM uploads WHERE user_id = ${id}`), 0);
    assert.equal(rows(`SELECT count(*) FROM api_tokens WHERE user_id = ${id}`), 0);
    assert.equal(rows(`SELECT count(*) FROM users WHERE id = ${id}`), 0);
  });

  test('kill -9 in the middle: the janitor finishes it after a restart', async (t) => {
    const { id } = await userWithFiles('grace', 100);
    const deleting = await call(server, root, 'DELETE', '/admin/users/grace');
    assert.equal(deleting.status, 202);
    // Killed once the deletion has begun removing objects, before it ends.
    await eventually(async () => (await objectsOf(id)).length < 100, 10000);
    await server.kill('SIGKILL');
    const leftAtKill = (await objectsOf(id)).length;
    await server.restart();
    assert.ok(await eventually(async () => (await call(server, root, 'GET', '/admin/users/grace')).status === 404, 30000), server.log);
    assert.deepEqual(await objectsOf(id), []);
    assert.deepEqual(await stack.leftovers(), []);
    assert.equal(rows(`SELECT count(*) FROM uploads WHERE user_id = ${id}`), 0);
    assert.equal(rows(`SELECT count(*) FROM users WHERE id = ${id}`), 0);
    t.diagnostic(`objects left when killed: ${leftAtKill} of 100`);
  });

  test('the CLI deletes the same way', async () => {
    const { id } = await userWithFiles('heidi', 2);
    const out = stack.cli(['user', 'delete', 'heidi']);
    assert.match(out, /being deleted/);
    assert.ok(await eventually(async () => (await call(server, root, 'GET', '/admin/users/heidi')).status === 404, 20000));
    assert.deepEqual(await objectsOf(id), []);
    assert.deepEqual(await stack.leftovers(), []);
  });
});

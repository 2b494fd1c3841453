// JWTs from an app's own identity provider as bearer tokens: the real binary
// against a provider on loopback (provider.mjs), whose tokens are signed by
// jose, not by us. What is accepted, on every route; what is refused, and how
// (401 with RFC 6750's WWW-Authenticate); the keys' life (start-up with the
// provider down, an outage, rotation, a flood of unknown kids).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as tus from 'tus-js-client';
import { MiB, Stack, Server, content, sha256, download, eventually } from './harness.mjs';
import { Provider, secretToken } from './provider.mjs';

const bearer = (token) => ({ Authorization: `Bearer ${token}` });

function jwtEnv(provider, extra = {}) {
  return { S3UP_JWT_ISSUER: provider.issuer, S3UP_JWT_AUDIENCE: 'uploads', ...extra };
}

async function put(server, token, name, body) {
  return fetch(`${server.url}/upload/${encodeURIComponent(name)}`, { method: 'PUT', headers: bearer(token), body });
}

async function files(server, token) {
  const res = await fetch(`${server.url}/files`, { headers: bearer(token) });
  return { status: res.status, body: await res.json() };
}

// The 401 a refused token gets: its reason in the JSON and in the challenge.
async function refused(server, token, reason) {
  const res = await put(server, token, 'refused.bin', 'x');
  const body = await res.json();
  assert.equal(res.status, 401, `${reason}: ${JSON.stringify(body)}`);
  assert.match(body.error.message, reason);
  const challenge = res.headers.get('www-authenticate');
  assert.match(challenge, /^Bearer realm="s3uploader", error="invalid_token", error_description="[^"]+"$/);
  return body.error.message;
}

function tusUpload(server, token, data, metadata) {
  return new Promise((resolve, reject) => {
    const u = new tus.Upload(data, {
      endpoint: `${server.url}/upload/resumable`,
      headers: bearer(token),
      chunkSize: 2 * MiB,
      metadata,
      storeFingerprintForResuming: false,
      onSuccess: () => resolve(u),
      onError: reject,
    });
    u.start();
  });
}

describe('JWT bearer tokens, keys by OIDC discovery (local disk, SQLite)', () => {
  let stack;
  let provider;
  let server;
  const kids = {};
  before(async () => {
    stack = await new Stack('local').init();
    provider = await new Provider().start();
    for (const alg of ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']) {
      kids[alg] = await provider.addKey(alg);
    }
    server = await new Server(stack, { env: jwtEnv(provider, { S3UP_JWT_ADMIN_CLAIM: 'roles', S3UP_JWT_ADMIN_VALUE: 'admin' }) }).start();
  });
  after(async () => {
    await server?.stop();
    await provider?.stop();
    await stack?.close();
  });

  test('a token of every algorithm uploads, and names one user across them', async () => {
    for (const [alg, kid] of Object.entries(kids)) {
      const res = await put(server, await provider.token(kid, { sub: 'jwt-user' }), `${alg}.txt`, `signed by ${alg}`);
      assert.equal(res.status, 201, `${alg}: ${await res.text()}`);
    }
    const { status, body } = await files(server, await provider.token(kids.ES256));
    assert.equal(status, 200);
    assert.equal(body.files.length, Object.keys(kids).length);
    // The user was made on first use, and the admin CLI knows it by its name.
    assert.match(stack.cli(['user', 'list']), /jwt-user/);
    // One discovery, one key set: nothing is fetched per request.
    assert.equal(provider.fetches.discovery, 1);
    assert.equal(provider.fetches.jwks, 1);
  });

  test('every route takes it: POST, PUT, tus-js-client, the files API, links', async () => {
    const token = await provider.token(kids.RS256, { sub: 'routes' });
    const form = new FormData();
    form.append('file', new Blob(['posted']), 'posted.txt');
    const posted = await fetch(`${server.url}/upload`, { method: 'POST', headers: bearer(token), body: form });
    assert.equal(posted.status, 201, await posted.text());
    assert.equal((await put(server, token, 'put.txt', 'put')).status, 201);
    const data = content(5 * MiB, 'jwt tus');
    const u = await tusUpload(server, token, data, { filename: 'tus.bin' });
    const id = u.url.slice(u.url.lastIndexOf('/') + 1);
    assert.equal(sha256(await download(server, token, id)), sha256(data));
    const link = await fetch(`${server.url}/files/${id}/link`, { method: 'POST', headers: bearer(token) });
    assert.equal(link.status, 200);
    const viaLink = await fetch((await link.json()).url);
    assert.equal(sha256(Buffer.from(await viaLink.arrayBuffer())), sha256(data));
    const listed = await files(server, token);
    assert.deepEqual(listed.body.files.map((f) => f.file_name).sort(), ['posted.txt', 'put.txt', 'tus.bin']);
    const config = await fetch(`${server.url}/api/config`, { headers: bearer(token) });
    assert.equal(config.status, 200);
  });

  test('refused: expired, not yet valid, audience, issuer, signature, alg none, HMAC with a public key', async () => {
    const now = Math.floor(Date.now() / 1000);
    const kid = kids.RS256;
    await refused(server, await provider.token(kid, { exp: now - 120 }), /expired/);
    await refused(server, await provider.token(kid, { exp: undefined }), /no expiry/);
    await refused(server, await provider.token(kid, { nbf: now + 600 }), /not valid yet/);
    await refused(server, await provider.token(kid, { iat: now + 600 }), /issued in the future/);
    await refused(server, await provider.token(kid, { aud: 'another-app' }), /audience/);
    await refused(server, await provider.token(kid, { aud: ['another-app', 'a-third'] }), /audience/);
    await refused(server, await provider.token(kid, { iss: 'https://evil.example' }), /another issuer/);
    await refused(server, await provider.token(kid, { sub: undefined }), /no sub claim/);
    const good = await provider.token(kid);
    const [h, p, s] = good.split('.');
    const forged = Buffer.from(p, 'base64url').toString().replace('jwt-user', 'root');
    await refused(server, `${h}.${Buffer.from(forged).toString('base64url')}.${s}`, /signature/);
    const flipped = Buffer.from(s, 'base64url');
    flipped[10] ^= 1;
    await refused(server, `${h}.${p}.${flipped.toString('base64url')}`, /signature/);
    await refused(server, provider.unsigned({}), /algorithm is not accepted/);
    await refused(server, provider.hmacWithPublicKey(kid, {}), /HMAC-signed tokens are not accepted/);
    // A key used with another algorithm than the one its JWK names.
    await refused(server, provider.rsaAs(kid, 'PS256', {}), /algorithm does not fit/);
    // The same construction under its own algorithm verifies: the refusal above is the algorithm's.
    assert.equal((await put(server, provider.rsaAs(kid, 'RS256', {}), 'rsa-as.txt', 'x')).status, 201);
    // Within the leeway (60 s) an expired token still works.
    assert.equal((await put(server, await provider.token(kid, { exp: now - 30 }), 'leeway.txt', 'x')).status, 201);
    // An array audience containing ours is ours.
    assert.equal((await put(server, await provider.token(kid, { aud: ['other', 'uploads'] }), 'aud.txt', 'x')).status, 201);
    // Nothing of any token reaches the log.
    for (const part of [h, p, s]) assert.ok(!server.log.includes(part), 'a token part is in the log');
  });

  test('the admin claim makes an admin; an admin can disable a JWT user', async () => {
    const admin = await provider.token(kids.ES384, { sub: 'boss', roles: ['staff', 'admin'] });
    const all = await fetch(`${server.url}/files?all=true`, { headers: bearer(admin) });
    assert.equal(all.status, 200);
    const plain = await provider.token(kids.ES384, { sub: 'boss', roles: ['staff'] });
    assert.equal((await fetch(`${server.url}/files?all=true`, { headers: bearer(plain) })).status, 403);

    const token = await provider.token(kids.EdDSA, { sub: 'to-be-disabled' });
    assert.equal((await put(server, token, 'a.txt', 'a')).status, 201);
    stack.cli(['user', 'disable', 'to-be-disabled']);
    await refused(server, token, /user disabled/);
    await refused(server, await provider.token(kids.RS512, { sub: 'to-be-disabled' }), /user disabled/);
  });

  test('an admin makes a JWT user before their first sign-in, with a quota', async () => {
    stack.cli(['user', 'add', 'root', '--admin']);
    const root = stack.cli(['token', 'create', 'root']).trim();
    const made = await fetch(`${server.url}/admin/users`, {
      method: 'POST', headers: bearer(root), body: JSON.stringify({ name: 'early-bird', issuer: provider.issuer, quota: 10 }),
    });
    assert.equal(made.status, 201, await made.text());
    const token = await provider.token(kids.RS256, { sub: 'early-bird' });
    const over = await put(server, token, 'eleven.txt', '01234567890');
    assert.equal(over.status, 413, 'the quota set ahead holds');
    assert.equal((await put(server, token, 'ten.txt', '0123456789')).status, 201);
    // The same name for another issuer, or again, is refused.
    const again = await fetch(`${server.url}/admin/users`, {
      method: 'POST', headers: bearer(root), body: JSON.stringify({ name: 'early-bird', issuer: 'https://other.example' }),
    });
    assert.equal(again.status, 409);
  });

  test('a name that belongs to a token user is not theirs to take', async () => {
    stack.token('local-alice');
    await refused(server, await provider.token(kids.RS256, { sub: 'local-alice' }), /another account/);
  });

  test('an unknown kid refetches once per interval, then 401; a rotated-in key works without a restart', async () => {
    const before = provider.fetches.jwks;
    const rotated = await provider.addKey('ES256', { kid: 'rotated-in' });
    const res = await put(server, await provider.token(rotated, { sub: 'rotation' }), 'rotated.txt', 'r');
    assert.equal(res.status, 201, await res.text());
    assert.equal(provider.fetches.jwks, before + 1);
    // A flood of tokens naming kids the provider never published: one fetch
    // at most per 30 s, however many come.
    const stranger = await provider.addKey('RS256', { kid: 'never-published', publish: false });
    const forged = await provider.token(stranger);
    for (let i = 0; i < 20; i++) await refused(server, forged, /signing key \(kid\) is not in the key set/);
    assert.equal(provider.fetches.jwks, before + 1);
  });
});

describe('JWT keys through an outage', () => {
  let stack;
  let provider;
  before(async () => {
    stack = await new Stack('local').init();
    provider = await new Provider().start();
  });
  after(async () => {
    await provider?.stop();
    await stack?.close();
  });

  test('start-up with the provider down works; keys arrive once it is back', async () => {
    const kid = await provider.addKey('RS256');
    provider.down = true;
    const server = await new Server(stack, { env: jwtEnv(provider) }).start();
    try {
      assert.ok(await eventually(() => /fetching the signature keys failed/.test(server.log)), server.log);
      await refused(server, await provider.token(kid), /key/);
      provider.down = false;
      // The next try comes after the refetch interval (30 s), not per request.
      assert.ok(
        await eventually(async () => (await put(server, await provider.token(kid), 'late.txt', 'x')).status === 201, 45000),
        server.log,
      );
    } finally {
      await server.stop();
    }
  });

  test('tokens that come during a slow first fetch wait for it: one fetch, no 401', async () => {
    const kid = await provider.addKey('ES256');
    const before = { ...provider.fetches };
    provider.delayMs = 1500;
    const server = await new Server(stack, { env: jwtEnv(provider) }).start();
    try {
      const token = await provider.token(kid, { sub: 'early' });
      const answers = await Promise.all([1, 2, 3, 4, 5].map((i) => put(server, token, `early-${i}.txt`, 'x')));
      for (const res of answers) assert.equal(res.status, 201, await res.text());
      assert.equal(provider.fetches.discovery, before.discovery + 1);
      assert.equal(provider.fetches.jwks, before.jwks + 1);
    } finally {
      provider.delayMs = 0;
      await server.stop();
    }
  });

  test('known keys keep working while the provider is down', async () => {
    const kid = await provider.addKey('ES256');
    const server = await new Server(stack, { env: jwtEnv(provider) }).start();
    try {
      assert.equal((await put(server, await provider.token(kid, { sub: 'outage' }), 'before.txt', 'x')).status, 201);
      provider.down = true;
      assert.equal((await put(server, await provider.token(kid, { sub: 'outage' }), 'during.txt', 'x')).status, 201);
    } finally {
      provider.down = false;
      await server.stop();
    }
  });
});

describe('JWT settings', () => {
  test('JWTs without an audience do not start; a bad secret is not echoed', async () => {
    const stack = await new Stack('local').init();
    try {
      const noAudience = new Server(stack, { env: { S3UP_JWT_JWKS_URL: 'https://idp.example/jwks.json' } });
      await assert.rejects(noAudience.start(), /jwt_audience is required/);
      const shortSecret = new Server(stack, { env: { S3UP_JWT_SECRET: 'short-secret-value', S3UP_JWT_AUDIENCE: 'a' } });
      await assert.rejects(shortSecret.start(), (e) => /at least 32 bytes/.test(e.message) && !e.message.includes('short-secret-value'));
      const cleartext = new Server(stack, { env: { S3UP_JWT_JWKS_URL: 'http://idp.example/jwks.json', S3UP_JWT_AUDIENCE: 'a' } });
      await assert.rejects(cleartext.start(), /https/);
    } finally {
      await stack.close();
    }
  });

  test('HS256 with a shared secret (Supabase): accepted; config shows it redacted', async () => {
    const stack = await new Stack('local').init();
    const secret = 'a-supabase-style-project-secret-of-enough-length';
    const server = await new Server(stack, {
      env: { S3UP_JWT_SECRET: secret, S3UP_JWT_AUDIENCE: 'authenticated', S3UP_JWT_ADMIN_CLAIM: 'role', S3UP_JWT_ADMIN_VALUE: 'service_role' },
    }).start();
    try {
      const now = Math.floor(Date.now() / 1000);
      const user = await secretToken(secret, { sub: '5f1e0c2a-0000-4000-8000-000000000001', aud: 'authenticated', role: 'authenticated', exp: now + 600 });
      assert.equal((await put(server, user, 'supabase.txt', 'x')).status, 201);
      const service = await secretToken(secret, { sub: 'service', aud: 'authenticated', role: 'service_role', exp: now + 600 });
      assert.equal((await fetch(`${server.url}/files?all=true`, { headers: bearer(service) })).status, 200);
      const wrong = await secretToken('another-secret-of-enough-length-for-hs256', { sub: 'x', aud: 'authenticated', exp: now + 600 });
      await refused(server, wrong, /signature/);
      const shown = stack.cli(['config'], { S3UP_JWT_SECRET: secret, S3UP_JWT_AUDIENCE: 'authenticated' });
      assert.ok(!shown.includes(secret));
      assert.match(shown, /jwt_secret = "REDACTED"/);
    } finally {
      await server.stop();
      await stack.close();
    }
  });
});

describe('JWTs on radosgw and PostgreSQL, two instances', () => {
  let stack;
  let provider;
  let servers = [];
  before(async () => {
    stack = await new Stack('s3').init();
    provider = await new Provider().start();
  });
  after(async () => {
    for (const s of servers) await s.stop();
    await provider?.stop();
    await stack?.close();
  });

  test('both accept the same token as the same user, and its quota holds', async () => {
    const kid = await provider.addKey('ES256');
    servers = [
      await new Server(stack, { env: jwtEnv(provider, { S3UP_DEFAULT_QUOTA: '1MiB' }) }).start(),
      await new Server(stack, { env: jwtEnv(provider, { S3UP_DEFAULT_QUOTA: '1MiB' }) }).start(),
    ];
    const token = await provider.token(kid, { sub: 'twice' });
    assert.equal((await put(servers[0], token, 'one.bin', content(400 * 1024, 'one'))).status, 201);
    assert.equal((await put(servers[1], token, 'two.bin', content(400 * 1024, 'two'))).status, 201);
    const listed = await files(servers[0], token);
    assert.equal(listed.body.files.length, 2);
    const over = await put(servers[1], token, 'three.bin', content(400 * 1024, 'three'));
    assert.equal(over.status, 413);
    assert.equal((await over.json()).error.code, "quota_exceeded");
  });
});

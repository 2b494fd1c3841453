// An identity provider on loopback for the JWT tests: an OpenID discovery
// document, a JWKS of the keys it publishes, and tokens signed by `jose` (an
// implementation that is not ours). It can go down or be slow, publish other keys,
// and count how often the service asks for them.
import { createServer } from 'node:http';
import { createHmac, sign as cryptoSign, KeyObject, constants } from 'node:crypto';
import * as jose from 'jose';

export class Provider {
  constructor({ cacheSeconds = 600 } = {}) {
    this.cacheSeconds = cacheSeconds;
    this.keys = new Map(); // kid -> { alg, privateKey, jwk }
    this.published = new Set(); // the kids in the JWKS
    this.down = false;
    this.delayMs = 0; // how long each answer takes
    this.fetches = { jwks: 0, discovery: 0 };
  }

  async start() {
    this.server = createServer((req, res) => this.answer(req, res));
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.issuer = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  async stop() {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  answer(req, res) {
    if (this.delayMs > 0) {
      setTimeout(() => this.respond(req, res), this.delayMs);
    } else {
      this.respond(req, res);
    }
  }

  respond(req, res) {
    if (this.down) {
      res.writeHead(503).end();
      return;
    }
    if (req.url === '/.well-known/openid-configuration') {
      this.fetches.discovery++;
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ issuer: this.issuer, jwks_uri: `${this.issuer}/jwks.json` }));
    } else if (req.url === '/jwks.json') {
      this.fetches.jwks++;
      const keys = [...this.published].map((kid) => this.keys.get(kid).jwk);
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': `public, max-age=${this.cacheSeconds}` });
      res.end(JSON.stringify({ keys }));
    } else {
      res.writeHead(404).end();
    }
  }

  // A new signing key (published unless told otherwise); returns its kid.
  async addKey(alg, { kid = `${alg}-${this.keys.size + 1}`, publish = true, crv } = {}) {
    const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true, crv });
    const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' };
    this.keys.set(kid, { alg, privateKey, publicKey, jwk });
    if (publish) this.published.add(kid);
    return kid;
  }

  // A token for `sub` signed with the key `kid`: aud, iss, iat and exp by
  // default, overridden or removed (undefined) by `claims`.
  async token(kid, claims = {}, { header = {} } = {}) {
    const key = this.keys.get(kid);
    const now = Math.floor(Date.now() / 1000);
    const body = { iss: this.issuer, aud: 'uploads', sub: 'jwt-user', iat: now, exp: now + 600, ...claims };
    for (const name of Object.keys(body)) if (body[name] === undefined) delete body[name];
    return new jose.SignJWT(body).setProtectedHeader({ alg: key.alg, kid, ...header }).sign(key.privateKey);
  }

  // Tokens jose refuses to make: unsigned ("alg": "none"), or "signed" by
  // HMAC with a key's public JWK as the secret (the old algorithm confusion).
  unsigned(claims) {
    return `${encode({ alg: 'none', typ: 'JWT' })}.${encode(this.claims(claims))}.`;
  }

  // A token signed with an RSA key under another RSA algorithm than the one
  // its JWK names (jose will not).
  rsaAs(kid, alg, claims) {
    const input = `${encode({ alg, kid })}.${encode(this.claims(claims))}`;
    const key = KeyObject.from(this.keys.get(kid).privateKey);
    const hash = `sha${alg.slice(2)}`;
    const options = alg.startsWith('PS')
      ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(alg.slice(2)) / 8 }
      : { key };
    return `${input}.${cryptoSign(hash, Buffer.from(input), options).toString('base64url')}`;
  }

  hmacWithPublicKey(kid, claims) {
    const input = `${encode({ alg: 'HS256', kid })}.${encode(this.claims(claims))}`;
    const secret = JSON.stringify(this.keys.get(kid).jwk);
    return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
  }

  claims(extra = {}) {
    const now = Math.floor(Date.now() / 1000);
    return { iss: this.issuer, aud: 'uploads', sub: 'jwt-user', iat: now, exp: now + 600, ...extra };
  }
}

function encode(object) {
  return Buffer.from(JSON.stringify(object)).toString('base64url');
}

// An HS256 token under a shared secret (Supabase's legacy project secret).
export async function secretToken(secret, claims) {
  return new jose.SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(secret));
}

// The real s3uploader binary for tus-js-client: servers on loopback ports
// with their own data, on local disk + SQLite or on the radosgw + PostgreSQL
// that scripts/test starts (S3UP_TEST_* in the environment).
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, existsSync, readdirSync, statSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { S3Client, CreateBucketCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';

export const MiB = 1024 * 1024;

export function binary() {
  const path = process.env.S3UP_BINARY;
  if (!path) throw new Error('S3UP_BINARY is not set: run these tests through ctest');
  return path;
}

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests through scripts/test`);
  return value;
}

export function sha256(data) {
  return createHash('sha256').update(data).digest('hex');
}

// Pseudo-random bytes, the same for the same seed.
export function content(size, seed) {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(`seed ${seed}`).digest();
  for (let at = 0; at < size; at += block.length) {
    block.copy(out, at, 0, Math.min(block.length, size - at));
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

// Where uploads are kept: a local directory and SQLite file, or a fresh
// bucket on radosgw and a fresh PostgreSQL database (shared by every server
// started on it, as instances behind a load balancer share theirs).
export class Stack {
  constructor(kind) {
    this.kind = kind;
    this.dir = mkdtempSync(join(tmpdir(), 's3up-tus-js-'));
    this.env = { S3UP_THREADS: '2' };
    if (kind === 'local') {
      this.env.S3UP_STORAGE = `file://${this.dir}/objects`;
      this.env.S3UP_DATABASE = `sqlite://${this.dir}/s3uploader.db`;
    } else {
      this.bucket = `tus-js-${randomBytes(6).toString('hex')}`;
      this.env.S3UP_STORAGE = `s3://${this.bucket}/objects`;
      this.env.S3UP_S3_ENDPOINT = required('S3UP_TEST_S3_ENDPOINT');
      this.env.AWS_ACCESS_KEY_ID = required('S3UP_TEST_S3_ACCESS_KEY');
      this.env.AWS_SECRET_ACCESS_KEY = required('S3UP_TEST_S3_SECRET_KEY');
      this.env.S3UP_PART_SIZE = '5MiB';
      this.s3 = new S3Client({
        endpoint: this.env.S3UP_S3_ENDPOINT,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: this.env.AWS_ACCESS_KEY_ID, secretAccessKey: this.env.AWS_SECRET_ACCESS_KEY },
        // radosgw 16 refuses the SDK's default request checksums.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
      this.database = `s3up_tus_js_${randomBytes(6).toString('hex')}`;
      this.psql(`CREATE DATABASE ${this.database}`);
      const admin = required('S3UP_TEST_PG_URL');
      this.env.S3UP_DATABASE = `${admin.slice(0, admin.lastIndexOf('/') + 1)}${this.database}` +
        `?sslmode=verify-full&sslrootcert=${required('S3UP_TEST_PG_CA_FILE')}`;
    }
  }

  async init() {
    if (this.s3) await this.s3.send(new CreateBucketCommand({ Bucket: this.bucket }));
    this.cli(['migrate']);
    return this;
  }

  psql(sql) {
    const url = `${required('S3UP_TEST_PG_URL')}?sslmode=verify-full&sslrootcert=${required('S3UP_TEST_PG_CA_FILE')}`;
    execFileSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-qc', sql], { stdio: 'pipe' });
  }

  // One value from the stack's own PostgreSQL database.
  psqlValue(sql) {
    return execFileSync('psql', [this.env.S3UP_DATABASE, '-v', 'ON_ERROR_STOP=1', '-Atqc', sql], { encoding: 'utf8' }).trim();
  }

  cli(args, extraEnv = {}) {
    return execFileSync(binary(), args, { env: { ...process.env, ...this.env, ...extraEnv }, encoding: 'utf8' });
  }

  // A user and a token for it.
  token(name, { quota } = {}) {
    const add = ['user', 'add', name];
    if (quota) add.push('--quota', quota);
    this.cli(add);
    const out = this.cli(['token', 'create', name]).trim().split('\n');
    return out[out.length - 1].trim();
  }

  // What unfinished uploads left (of the upload `id` only, if given):
  // multipart uploads and tail objects (S3), temporary files (local disk).
  async leftovers(id = '') {
    return (await this.allLeftovers()).filter((l) => l.includes(id));
  }

  // The keys of the multipart uploads in progress in the stack's bucket (S3).
  async multipartUploads() {
    const uploads = await this.s3.send(new ListMultipartUploadsCommand({ Bucket: this.bucket }));
    return (uploads.Uploads ?? []).map((u) => u.Key);
  }

  // Every object key in the stack's bucket (S3), as stored.
  async keys() {
    const keys = [];
    let token;
    do {
      const page = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, ContinuationToken: token }));
      keys.push(...(page.Contents ?? []).map((o) => o.Key));
      token = page.NextContinuationToken;
    } while (token);
    return keys;
  }

  async allLeftovers() {
    if (this.s3) {
      return [
        ...(await this.multipartUploads()).map((key) => `multipart upload of ${key}`),
        ...(await this.keys()).filter((k) => k.includes('.tail')).map((k) => `tail object ${k}`),
      ];
    }
    const found = [];
    const walk = (dir) => {
      if (!existsSync(dir)) return;
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        // A temporary file, or a temporary directory of a resumable upload's data files.
        if (name.startsWith('.tmp')) found.push(`temporary file ${path}`);
        else if (statSync(path).isDirectory()) walk(path);
      }
    };
    walk(join(this.dir, 'objects'));
    return found;
  }

  async close() {
    if (this.database) {
      try {
        this.psql(`DROP DATABASE IF EXISTS ${this.database} WITH (FORCE)`);
      } catch {
        // the peer may be gone already
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// One `s3uploader serve` on the stack, on `port` (0: a free one).
export class Server {
  constructor(stack, { port = 0, env = {} } = {}) {
    this.stack = stack;
    this.requestedPort = port;
    this.extraEnv = env;
    this.log = '';
  }

  async start() {
    const portFile = join(this.stack.dir, `port-${randomBytes(4).toString('hex')}`);
    this.process = spawn(binary(), ['serve'], {
      env: {
        ...process.env,
        ...this.stack.env,
        S3UP_LISTEN: `127.0.0.1:${this.requestedPort}`,
        S3UP_PORT_FILE: portFile,
        S3UP_SHUTDOWN_GRACE: '2s',
        ...this.extraEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.process.stdout.on('data', (d) => { this.log += d; });
    this.process.stderr.on('data', (d) => { this.log += d; });
    this.exited = new Promise((resolve) => this.process.on('exit', resolve));
    let exited = false;
    this.exited.then(() => { exited = true; });
    for (let i = 0; i < 200 && !existsSync(portFile) && !exited; i++) await sleep(50);
    if (!existsSync(portFile)) throw new Error(`the server did not start:\n${this.log}`);
    this.port = Number(readFileSync(portFile, 'utf8').trim());
    this.url = `http://127.0.0.1:${this.port}`;
    return this;
  }

  async kill(signal = 'SIGKILL') {
    this.process.kill(signal);
    await this.exited;
  }

  // Started again on the same port (clients keep their upload URLs).
  async restart() {
    this.requestedPort = this.port;
    return this.start();
  }

  async stop() {
    if (this.process.exitCode === null && this.process.signalCode === null) await this.kill('SIGTERM');
  }
}

export async function fetchWithToken(url, token, init = {}) {
  return fetch(url, { ...init, headers: { Authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });
}

export async function head(url, token) {
  const res = await fetchWithToken(url, token, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
  return { status: res.status, offset: Number(res.headers.get('upload-offset')), headers: res.headers };
}

export async function download(server, token, id) {
  const res = await fetchWithToken(`${server.url}/files/${id}/content`, token);
  if (res.status !== 200) throw new Error(`download of ${id}: ${res.status} ${await res.text()}`);
  return Buffer.from(await res.arrayBuffer());
}

export async function eventually(condition, timeoutMs = 10000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await condition()) return true;
    await sleep(100);
  }
  return condition();
}

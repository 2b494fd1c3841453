// The chaos soak: two s3uploader instances on radosgw + PostgreSQL behind a
// balancer (the fault proxy with two upstreams), each reaching its peers
// through a fault proxy too. Clients upload (multipart POST, PUT, tus with
// pauses and resumes through either instance), download (whole and by
// range) and delete at a steady rate while, every 20-40 s, one instance is
// killed with SIGKILL and started again; PostgreSQL is restarted once,
// radosgw once, and both proxies inject a burst of faults once.
//
// At the end a checker verifies what the service promises: every upload
// acknowledged to a client (201, or a tus offset equal to its length) is
// listed, complete and byte-identical; nothing deleted reappears; after the
// janitor, no pending or deleting row, no multipart upload, no tail object,
// no object without a row, and each user's usage equals the sum of their
// files; no sanitizer report in any instance's log. Prints a summary table;
// exits non-zero if anything was lost, altered, left over or hung.
//
//   node soak.mjs [minutes]    (environment: what scripts/test exports, plus
//                               S3UP_BINARY and S3UP_FAULT_PROXY)
import { spawn, execFile } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Stack, Server, MiB, sha256 } from '../tus-client/harness.mjs';

const minutes = Number(process.argv[2] ?? process.env.S3UP_SOAK_MINUTES ?? 2);
if (minutes === 0) {
  console.log('soak: S3UP_SOAK_MINUTES=0, skipped');
  process.exit(77); // ctest's SKIP_RETURN_CODE
}
const here = dirname(fileURLToPath(import.meta.url));
const peersDir = join(here, '..', '..', 'scripts', 'peers');
const WORKERS = 4;
const run = promisify(execFile);
const REQUEST_LIMIT_MS = 120_000; // an answer later than this is a hang

// ---------------------------------------------------------------- helpers

// Upload bodies are slices of one random pool: an upload is (offset, size).
const pool = randomBytes(24 * MiB);
const bytesOf = (u) => pool.subarray(u.offset, u.offset + u.size);
function newContent(maxSize) {
  const size = randomInt(1, maxSize + 1);
  return { offset: randomInt(0, pool.length - size + 1), size };
}

// The fault proxy program: a listener, its upstreams, and its control port.
class FaultProxy {
  static async start(upstreams) {
    const args = upstreams.flatMap((u) => ['--upstream', u]);
    const child = spawn(process.env.S3UP_FAULT_PROXY, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const first = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('\n')) resolve(out.split('\n')[0]);
      });
      child.on('exit', (code) => reject(new Error(`fault_proxy exited (${code})`)));
    });
    const { port, control } = JSON.parse(first);
    return Object.assign(new FaultProxy(), { child, port, control });
  }

  async command(...lines) {
    const answers = await new Promise((resolve, reject) => {
      const socket = connect(this.control, '127.0.0.1');
      let got = '';
      socket.on('data', (d) => {
        got += d;
        if (got.split('\n').length > lines.length) socket.end();
      });
      socket.on('end', () => resolve(got.trim().split('\n')));
      socket.on('error', reject);
      socket.write(lines.map((l) => `${l}\n`).join(''));
    });
    for (const a of answers) if (a.startsWith('error')) throw new Error(`fault proxy: ${a}`);
    return answers;
  }

  stop() {
    this.child.kill('SIGKILL');
  }
}

// Runs fn over items, n at a time.
async function inParallel(items, n, fn) {
  const queue = [...items];
  const one = async () => {
    while (queue.length) await fn(queue.shift());
  };
  await Promise.all(Array.from({ length: n }, one));
}

// A line on the console for each phase after the run, with its time, so a
// long end is visibly a long check and not a hang.
let phaseStarted = Date.now();
function phase(what) {
  const now = Date.now();
  console.log(`soak: ${what} (previous phase ${((now - phaseStarted) / 1000).toFixed(0)} s)`);
  phaseStarted = now;
}

function hostPort(url) {
  const u = new URL(url);
  return `${u.hostname}:${u.port}`;
}

// ------------------------------------------------------------- the tally

const tally = new Map(); // "kind outcome" -> count
function count(kind, outcome) {
  const key = `${kind}\t${outcome}`;
  tally.set(key, (tally.get(key) ?? 0) + 1);
}
const events = { kills: 0, restarts: 0, database_restarts: 0, store_restarts: 0, fault_bursts: 0 };
const problems = []; // each a sentence; the soak fails if any

// Acknowledged uploads still expected, by id; deleted ones (acknowledged
// deletes); ones whose delete got no answer (either way is right).
const acknowledged = new Map();
const deleted = new Map();
const deleteUnknown = new Set();
const unfinishedTus = []; // { location, upload } of tus uploads not done yet

// ------------------------------------------------------------- the stack

const stack = await new Stack('s3').init();
const token = stack.token('soak');
const auth = { Authorization: `Bearer ${token}` };
const storeProxy = await FaultProxy.start([hostPort(stack.env.S3UP_S3_ENDPOINT)]);
const pgUrl = new URL(process.env.S3UP_TEST_PG_URL);
const databaseProxy = await FaultProxy.start([`127.0.0.1:${pgUrl.port}`]);
const throughProxy = stack.env.S3UP_DATABASE.replace(`:${pgUrl.port}/`, `:${databaseProxy.port}/`);
const instanceEnv = {
  S3UP_S3_ENDPOINT: `http://127.0.0.1:${storeProxy.port}`,
  S3UP_DATABASE: throughProxy,
  S3UP_S3_TIMEOUT: '5s',
  S3UP_DATABASE_TIMEOUT: '5s',
  S3UP_JANITOR_INTERVAL: '2s',
  // Above the longest upload here; an upload a killed instance was
  // receiving is left to the janitor this long.
  S3UP_STALE_UPLOAD_AGE: '30s',
  S3UP_BUFFER_BUDGET: '64MiB',
  S3UP_DOWNLOAD_BUDGET: '16MiB',
};
const instances = [new Server(stack, { env: instanceEnv }), new Server(stack, { env: instanceEnv })];
for (const i of instances) await i.start();
const logs = ['', '']; // each instance's log across its restarts
const balancer = await FaultProxy.start(instances.map((i) => `127.0.0.1:${i.port}`));
const base = `http://127.0.0.1:${balancer.port}`;

async function call(kind, path, init = {}) {
  try {
    const res = await fetch(`${base}${path}`, {
      ...init,
      headers: { ...auth, ...(init.headers ?? {}) },
      signal: AbortSignal.timeout(REQUEST_LIMIT_MS),
    });
    const body = Buffer.from(await res.arrayBuffer());
    count(kind, String(res.status));
    return { status: res.status, headers: res.headers, body };
  } catch (e) {
    const outcome = e.name === 'TimeoutError' ? 'hang' : 'no answer';
    count(kind, outcome);
    if (outcome === 'hang') problems.push(`${kind} ${path}: no answer within ${REQUEST_LIMIT_MS / 1000} s`);
    return { status: 0, headers: new Headers(), body: Buffer.alloc(0) };
  }
}

// ------------------------------------------------------------- the clients

let names = 0;
const nextName = (kind) => `${kind}-${++names}.bin`;

async function putUpload() {
  const u = { ...newContent(7 * MiB), name: nextName('put') };
  const r = await call('PUT', `/upload/${u.name}`, { method: 'PUT', body: bytesOf(u) });
  if (r.status === 201) acknowledged.set(JSON.parse(r.body).file_id, u);
}

async function formUpload() {
  const u = { ...newContent(3 * MiB), name: nextName('form') };
  const form = new FormData();
  form.append('file', new Blob([bytesOf(u)]), u.name);
  const r = await call('POST', '/upload', { method: 'POST', body: form });
  if (r.status === 201) acknowledged.set(JSON.parse(r.body).file_id, u);
}

const tusHeaders = { 'Tus-Resumable': '1.0.0' };

// PATCHes from `offset` in pieces, pausing now and then; on a failure,
// asks for the offset (through the balancer: either instance) and goes on.
// True once the service has acknowledged the last byte.
async function pushTus(t, deadline) {
  const { upload: u } = t;
  while (Date.now() < deadline) {
    const h = await call('tus HEAD', t.location, { method: 'HEAD', headers: tusHeaders });
    if (h.status === 404 || h.status === 410) {
      problems.push(`tus upload ${t.location} (created, ${t.offset ?? 0} bytes acknowledged) is gone: ${h.status}`);
      return false;
    }
    if (h.status !== 200) {
      await sleep(randomInt(300, 1500));
      continue;
    }
    let offset = Number(h.headers.get('upload-offset'));
    if (offset < (t.offset ?? 0)) problems.push(`tus upload ${t.location}: offset ${offset} went back from ${t.offset}`);
    t.offset = offset;
    if (offset === u.size) return true;
    const piece = Math.min(u.size - offset, randomInt(256 * 1024, 4 * MiB));
    const r = await call('tus PATCH', t.location, {
      method: 'PATCH',
      headers: { ...tusHeaders, 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': String(offset) },
      body: bytesOf(u).subarray(offset, offset + piece),
    });
    if (r.status === 204) {
      t.offset = Number(r.headers.get('upload-offset'));
      if (t.offset === u.size) return true;
      if (randomInt(4) === 0) await sleep(randomInt(100, 2000)); // a client pausing
    } else {
      await sleep(randomInt(200, 1500));
    }
  }
  return false;
}

async function tusUpload() {
  const u = { ...newContent(12 * MiB), name: nextName('tus') };
  const r = await call('tus POST', '/upload/resumable', {
    method: 'POST',
    headers: {
      ...tusHeaders,
      'Upload-Length': String(u.size),
      'Upload-Metadata': `filename ${Buffer.from(u.name).toString('base64')}`,
    },
  });
  if (r.status !== 201) return;
  const location = new URL(r.headers.get('location')).pathname;
  const t = { location, upload: u };
  if (await pushTus(t, Date.now() + 30_000)) {
    acknowledged.set(location.slice(location.lastIndexOf('/') + 1), u);
  } else {
    unfinishedTus.push(t);
  }
}

function randomAcknowledged() {
  const ids = [...acknowledged.keys()];
  return ids.length ? ids[randomInt(ids.length)] : null;
}

async function downloadOne() {
  const id = randomAcknowledged();
  if (!id) return;
  const u = acknowledged.get(id);
  let range = null;
  if (randomInt(2) === 0 && u.size > 1) {
    const first = randomInt(0, u.size - 1);
    range = [first, randomInt(first, u.size)];
  }
  const r = await call(range ? 'GET range' : 'GET', `/files/${id}/content`, {
    headers: range ? { Range: `bytes=${range[0]}-${range[1]}` } : {},
  });
  if (!acknowledged.has(id) && (r.status === 404 || r.status === 0)) return; // deleted meanwhile
  const expected = range ? bytesOf(u).subarray(range[0], range[1] + 1) : bytesOf(u);
  if (r.status === 200 || r.status === 206) {
    if (r.status !== (range ? 206 : 200) || sha256(r.body) !== sha256(expected)) {
      // A body the store stopped sending is cut short: the client sees it
      // (fetch's length check); anything else is wrong bytes.
      problems.push(`download of ${id} (${u.name}${range ? ` ${range}` : ''}): wrong bytes, status ${r.status}`);
    }
  } else if (r.status === 404) {
    problems.push(`download of acknowledged ${id} (${u.name}): 404`);
  }
}

async function deleteOne() {
  const id = randomAcknowledged();
  if (!id) return;
  const u = acknowledged.get(id);
  acknowledged.delete(id); // not downloaded meanwhile
  const r = await call('DELETE', `/files/${id}`, { method: 'DELETE' });
  if (r.status === 204 || r.status === 202) {
    deleted.set(id, u);
  } else if (r.status === 0) {
    deleteUnknown.add(id);
    deleted.set(id, u);
  } else if (r.status === 404) {
    problems.push(`delete of acknowledged ${id} (${u.name}): 404`);
  } else {
    acknowledged.set(id, u); // refused (503 ...): still there
  }
}

const operations = [
  [3, putUpload],
  [2, formUpload],
  [3, tusUpload],
  [4, downloadOne],
  [1, deleteOne],
];
const totalWeight = operations.reduce((n, [w]) => n + w, 0);

async function worker(until) {
  while (Date.now() < until) {
    let pick = randomInt(totalWeight);
    const [, op] = operations.find(([w]) => (pick -= w) < 0);
    await op();
    await sleep(randomInt(20, 200));
  }
}

// ------------------------------------------------------------- the chaos

async function restartDatabase() {
  await run(join(peersDir, 'postgres'), ['stop', process.env.S3UP_TEST_PG_DIR]);
  await sleep(randomInt(1000, 4000));
  await run(join(peersDir, 'postgres'), ['resume', process.env.S3UP_TEST_PG_DIR]);
  events.database_restarts++;
}

async function restartStore() {
  const conf = process.env.S3UP_TEST_S3_CEPH_CONF;
  const pid = Number(readFileSync(join(dirname(conf), 'run', 'client.rgw.test.pid'), 'utf8'));
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
      await sleep(50);
    } catch {
      break;
    }
  }
  await sleep(randomInt(1000, 4000));
  await run('radosgw', ['-c', conf, '-n', 'client.rgw.test']);
  for (let i = 0; i < 600; i++) {
    try {
      await fetch(process.env.S3UP_TEST_S3_ENDPOINT, { signal: AbortSignal.timeout(1000) });
      break;
    } catch {
      await sleep(100);
    }
  }
  events.store_restarts++;
}

async function faultBurst() {
  await storeProxy.command('reset_after 3000000', 'lose_answers 3', 'latency 150');
  await databaseProxy.command('lose_answers 2', 'latency 10');
  await balancer.command('latency 50');
  await sleep(8000);
  for (const p of [storeProxy, databaseProxy, balancer]) await p.command('clear');
  events.fault_bursts++;
}

async function killOne() {
  const which = randomInt(instances.length);
  const i = instances[which];
  await i.kill('SIGKILL');
  events.kills++;
  logs[which] += i.log;
  await sleep(randomInt(500, 3000));
  i.log = '';
  await i.restart();
  events.restarts++;
}

async function chaos(started, until) {
  const length = until - started;
  const once = [
    [started + length * 0.3, restartDatabase],
    [started + length * 0.5, faultBurst],
    [started + length * 0.7, restartStore],
  ];
  let nextKill = started + randomInt(20_000, 40_000);
  let nextReport = started + 60_000;
  while (Date.now() < until) {
    if (Date.now() >= nextReport) {
      const operations = [...tally.values()].reduce((a, b) => a + b, 0);
      const minute = Math.round((Date.now() - started) / 60_000);
      console.log(`soak: minute ${minute}, ${operations} operations, ${acknowledged.size} uploads held, ` +
        `${events.kills} kills, ${problems.length} problems`);
      nextReport += 60_000;
    }
    if (once.length && Date.now() >= once[0][0]) {
      const [, action] = once.shift();
      await action();
    } else if (Date.now() >= nextKill) {
      await killOne();
      nextKill = Date.now() + randomInt(20_000, 40_000);
    } else {
      await sleep(200);
    }
  }
  for (const [, action] of once) await action(); // a run too short for its schedule still has each
}

// ------------------------------------------------------------- the run

const started = Date.now();
const until = started + minutes * 60_000;
console.log(`soak: ${minutes} min, ${WORKERS} clients, instances on ${instances.map((i) => i.port)}, balancer ${balancer.port}`);
await Promise.all([chaos(started, until), ...Array.from({ length: WORKERS }, () => worker(until))]);

// ------------------------------------------------------------- the check

for (const p of [storeProxy, databaseProxy, balancer]) await p.command('clear');
phase(`resuming ${unfinishedTus.length} unfinished tus upload(s)`);
// Every tus upload that was created is finished: resuming is the promise.
await inParallel(unfinishedTus, WORKERS, async (t) => {
  if (await pushTus(t, Date.now() + 60_000)) {
    acknowledged.set(t.location.slice(t.location.lastIndexOf('/') + 1), t.upload);
  } else {
    problems.push(`tus upload ${t.location} could not be resumed to its end`);
  }
});

const psql = (sql) => stack.psqlValue(sql);
async function leftovers() {
  const found = [];
  const rows = psql("SELECT count(*) FROM uploads WHERE status IN ('pending', 'deleting')");
  if (rows !== '0') found.push(`${rows} pending or deleting row(s)`);
  const keys = await stack.keys();
  found.push(...(await stack.multipartUploads()).map((k) => `multipart upload of ${k}`));
  found.push(...keys.filter((k) => k.includes('.tail')).map((k) => `tail object ${k}`));
  const rowKeys = new Set(psql("SELECT storage_key FROM uploads WHERE status = 'complete'").split('\n').filter(Boolean)
    .map((k) => `objects/${k}`));
  const orphans = keys.filter((k) => !k.includes('.tail') && !rowKeys.has(k));
  if (orphans.length) found.push(`${orphans.length} object(s) without a row`);
  const usage = psql(
    "SELECT count(*) FROM users u WHERE used_bytes <> (SELECT COALESCE(SUM(file_size), 0) FROM uploads " +
    "WHERE user_id = u.id AND status = 'complete')",
  );
  if (usage !== '0') found.push(`${usage} user(s) whose usage is not the sum of their files`);
  return found;
}
// The janitor's turn: uploads a killed instance was receiving are stale
// after S3UP_STALE_UPLOAD_AGE, then swept within a round or two.
phase('waiting for the janitor to leave nothing behind');
let left = [];
const settled = Date.now() + 90_000;
do {
  left = await leftovers();
  if (left.length) await sleep(1000);
} while (left.length && Date.now() < settled);
problems.push(...left.map((l) => `after the janitor: ${l}`));

phase(`verifying ${acknowledged.size} acknowledged upload(s) and ${deleted.size} delete(s)`);
let verified = 0;
await inParallel(acknowledged, WORKERS, async ([id, u]) => {
  const meta = await call('check', `/files/${id}`);
  if (meta.status !== 200 || JSON.parse(meta.body).status !== 'complete') {
    problems.push(`acknowledged ${id} (${u.name}): ${meta.status} ${meta.body}`);
    return;
  }
  const r = await call('check', `/files/${id}/content`);
  if (r.status !== 200 || sha256(r.body) !== sha256(bytesOf(u))) {
    problems.push(`acknowledged ${id} (${u.name}): not byte-identical (${r.status})`);
  } else {
    verified++;
  }
});
let resurrected = 0;
await inParallel(deleted, WORKERS, async ([id]) => {
  if (deleteUnknown.has(id)) return;
  const r = await call('check', `/files/${id}`);
  if (r.status !== 404) {
    resurrected++;
    problems.push(`deleted ${id} is back: ${r.status}`);
  }
});
phase('done');

for (const [n, i] of instances.entries()) logs[n] += i.log;
const reports = logs.join('\n').split('\n').filter((l) => /AddressSanitizer|LeakSanitizer|runtime error:/.test(l));
if (reports.length) problems.push(`sanitizer reports:\n${reports.slice(0, 20).join('\n')}`);

for (const i of instances) await i.stop();
for (const p of [storeProxy, databaseProxy, balancer]) p.stop();

// ------------------------------------------------------------- the summary

const kinds = [...new Set([...tally.keys()].map((k) => k.split('\t')[0]))].sort();
const outcomes = [...new Set([...tally.keys()].map((k) => k.split('\t')[1]))].sort();
const width = 12;
const pad = (s, n = width) => String(s).padStart(n);
console.log(`\n${'operation'.padEnd(10)}${outcomes.map((o) => pad(o)).join('')}`);
for (const kind of kinds) {
  console.log(`${kind.padEnd(10)}${outcomes.map((o) => pad(tally.get(`${kind}\t${o}`) ?? '')).join('')}`);
}
const lost = problems.filter((p) => /acknowledged|gone|could not be resumed|went back/.test(p)).length;
console.log(`
minutes              ${minutes}
instance kills       ${events.kills} (restarts ${events.restarts})
database restarts    ${events.database_restarts}
store restarts       ${events.store_restarts}
fault bursts         ${events.fault_bursts}
uploads verified     ${verified} (byte-identical)
deletes verified     ${deleted.size - deleteUnknown.size} (+${deleteUnknown.size} unanswered)
lost                 ${lost}
resurrected          ${resurrected}
problems             ${problems.length}`);
for (const p of problems) console.log(`  - ${p}`);
await stack.close();
process.exit(problems.length ? 1 : 0);

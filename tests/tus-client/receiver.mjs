// A webhook receiver on loopback for the webhook tests: it checks every
// delivery with the `standardwebhooks` package's own verifier (not ours),
// records what arrived, and can be told to fail, stall, answer 410 or go
// away and come back on the same port. At /pre-upload it is the pre-upload
// hook: it answers each question as `decide` says.
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';

export function newSecret() {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

export class Receiver {
  constructor(secret) {
    this.verifier = new Webhook(secret);
    this.attempts = [];   // every request: { id, status, at, headers }
    this.events = [];     // the verified deliveries answered 2xx: { id, type, data, at, headers }
    this.invalid = [];    // deliveries whose signature did not verify
    // What to answer: (attempt) => a status, 'stall' (never), or 'lost' (taken,
    // then the connection dropped before the answer); 204 by default.
    this.answer = () => 204;
    this.questions = [];  // the pre-upload hook's, verified
    // The hook's answer to a question: an object sent as JSON with 200,
    // { httpStatus, body } to send that instead, or 'stall'.
    this.decide = () => ({ allow: true });
    this.port = 0;
  }

  async start() {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise((resolve) => this.server.listen(this.port, '127.0.0.1', resolve));
    this.port = this.server.address().port;
    this.url = `http://127.0.0.1:${this.port}/hooks`;
    this.hookUrl = `http://127.0.0.1:${this.port}/pre-upload`;
    return this;
  }

  // Gone: connections are refused until start() again (same port).
  async stop() {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  handle(req, res) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const id = req.headers['webhook-id'];
      const attempt = { id, at: Date.now(), headers: req.headers, n: this.attempts.filter((a) => a.id === id).length + 1 };
      if (req.url !== '/pre-upload') this.attempts.push(attempt);  // a hook's question is no event
      let payload;
      try {
        payload = this.verifier.verify(body, req.headers);
      } catch (e) {
        this.invalid.push({ id, error: e.message, headers: req.headers });
        res.writeHead(400).end();
        return;
      }
      if (req.url === '/pre-upload') {
        this.questions.push({ ...payload, headers: req.headers });
        const decision = this.decide(payload);
        if (decision === 'stall') return;
        if (decision.httpStatus) res.writeHead(decision.httpStatus, { 'Content-Type': 'application/json' }).end(decision.body ?? '');
        else res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(decision));
        return;
      }
      const answer = this.answer(attempt);
      if (answer === 'stall') return;  // never answers: the service's timeout ends it
      if (answer === 'lost') {
        // Taken, and the answer lost on the way back: the service cannot know.
        this.events.push({ id, type: payload.type, timestamp: payload.timestamp, data: payload.data, at: Date.now(), headers: req.headers, lost: true });
        req.socket.destroy();
        return;
      }
      const status = typeof answer === 'number' ? answer : answer.status;
      if (status >= 200 && status < 300) {
        this.events.push({ id, type: payload.type, timestamp: payload.timestamp, data: payload.data, at: Date.now(), headers: req.headers });
      }
      res.writeHead(status, typeof answer === 'object' ? answer.headers : {}).end();
    });
  }

  // The verified events of `type` (about `fileId`, if given).
  of(type, fileId) {
    return this.events.filter((e) => e.type === type && (!fileId || e.data.file_id === fileId));
  }

  // How many event ids arrived more than once.
  duplicates() {
    const seen = new Map();
    for (const e of this.events) seen.set(e.id, (seen.get(e.id) ?? 0) + 1);
    return [...seen.values()].filter((n) => n > 1).length;
  }
}

// A webhook receiver for bench/small_uploads.sh (S3UP_BENCH_WEBHOOKS=1): it
// answers every delivery 204 at once, checks its Standard Webhooks signature
// (as a real receiver would, with the standardwebhooks package), and counts
// the events by type. GET /counts answers the counts as JSON. It writes its
// port to the file named by its first argument.
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

// The package comes with the tests' lockfile (tests/tus-client).
const { Webhook } = createRequire(new URL('../tests/tus-client/package.json', import.meta.url))('standardwebhooks');

const verifier = new Webhook(process.env.S3UP_WEBHOOK_SECRET);
const counts = { invalid: 0 };
const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/counts') {
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(counts));
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    try {
      const event = verifier.verify(Buffer.concat(chunks).toString('utf8'), req.headers);
      counts[event.type] = (counts[event.type] ?? 0) + 1;
      res.writeHead(204).end();
    } catch {
      counts.invalid += 1;
      res.writeHead(400).end();
    }
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => writeFileSync(process.argv[2], String(server.address().port)));

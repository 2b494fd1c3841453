// One upload of FILE through the web page (Uppy on the tus endpoint) in
// Debian's chromium; prints the seconds from the click on "Upload" to the
// file in the list. With `raw`, the same browser PUTs the same file to
// PUT /upload/ with one fetch() instead: the browser's own rate, the bound
// for any page.
//   node upload.mjs URL TOKEN FILE [raw]
import puppeteer from 'puppeteer-core';
import { basename } from 'node:path';

const [url, token, file, mode] = process.argv.slice(2);
const browser = await puppeteer.launch({
  executablePath: process.env.S3UP_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage();
  await page.goto(url, { waitUntil: 'networkidle0' });
  await page.type('#token', token);
  await page.click('#sign-in button[type=submit]');
  const input = await page.waitForSelector('#workspace:not([hidden]) .uppy-Dashboard-input');
  if (mode === 'raw') {
    await page.evaluate(() => {
      const own = document.createElement('input');
      own.type = 'file';
      own.id = 'bench-file';
      document.body.append(own);
    });
    await (await page.$('#bench-file')).uploadFile(file);
    const seconds = await page.evaluate(async (t) => {
      const picked = document.getElementById('bench-file').files[0];
      const started = performance.now();
      const res = await fetch(`/upload/${encodeURIComponent(picked.name)}`,
        { method: 'PUT', body: picked, headers: { Authorization: `Bearer ${t}` } });
      if (res.status !== 201) throw new Error(`PUT answered ${res.status}`);
      return (performance.now() - started) / 1000;
    }, token);
    console.log(seconds.toFixed(3));
    process.exit(0);
  }
  await input.uploadFile(file);
  await page.waitForSelector('.uppy-StatusBar-actionBtn--upload');
  const name = basename(file);
  const started = performance.now();
  await page.click('.uppy-StatusBar-actionBtn--upload');
  await page.waitForFunction(
    (n) => [...document.querySelectorAll('#files tbody tr td:first-child')].some((c) => c.textContent === n),
    { timeout: 0, polling: 50 }, name);
  console.log(((performance.now() - started) / 1000).toFixed(3));
} finally {
  await browser.close();
}

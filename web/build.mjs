// Bundles the page (src/) into OUT_DIR: assets/app-<hash>.js and .css
// (content-hashed names, cached for good) and index.html naming them. The
// build embeds OUT_DIR into the binary (cmake/EmbedWeb.cmake).
//   node build.mjs OUT_DIR
import { readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { basename, join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) throw new Error('usage: node build.mjs OUT_DIR');
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });

const result = await esbuild.build({
  entryPoints: [join(here, 'src/app.js')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020'],
  outdir: join(out, 'assets'),
  entryNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
});
const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const named = (ext) => {
  const found = outputs.find((name) => name.startsWith('app-') && name.endsWith(ext));
  if (!found) throw new Error(`no app-*${ext} in the bundle`);
  return found;
};
const html = readFileSync(join(here, 'src/index.html'), 'utf8')
  .replace('{{app.css}}', named('.css'))
  .replace('{{app.js}}', named('.js'));
writeFileSync(join(out, 'index.html'), html);

#!/usr/bin/env node
// Writes DIST/circuitscope-offline.html: the whole page in one file that opens
// from file:// with no server and no network. index.html with the stylesheet
// and the shell inlined, and before the shell window.circuitscopeEmbedded:
// every other file the page fetches (circuitscope.js, circuitscope.wasm,
// assets/models/index.json and each listed model's files, the Train tab's text
// sample in assets/text/), base64 by relative
// path; the shell reads from it instead of fetching (shell/circuitscope-shell.js,
// siteFetch).
// Usage: node scripts/make-offline.mjs DIST   (run by the circuitscope_offline target)
import { existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';

const dist = process.argv[2];
if (!dist) {
  console.error('usage: node scripts/make-offline.mjs DIST');
  process.exit(2);
}
const read = (rel) => readFileSync(join(dist, rel));

// Inline text must not close its <script> or <style> element early.
function inline(rel, closer) {
  const text = read(rel).toString('utf8');
  if (text.toLowerCase().includes(closer)) throw new Error(`${rel} contains "${closer}": it cannot be inlined as is`);
  return text;
}

const files = ['circuitscope.js', 'circuitscope.wasm', 'assets/models/index.json'];
const index = JSON.parse(read('assets/models/index.json').toString('utf8'));
for (const m of index) {
  // The shell fetches assets/models/<encodeURIComponent(id)>/<file>.
  for (const f of m.files) files.push(`assets/models/${encodeURIComponent(m.id)}/${f}`);
}
// The Train tab's text sample (the shell fetches assets/text/index.json and the files it names).
if (existsSync(join(dist, 'assets/text/index.json'))) {
  const text = JSON.parse(read('assets/text/index.json').toString('utf8'));
  files.push('assets/text/index.json', `assets/text/${text.train.file}`, `assets/text/${text.heldout.file}`,
    `assets/text/${text.tokenizer}`);
}
const embedded = {};
for (const rel of files) embedded[rel] = read(decodeURIComponent(rel)).toString('base64');

let html = read('index.html').toString('utf8');
const css = '<link rel="stylesheet" href="shell/circuitscope.css">';
const shell = '<script src="shell/circuitscope-shell.js"></script>';
if (!html.includes(css) || !html.includes(shell)) throw new Error('index.html: the stylesheet or shell tag to inline is not there');
html = html.replace(css, () => `<style>\n${inline('shell/circuitscope.css', '</style')}</style>`);
html = html.replace(shell, () =>
  `<script>window.circuitscopeEmbedded = ${JSON.stringify(embedded)};</script>\n` +
  `<script>\n${inline('shell/circuitscope-shell.js', '</script')}</script>`);

const out = join(dist, 'circuitscope-offline.html');
writeFileSync(out + '.tmp', html);
renameSync(out + '.tmp', out);
const mb = (n) => (n / 1e6).toFixed(1);
console.log(`circuitscope-offline.html: ${mb(html.length)} MB (${files.length} files embedded)`);

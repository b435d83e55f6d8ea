// dist/ from any static host under any sub-path: the build's dist/ is copied
// to /courses/ml/circuitscope/ below a folder that Python's own static file
// server (python3 -m http.server, which knows nothing of the project) serves,
// as a teacher would put it on their web space. The page must load with every
// request inside that sub-path (harness.mjs reports any other), with and
// without the trailing slash, pick a bundled model by ?model=, and load a
// model the "teacher" added: a folder beside the bundled ones and an entry in
// assets/models/index.json (README, "Teachers"); a link's model given as an
// address on the same site (a folder or a .safetensors file) opens with the
// link's settings, one on another site is refused without a request to it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPage, waitForState, assertNoErrors, distDir } from './harness.mjs';

const SUB = 'courses/ml/circuitscope';
let root, python, base;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'circuitscope-host-'));
  const site = join(root, ...SUB.split('/'));
  cpSync(distDir, site, { recursive: true, dereference: true });
  // The teacher's own model: a folder of the three files and an index entry.
  cpSync(join(site, 'assets', 'models', 'attn-only-1l'), join(site, 'assets', 'models', 'my-class-model'), { recursive: true });
  const indexFile = join(site, 'assets', 'models', 'index.json');
  const index = JSON.parse(readFileSync(indexFile, 'utf8'));
  index.push({ id: 'my-class-model', title: 'Our class model', description: 'Added by the teacher.',
    files: ['model.safetensors', 'config.json', 'tokenizer.json'] });
  writeFileSync(indexFile, JSON.stringify(index, null, 2));
  // A model that is in no list, only at an address on the same site (a link's model=).
  cpSync(join(site, 'assets', 'models', 'attn-only-1l'), join(site, 'my-models', 'm1'), { recursive: true });
  python = spawn('python3', ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', root],
    { stdio: ['ignore', 'pipe', 'ignore'] });
  const port = await new Promise((ok, fail) => {
    let text = '';
    python.stdout.on('data', (d) => {
      text += d;
      const m = /port (\d+)/.exec(text);
      if (m && m[1] !== '0') ok(Number(m[1]));
    });
    python.on('exit', (code) => fail(new Error(`python3 -m http.server exited with ${code}`)));
  });
  base = `http://127.0.0.1:${port}/${SUB}/`;
});

after(() => {
  python?.kill();
  if (root) rmSync(root, { recursive: true, force: true });
});

// The python server stays up across pages: close() only stops the page.
const server = (url) => ({ url, close: async () => {} });

async function loaded(query, url, wantId, { error = null, more = () => true } = {}) {
  const app = await openPage({ server: server(url), query });
  try {
    const s = await waitForState(app.page, (x) => x.model && x.model.id === wantId && !x.loading.active && more(x),
      { what: `${wantId} at ${url}${query}`, timeout: 120000 });
    if (error) {
      assert.match(s.error, error);
    } else {
      assert.equal(s.error, '', s.error);
      assertNoErrors(assert, app.errors);
    }
    return s;
  } finally {
    await app.close();
  }
}

test('dist/ under a sub-path of a plain static server loads the default model', { timeout: 300000 }, async () => {
  const index = JSON.parse(readFileSync(join(distDir, 'assets', 'models', 'index.json'), 'utf8'));
  const s = await loaded('', base, index[0].id);
  assert.equal(s.model.config.n_layers, 2);
});

test('without the trailing slash the server redirects and the page still loads', { timeout: 300000 }, async () => {
  const index = JSON.parse(readFileSync(join(distDir, 'assets', 'models', 'index.json'), 'utf8'));
  await loaded('', base.replace(/\/$/, ''), index[0].id);
});

test('?model= picks a bundled model, and a model the teacher added', { timeout: 300000 }, async () => {
  const one = await loaded('?model=attn-only-1l', base, 'attn-only-1l');
  assert.equal(one.model.config.n_layers, 1);
  const own = await loaded('?model=my-class-model', base, 'my-class-model');
  assert.equal(own.model.config.n_layers, 1);
  assert.equal(own.model.title, 'Our class model');
});

test('a link\'s model at an address on the same site opens with the link\'s settings; another site is refused', { timeout: 300000 }, async () => {
  const index = JSON.parse(readFileSync(join(distDir, 'assets', 'models', 'index.json'), 'utf8'));
  const folder = await loaded('?model=my-models%2Fm1%2F&view=head&head.head=3', base, 'my-models/m1/',
    { more: (x) => x.open_view === 'head' });
  assert.equal(folder.model.config.n_layers, 1);
  assert.equal(folder.views.head.selection.head, 3, 'the link\'s settings are applied to that model');
  const file = await loaded('?model=my-models/m1/model.safetensors', base, 'my-models/m1/model.safetensors');
  assert.equal(file.model.config.n_layers, 1);
  // Another site: a message, the first bundled model, and no request made to it (harness: requests outside the sub-path are errors).
  await loaded('?model=http%3A%2F%2Fexample.invalid%2Fm%2F', base, index[0].id, { error: /on another site/ });
  await loaded('?model=%2F%2Fexample.invalid%2Fm%2F', base, index[0].id, { error: /on another site/ });
  // Nothing there: the reason, and the first bundled model.
  await loaded('?model=my-models%2Fnothing%2F', base, index[0].id, { error: /model\.safetensors: HTTP 404/ });
});

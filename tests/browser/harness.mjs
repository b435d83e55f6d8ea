// Shared pieces of the browser tests: a static server for dist/, Chromium
// through playwright-core with a fresh profile, console/page error capture,
// waiting on the page's state (cs_state_json), screenshots, and small model
// files written here in JavaScript (independent of the C++ under test).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const distDir = resolve(process.env.CIRCUITSCOPE_DIST || join(repoRoot, 'build-wasm', 'dist'));
export const cliPath = process.env.CIRCUITSCOPE_CLI || join(repoRoot, 'build', 'circuitscope');
export const artifactsDir = join(repoRoot, 'test-artifacts');

const MIME = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.wasm': 'application/wasm',
  '.safetensors': 'application/octet-stream', '.png': 'image/png', '.md': 'text/plain; charset=utf-8',
};

// Serves `root` on a free 127.0.0.1 port. Returns { url, close() }.
// isolated: with the COOP and COEP headers that make the page cross-origin
// isolated (the threaded build runs; README, "Worker threads").
// fault(path, res, file): called first for every request; it may answer the
// request itself (a network fault) and return true.
export async function serveStatic(root, { isolated = false, fault = null } = {}) {
  if (!existsSync(join(root, 'index.html'))) {
    throw new Error(`${root}/index.html not found: build the page first (CIRCUITSCOPE_DIST points at the wasm build's dist/)`);
  }
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = normalize(join(root, path.endsWith('/') ? path + 'index.html' : path));
    if (!file.startsWith(root + sep) && file !== root) { res.writeHead(403).end(); return; }
    if (fault && fault(path, res, file)) return;
    let st;
    try { st = statSync(file); } catch { res.writeHead(404).end('not found'); return; }
    if (!st.isFile()) { res.writeHead(404).end('not found'); return; }
    res.writeHead(200, {
      'Content-Type': MIME[extname(file)] || 'application/octet-stream',
      'Content-Length': st.size,
      'Cache-Control': 'no-store',
      ...(isolated ? { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } : {}),
    });
    res.end(readFileSync(file));
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((ok) => server.close(ok)) };
}

export const chromiumArgs = [
  '--no-sandbox', '--use-gl=angle', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// Starts the server and Chromium, opens the page, records console errors and
// page errors. Returns { page, context, errors, url, close() }.
// server: { url, close() } of a server already serving the page (e.g. under a
// sub-path, or a file:// URL); by default dist/ is served at the root of a
// fresh one. Requests that leave server.url are reported in `errors`.
// offline: the browser is offline and every http(s) request is aborted.
// isolated: dist/ served cross-origin isolated (the threaded build).
export async function openPage({ query = '', viewport = { width: 1400, height: 900 }, deviceScaleFactor = 1,
  extraArgs = [], server: given = null, offline = false, isolated = false } = {}) {
  const server = given || await serveStatic(distDir, { isolated });
  const profile = mkdtempSync(join(tmpdir(), 'circuitscope-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CIRCUITSCOPE_CHROMIUM || '/usr/bin/chromium',
      headless: true, args: [...chromiumArgs, ...extraArgs], viewport, deviceScaleFactor,
    });
  } catch (e) {
    await server.close();
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  const page = context.pages()[0] || await context.newPage();
  const errors = [];
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(`console.error: ${msg.text()}`); });
  page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
  // net::ERR_ABORTED is left out: Chromium reports it for a fetch whose body a
  // reader consumed to the end before the load completed (seen with the
  // streamed downloads here, whose data all arrived); real failures (404,
  // refused) also show up as console errors.
  page.on('requestfailed', (req) => {
    const why = req.failure()?.errorText || '';
    if (why !== 'net::ERR_ABORTED') errors.push(`request failed: ${req.url()} ${why}`);
  });
  page.on('request', (req) => {
    if (!req.url().startsWith(server.url) && !req.url().startsWith('data:') && !req.url().startsWith('blob:')) {
      errors.push(`request outside the page's own server: ${req.url()}`);
    }
  });
  if (offline) {
    // The network cut: offline, and every http(s) request aborted.
    await context.setOffline(true);
    await context.route(/^https?:/, (route) => route.abort('internetdisconnected'));
  }
  await page.goto(server.url + query);
  return {
    page, context, errors, url: server.url,
    async close() {
      await context.close().catch(() => {});
      await server.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

// The page's state (cs_state_json), or null before the runtime is up.
export async function getState(page) {
  return page.evaluate(() => (window.circuitscopeShell ? window.circuitscopeShell.state() : null));
}

// Polls the state until pred(state) is true; throws with the last state on timeout.
export async function waitForState(page, pred, { timeout = 60000, what = 'state' } = {}) {
  const start = Date.now();
  let last = null;
  while (Date.now() - start < timeout) {
    last = await getState(page);
    if (last && pred(last)) return last;
    await page.waitForTimeout(50);
  }
  throw new Error(`timed out waiting for ${what}; last state: ${JSON.stringify(last)}`);
}

// Waits until the page is idle: nothing staged, downloading, loading or computing
// (no jobs: the views' results are on screen), and some frames drawn after.
export async function waitIdle(page, opts = {}) {
  const quiet = (s) => !s.loading.active && !s.download.active && !(s.jobs && s.jobs.length);
  await waitForState(page, (s) => quiet(s) && s.frames > 2, { what: 'idle', ...opts });
  await page.waitForFunction(() => !window.circuitscopeShell.busy());
  const f = (await getState(page)).frames;
  return waitForState(page, (s) => quiet(s) && s.frames >= f + 3, { what: 'frames after idle', ...opts });
}

// Waits until the page has drawn n more frames.
export async function waitFrames(page, n = 3) {
  const f = (await getState(page)).frames;
  return waitForState(page, (s) => s.frames >= f + n, { what: `${n} frames` });
}

// Presses a key or combination ("Enter", "Control+c") holding it for a couple
// of frames: Dear ImGui 1.86 reads key state once per frame, so a press and
// release inside one frame would go unseen (a person's key press lasts longer).
export async function pressKey(page, combo) {
  const keys = combo.split('+');
  for (const k of keys) await page.keyboard.down(k);
  await waitFrames(page, 2);
  for (const k of keys.reverse()) await page.keyboard.up(k);
  await waitFrames(page, 1);
}

export async function screenshot(page, name) {
  mkdirSync(artifactsDir, { recursive: true });
  const path = join(artifactsDir, name);
  await page.screenshot({ path });
  return path;
}

// Share of pixels of a PNG (decoded by the browser itself) within `box`
// (fractions of the image: x0, y0, x1, y1) that satisfy pred(r, g, b).
export async function pixelShare(page, pngPath, box, predSource) {
  const data = readFileSync(pngPath).toString('base64');
  return page.evaluate(async ({ data, box, predSource }) => {
    const img = new Image();
    img.src = `data:image/png;base64,${data}`;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width;
    c.height = img.height;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const x0 = Math.floor(box[0] * img.width), y0 = Math.floor(box[1] * img.height);
    const x1 = Math.ceil(box[2] * img.width), y1 = Math.ceil(box[3] * img.height);
    const px = ctx.getImageData(x0, y0, x1 - x0, y1 - y0).data;
    const pred = new Function('r', 'g', 'b', `return (${predSource});`);
    let hit = 0;
    for (let i = 0; i < px.length; i += 4) if (pred(px[i], px[i + 1], px[i + 2])) hit++;
    return hit / (px.length / 4);
  }, { data, box, predSource });
}

// ---- test models, written here (not by the code under test) --------------------

// Deterministic PRNG (mulberry32) and normal samples (Box-Muller).
function rng(seed) {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

// safetensors bytes: 8-byte little-endian header length, JSON header (padded
// with spaces to a multiple of 8), then F32 data in header order.
export function safetensorsBytes(tensors, metadata) {
  const header = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const n = t.values.length * 4;
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8) json += ' ';
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const t of tensors) {
    for (const v of t.values) { out.writeFloatLE(v, pos); pos += 4; }
  }
  return out;
}

// An attention-only model in TransformerLens names and shapes (row vectors, x @ W):
// embed.W_E [d_vocab, d_model], pos_embed.W_pos [n_ctx, d_model],
// blocks.l.attn.W_Q/W_K/W_V [n_heads, d_model, d_head], W_O [n_heads, d_head, d_model],
// b_Q/b_K/b_V [n_heads, d_head], b_O [d_model], blocks.l.ln1.w/b [d_model] (LN),
// ln_final.w/b [d_model] (LN), unembed.W_U [d_model, d_vocab], unembed.b_U [d_vocab].
export function makeModel({ nLayers = 1, dModel = 16, nHeads = 2, dHead = 8, nCtx = 32, dVocab = 257,
  norm = 'LN', seed = 7, name = 'test-upload' } = {}) {
  const randn = rng(seed);
  const tensor = (name, shape, scale = 0.5, mean = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return { name, shape, values: Array.from({ length: n }, () => mean + scale * randn()) };
  };
  const t = [tensor('embed.W_E', [dVocab, dModel]), tensor('pos_embed.W_pos', [nCtx, dModel], 0.1)];
  for (let l = 0; l < nLayers; l++) {
    const b = `blocks.${l}.`;
    if (norm === 'LN') t.push(tensor(b + 'ln1.w', [dModel], 0.1, 1), tensor(b + 'ln1.b', [dModel], 0.1));
    t.push(tensor(b + 'attn.W_Q', [nHeads, dModel, dHead], 0.3), tensor(b + 'attn.W_K', [nHeads, dModel, dHead], 0.3),
      tensor(b + 'attn.W_V', [nHeads, dModel, dHead], 0.3), tensor(b + 'attn.W_O', [nHeads, dHead, dModel], 0.3),
      tensor(b + 'attn.b_Q', [nHeads, dHead], 0.1), tensor(b + 'attn.b_K', [nHeads, dHead], 0.1),
      tensor(b + 'attn.b_V', [nHeads, dHead], 0.1), tensor(b + 'attn.b_O', [dModel], 0.1));
  }
  if (norm === 'LN') t.push(tensor('ln_final.w', [dModel], 0.2, 1), tensor('ln_final.b', [dModel], 0.3));
  t.push(tensor('unembed.W_U', [dModel, dVocab]), tensor('unembed.b_U', [dVocab], 0.5));
  const config = {
    model_name: name, n_layers: nLayers, d_model: dModel, n_heads: nHeads, d_head: dHead, n_ctx: nCtx,
    d_vocab: dVocab, attn_only: true, normalization_type: norm === 'LN' ? 'LN' : null,
    positional_embedding_type: 'standard',
  };
  return { tensors: t, config };
}

// Writes files { name: Buffer|string } into a fresh temporary folder; returns its path.
export function writeTempFolder(files, prefix = 'circuitscope-model-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
  return dir;
}

// The default (first) bundled model's files as shipped in dist/.
export function demoFiles() {
  const dir = join(distDir, 'assets', 'models', defaultBundled().id);
  return {
    dir,
    config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
    tokenizerJson: readFileSync(join(dir, 'tokenizer.json'), 'utf8'),
  };
}

// The models listed in dist/assets/models/index.json.
export function bundledIndex() {
  return JSON.parse(readFileSync(join(distDir, 'assets', 'models', 'index.json'), 'utf8'));
}

// The first model listed in dist/assets/models/index.json.
export function defaultBundled() {
  return bundledIndex()[0];
}

// Asks the shell for bundled model `id` and waits until the page gives it up
// with an error (no load or download left running); returns that state.
export async function loadBundledFailing(page, id, { what = `the error loading ${id}`, timeout = 60000 } = {}) {
  await page.evaluate((id) => window.circuitscopeShell.loadBundled(id), id);
  return waitForState(page, (x) => x.error !== '' && !x.loading.active && !x.download?.active, { what, timeout });
}

// Asserts no console errors, page errors, failed or outside requests were seen.
export function assertNoErrors(assert, errors) {
  assert.deepStrictEqual(errors, [], `the page reported errors:\n${errors.join('\n')}`);
}

// Number of parameters in a safetensors file, from its header alone.
export function safetensorsParamCount(bytes) {
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  let total = 0;
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || !['F32', 'F16', 'BF16', 'F64'].includes(t.dtype)) continue;
    total += t.shape.reduce((a, b) => a * b, 1);
  }
  return total;
}

// Tokens in a Hugging Face tokenizer.json: highest id + 1 over vocab and added_tokens.
export function tokenizerSize(tokenizerJson) {
  const t = JSON.parse(tokenizerJson);
  let top = -1;
  for (const id of Object.values(t.model?.vocab || {})) top = Math.max(top, id);
  for (const a of t.added_tokens || []) top = Math.max(top, a.id);
  return top + 1;
}

// Files of a test model (folder layout) whose vocabulary matches the default
// bundled model, so that model's tokenizer.json can go with it.
export function testModelFiles(opts = {}) {
  const demo = demoFiles();
  const { tensors, config } = makeModel({ dVocab: demo.config.d_vocab, ...opts });
  return {
    config,
    files: {
      'model.safetensors': safetensorsBytes(tensors),
      'config.json': JSON.stringify(config, null, 2),
      'tokenizer.json': demo.tokenizerJson,
    },
  };
}

// ---- helpers the view tests share -------------------------------------------------------
// The centre of a widget's rectangle from the state's "rects" ([x0, y0, x1, y1]).
export const center = (r) => ({ x: (r[0] + r[2]) / 2, y: (r[1] + r[3]) / 2 });

// Opens a view's tab and waits until it is the one drawn.
export async function openTab(page, id) {
  await page.evaluate((id) => Module.ccall('cs_open_view', null, ['string'], [id]), id);
  await waitForState(page, (s) => s.open_view === id, { what: `tab ${id}` });
}

// The k token ids with the largest values of a logits row, ties by id (as the views rank).
export const topIds = (row, k) =>
  row.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, k).map(([, i]) => i);

// The CLI's JSON for `args` (--json added).
export const cliJson = (args) =>
  JSON.parse(execFileSync(cliPath, [...args, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 }));

// A number the page holds against the CLI's, relative to max(1, |cli|).
export const nearCli = (page, cli, what, tol = 1e-4) =>
  assert.ok(Math.abs(page - cli) <= tol * Math.max(1, Math.abs(cli)), `${what}: page ${page} vs CLI ${cli}`);


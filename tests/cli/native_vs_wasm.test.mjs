// Native vs wasm (node --test): the same `circuitscope run ... --json --logits
// --patterns` from the native binary and from the wasm build under Node
// (circuitscope-node.js) must agree on every number to 1e-4 relative
// (|a - b| <= 1e-4 * max(|a|, |b|, s), s = 10% of the largest magnitude in
// that output: a logit that sums to nearly zero carries the rounding error of
// its large terms, so its own size is no scale for it). Float sums differ in
// order and FMA use between AVX2 and wasm SIMD128; differences seen are about
// 1e-6 of the largest logit.
// Environment: CIRCUITSCOPE_BIN, CIRCUITSCOPE_WASM_JS, CIRCUITSCOPE_SOURCE_DIR.
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, truncateSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';

import { cli, cliJson, DEMO, maxRelDiff, readSafetensors, SOURCE_DIR, tempDir, WASM_JS } from './helpers.mjs';

const TOL = 1e-4;
const work = tempDir();
const shortLN = path.join(work, 'shortformer-ln');
const stdLN = path.join(work, 'standard-ln');

before(() => {
  assert.ok(WASM_JS && existsSync(WASM_JS), `wasm CLI not found: '${WASM_JS}' (build the wasm tree first)`);
  let r = cli(['make-random', shortLN, '--layers', '2', '--d-model', '64', '--heads', '4', '--d-head', '16',
    '--ctx', '48', '--vocab', '300', '--pos', 'shortformer', '--norm', 'LN', '--seed', '42']);
  assert.equal(r.code, 0, r.stderr);
  r = cli(['make-random', stdLN, '--layers', '3', '--d-model', '32', '--heads', '4', '--d-head', '8',
    '--ctx', '40', '--vocab', '123', '--pos', 'standard', '--norm', 'LN', '--seed', '9', '--f16']);
  assert.equal(r.code, 0, r.stderr);
});

function compare(args) {
  const native = cliJson(args);
  const wasm = cliJson(args, { wasm: true });
  assert.deepEqual(wasm.ids, native.ids);
  assert.deepEqual(wasm.tokens, native.tokens);
  assert.equal(wasm.weights, native.weights);
  const keys = ['loss', 'losses', 'logits', 'patterns'];
  for (const k of keys) {
    assert.ok(k in native, `native output lacks ${k}`);
    const d = maxRelDiff(native[k], wasm[k], 0.1 * maxAbs(native[k]), k);
    assert.ok(d <= TOL, `${k}: native and wasm differ by ${d.toExponential(2)} relative`);
  }
  return native;
}

const maxAbs = (x) => (Array.isArray(x) ? x.reduce((m, v) => Math.max(m, maxAbs(v)), 0) : Math.abs(x ?? 0));

const ids = (n, V, mul = 37, add = 5) => Array.from({ length: n }, (_, i) => (i * mul + add) % V).join(',');

test('demo model, --ids (processed)', () => {
  const j = compare(['run', DEMO, '--ids', '256,' + ids(60, 256), '--json', '--logits', '--patterns']);
  assert.equal(j.patterns.length, 2);
});

test('demo model, --text through the tokenizer', () => {
  compare(['run', DEMO, '--text', 'Permission is hereby granted, free of charge, to any person\n', '--json',
    '--logits', '--patterns']);
});

test('random shortformer + LN model, processed and raw', () => {
  compare(['run', shortLN, '--ids', ids(48, 300), '--json', '--logits', '--patterns']);
  compare(['run', shortLN, '--ids', ids(48, 300, 11, 2), '--json', '--logits', '--patterns', '--raw']);
});

test('random standard + LN model from F16 safetensors', () => {
  compare(['run', stdLN, '--ids', ids(40, 123), '--json', '--logits', '--patterns']);
});

test('bigrams and info agree', () => {
  for (const args of [
    ['bigrams', shortLN, '--id', '17', '--top', '20', '--json'],
    ['bigrams', DEMO, '--token', 'e', '--top', '10', '--reverse', '--json'],
  ]) {
    const n = cliJson(args), w = cliJson(args, { wasm: true });
    const list = n.next ? 'next' : 'sources';
    assert.deepEqual(w[list].map((e) => e.id), n[list].map((e) => e.id));
    const pairs = (j) => j[list].map((e) => [e.logit, e.prob]);
    assert.ok(maxRelDiff(pairs(n), pairs(w), 0.1 * maxAbs(pairs(n))) <= TOL);
  }
  const ni = cliJson(['info', DEMO, '--json']), wi = cliJson(['info', DEMO, '--json'], { wasm: true });
  assert.deepEqual(wi, ni);
});

test('errors: same exit code and message', () => {
  for (const args of [['run', shortLN, '--ids', '1,x'], ['info', path.join(work, 'missing')], ['nope']]) {
    const n = cli(args), w = cli(args, { wasm: true });
    assert.notEqual(n.code, 0);
    assert.equal(w.code, n.code, `exit code for ${args.join(' ')}: wasm stderr ${w.stderr}`);
    assert.equal(w.stderr.trim(), n.stderr.trim());
    assert.equal(w.stdout, '');
  }
});

// heads / ov / qk / skip-trigrams: the same ids in the same order and every
// number within 1e-5 relative (|a - b| <= 1e-5 * max(|a|, |b|, s), s = 10% of
// the largest magnitude of that list, as above).
const CIRCUIT_TOL = 1e-5;
const numbersClose = (n, w, what) => {
  const d = maxRelDiff(n, w, 0.1 * maxAbs(n), what);
  assert.ok(d <= CIRCUIT_TOL, `${what}: native and wasm differ by ${d.toExponential(2)} relative`);
};

test('heads: scores and eigenvalues agree', () => {
  for (const args of [['heads', shortLN, '--json'], ['heads', stdLN, '--json', '--raw']]) {
    const n = cliJson(args), w = cliJson(args, { wasm: true });
    assert.equal(w.weights, n.weights);
    assert.equal(w.heads.length, n.heads.length);
    for (const key of ['ov_copying_score', 'qk_copying_score', 'positional_share', 'ov_diagonal_top1',
      'ov_diagonal_top5', 'attn_current', 'attn_previous'])
      numbersClose(n.heads.map((e) => e[key]), w.heads.map((e) => e[key]), `${args[1]} ${key}`);
    n.heads.forEach((e, i) => {
      numbersClose(e.ov_eigenvalues, w.heads[i].ov_eigenvalues, `ov_eigenvalues ${i}`);
      numbersClose(e.qk_eigenvalues, w.heads[i].qk_eigenvalues, `qk_eigenvalues ${i}`);
    });
  }
});

test('ov, qk and skip-trigrams agree', () => {
  for (const args of [
    ['ov', shortLN, '--head', '1.2', '--source', '17', '--top', '20', '--json'],
    ['ov', stdLN, '--head', '2.0', '--out', '5', '--top', '20', '--json', '--raw'],
    ['qk', shortLN, '--head', '0.1', '--destination', '33', '--top', '20', '--json'],
    ['qk', stdLN, '--head', '1.3', '--source', '7', '--top', '20', '--json', '--no-embed-norm'],
  ]) {
    const n = cliJson(args), w = cliJson(args, { wasm: true });
    assert.deepEqual(w.top.map((e) => e.id), n.top.map((e) => e.id), args.join(' '));
    numbersClose(n.top.map((e) => e.value), w.top.map((e) => e.value), args.join(' '));
  }
  for (const args of [
    ['skip-trigrams', shortLN, '--head', '1.0', '--top', '25', '--json'],
    ['skip-trigrams', stdLN, '--head', '0.2', '--top', '10', '--destination', '4', '--json', '--raw'],
  ]) {
    const n = cliJson(args), w = cliJson(args, { wasm: true });
    const ids = (j) => j.entries.map((e) => [e.source.id, e.destination.id, e.out.id]);
    assert.deepEqual(ids(w), ids(n), args.join(' '));
    for (const key of ['score', 'qk', 'ov'])
      numbersClose(n.entries.map((e) => e[key]), w.entries.map((e) => e[key]), `${args.join(' ')} ${key}`);
    numbersClose([n.qk_rms, n.ov_rms], [w.qk_rms, w.ov_rms], 'rms');
  }
});

test('circuit commands: same exit code and message on bad input', () => {
  for (const args of [['ov', shortLN, '--head', '5.0', '--source', '1'], ['qk', shortLN, '--head', 'x', '--source', '1'],
    ['skip-trigrams', shortLN, '--head', '0.0', '--out', '300']]) {
    const n = cli(args), w = cli(args, { wasm: true });
    assert.notEqual(n.code, 0);
    assert.equal(w.code, n.code, `exit code for ${args.join(' ')}: wasm stderr ${w.stderr}`);
    assert.equal(w.stderr.trim(), n.stderr.trim());
    assert.equal(w.stdout, '');
  }
});

// A file larger than one wasm32 buffer (io/model_io.h kMaxFileBytes, 2 GiB - 1 MiB) is
// refused by the wasm build from its size, in one line naming it, before anything is
// read; sparse files, so no disk is used. At 4 GiB + a little the size must not wrap
// to a few bytes (size_t is 32 bits in wasm).
test('wasm: files over the buffer limit are refused from their size', () => {
  const limit = 2 ** 31 - 2 ** 20;
  for (const size of [3e9, 2 ** 32 + 100]) {
    const dir = path.join(work, `big-${size}`);
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'model.safetensors');
    closeSync(openSync(file, 'w'));
    truncateSync(file, size);
    try {
      const w = cli(['info', dir], { wasm: true });
      assert.equal(w.code, 1, `exit code (stderr ${w.stderr})`);
      const lines = w.stderr.trim().split('\n');
      assert.equal(lines.length, 1, w.stderr);
      assert.match(lines[0], new RegExp(`model\\.safetensors' is ${size} bytes; this build reads files up to ${limit} bytes`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

// Training (the Train view's trainer, src/train, in wasm): the page's
// repeated-random-tokens preset (src/app/train_run.cpp: its batch in 8 groups,
// --threads 8, which wasm runs one after the other) for 150 updates under
// Node reaches the native weights. Float sums round differently (FMA, SIMD
// width), and 150 AdamW updates carry those differences along, so each
// tensor is compared relative to its own largest value; a different seed
// (another run altogether) differs by far more, which shows the check can fail.
// b_K is left out: it changes no output (a query's scores all move by the same
// q . b_K, and softmax ignores that), so its gradient is 0 up to rounding, and
// AdamW, which divides by the gradient's size, turns that rounding into
// learning-rate-sized steps of no consequence that differ between any two builds.
const TRAIN_TOL = 1e-4;

// Trains `steps` updates with args(out, seed) natively, in wasm under Node and
// natively with seed 2; asserts the wasm weights are the native ones within
// TRAIN_TOL of each tensor's largest value (b_K left out, see above) and the
// other seed's are not.
function trainNativeVsWasm(name, steps, args) {
  const dirs = { native: path.join(work, `${name}-native`), wasm: path.join(work, `${name}-wasm`),
    other: path.join(work, `${name}-seed2`) };
  let t0 = Date.now();
  let r = cli(args(dirs.native, 1));
  assert.equal(r.code, 0, r.stderr);
  const nativeS = (Date.now() - t0) / 1000;
  t0 = Date.now();
  r = cli(args(dirs.wasm, 1), { wasm: true });
  assert.equal(r.code, 0, r.stderr);
  const wasmS = (Date.now() - t0) / 1000;
  r = cli(args(dirs.other, 2));
  assert.equal(r.code, 0, r.stderr);
  console.log(`# ${name}, ${steps} updates: native ${nativeS.toFixed(1)} s, wasm under Node ${wasmS.toFixed(1)} s`);
  const step = `step-${String(steps).padStart(7, '0')}`;
  const weights = (d) => readSafetensors(path.join(d, step, 'model.safetensors')).tensors;
  const a = weights(dirs.native), b = weights(dirs.wasm), c = weights(dirs.other);
  assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort());
  let worst = 0, other = 0;
  for (const t of Object.keys(a).filter((n) => !n.endsWith('.b_K'))) {
    let scale = 1e-6;
    for (const v of a[t].values) scale = Math.max(scale, Math.abs(v));
    let d = 0, e = 0;
    for (let i = 0; i < a[t].values.length; i++) {
      d = Math.max(d, Math.abs(a[t].values[i] - b[t].values[i]));
      e = Math.max(e, Math.abs(a[t].values[i] - c[t].values[i]));
    }
    worst = Math.max(worst, d / scale);
    other = Math.max(other, e / scale);
  }
  console.log(`# ${name}: largest difference relative to the tensor's largest value: wasm ${worst.toExponential(2)}, ` +
    `another seed ${other.toExponential(2)}`);
  assert.ok(worst <= TRAIN_TOL, `native and wasm training differ by ${worst.toExponential(2)} relative`);
  assert.ok(other > 100 * TRAIN_TOL, 'another seed should give other weights');
}

// The page's presets, as `circuitscope train` arguments.
const PRESET = ['--layers', '2', '--d-model', '64', '--heads', '4', '--d-head', '16', '--ctx', '128', '--batch', '8',
  '--lr', '2e-3', '--warmup', '100', '--schedule', 'constant', '--threads', '8', '--eval-every', '0',
  '--save-every', '0', '--no-progress'];

test('training: the page preset under Node reaches the native weights', () => {
  trainNativeVsWasm('repeat', 150, (out, seed) => ['train', '--out', out, '--vocab', '256', '--bos', '0', ...PRESET,
    '--curriculum', 'repeat:150:8-40', '--steps', '150', '--seed', String(seed)]);
});

// The text preset on the text sample shipped with the page (assets/text/):
// text windows, held-out text, the 2,048-token vocabulary.
test('training: the text preset on the text sample under Node reaches the native weights', () => {
  const text = (f) => path.join(SOURCE_DIR, 'assets/text', f);
  trainNativeVsWasm('text', 40, (out, seed) => ['train', '--out', out, '--data', text('train.bin'),
    '--heldout', text('heldout.bin'), '--tokenizer', text('tokenizer.json'), '--vocab', '2048', '--bos', '256',
    ...PRESET, '--curriculum', 'text:40', '--steps', '40', '--seed', String(seed)]);
});

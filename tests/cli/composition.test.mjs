// CLI test of `circuitscope composition` (node --test): every Q-, K- and
// V-composition score of small random models from `circuitscope make-random`
// against dense d_model x d_model products computed HERE from the safetensors
// weights (--raw: the weights as stored; double precision, plain loops), as
// docs/two-layer.md defines them (row vectors: W_OV = W_V W_O, W_QK = W_Q W_K^T):
//   Q: |W_OV1 W_QK2| / (|W_OV1| |W_QK2|),  K: |W_OV1 W_QK2^T| / ...,  V: |W_OV1 W_OV2| / ...
// Environment: CIRCUITSCOPE_BIN, CIRCUITSCOPE_SOURCE_DIR.
import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, test } from 'node:test';

import { cli, cliJson, readSafetensors, tempDir } from './helpers.mjs';

const work = tempDir();
const MODEL = { args: ['--layers', '3', '--d-model', '12', '--heads', '2', '--d-head', '4', '--ctx', '8', '--vocab', '20',
  '--pos', 'standard', '--norm', 'LN', '--seed', '31'] };

before(() => {
  MODEL.dir = path.join(work, 'm');
  const r = cli(['make-random', MODEL.dir, ...MODEL.args]);
  assert.equal(r.code, 0, r.stderr);
  MODEL.cfg = cliJson(['info', MODEL.dir, '--json', '--raw']).config;
  MODEL.t = readSafetensors(path.join(MODEL.dir, 'model.safetensors')).tensors;
});

// One head's [rows, cols] slice of a [n_heads, rows, cols] tensor, as rows of numbers.
function head(name, h) {
  const { shape, values } = MODEL.t[name];
  const [, R, C] = shape;
  return Array.from({ length: R }, (_, i) => Array.from({ length: C }, (_, j) => values[(h * R + i) * C + j]));
}
const mul = (a, b) => a.map((row) => b[0].map((_, j) => row.reduce((s, x, k) => s + x * b[k][j], 0)));
const tr = (a) => a[0].map((_, j) => a.map((row) => row[j]));
const fro = (a) => Math.sqrt(a.flat().reduce((s, x) => s + x * x, 0));
const score = (l, r) => fro(mul(l, r)) / (fro(l) * fro(r));

describe('composition', () => {
  test('--json: every pair equals the dense products; 0 unless the first head is earlier', () => {
    const j = cliJson(['composition', MODEL.dir, '--json', '--raw']);
    const { n_layers: L, n_heads: H } = MODEL.cfg;
    assert.equal(j.weights, 'raw');
    assert.equal(j.n_layers, L);
    assert.equal(j.n_heads, H);
    const ov = (l, h) => mul(head(`blocks.${l}.attn.W_V`, h), head(`blocks.${l}.attn.W_O`, h));
    const qk = (l, h) => mul(head(`blocks.${l}.attn.W_Q`, h), tr(head(`blocks.${l}.attn.W_K`, h)));
    for (let l1 = 0; l1 < L; l1++) for (let h1 = 0; h1 < H; h1++) for (let l2 = 0; l2 < L; l2++) for (let h2 = 0; h2 < H; h2++) {
      const at = (k) => j[k][l1][h1][l2][h2];
      const where = `${l1}.${h1} -> ${l2}.${h2}`;
      if (l1 >= l2) {
        for (const k of ['Q', 'K', 'V']) assert.equal(at(k), 0, where);
        continue;
      }
      const o1 = ov(l1, h1);
      assert.ok(Math.abs(at('Q') - score(o1, qk(l2, h2))) < 2e-6, `Q ${where}: ${at('Q')} vs ${score(o1, qk(l2, h2))}`);
      assert.ok(Math.abs(at('K') - score(o1, tr(qk(l2, h2)))) < 2e-6, `K ${where}`);
      assert.ok(Math.abs(at('V') - score(o1, ov(l2, h2))) < 2e-6, `V ${where}`);
    }
    // Random matrices of these shapes score about 1/sqrt(d_model), not 0.
    const d = MODEL.cfg.d_model;
    assert.ok(j.baseline > 0.5 / Math.sqrt(d) && j.baseline < 2 / Math.sqrt(d), `baseline ${j.baseline}`);
  });

  test('the text form lists pairs above the baseline, highest first', () => {
    const r = cli(['composition', MODEL.dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /random baseline/);
    assert.match(r.stdout, /K-composition, highest first/);
  });

  test('bad input: a one-line reason and a non-zero exit', () => {
    const missing = cli(['composition', path.join(work, 'nope')]);
    assert.notEqual(missing.code, 0);
    assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
    const bad = cli(['composition', MODEL.dir, '--samples', '0']);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--samples/);
  });
});

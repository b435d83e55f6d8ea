// CLI tests of the two-layer commands (node --test).
// `circuitscope composition`: every Q-, K- and
// V-composition score of small random models from `circuitscope make-random`
// against dense d_model x d_model products computed HERE from the safetensors
// weights (--raw: the weights as stored; double precision, plain loops), as
// docs/two-layer.md defines them (row vectors: W_OV = W_V W_O, W_QK = W_Q W_K^T):
//   Q: |W_OV1 W_QK2| / (|W_OV1| |W_QK2|),  K: |W_OV1 W_QK2^T| / ...,  V: |W_OV1 W_OV2| / ...
// `circuitscope virtual` and `ov --through`: virtual heads against their dense
// norms and full OV circuits formed HERE (E = ln1(W_E), raw weights).
// `circuitscope detect`: the head detector's scores against the definitions
// applied HERE to the attention patterns of helpers.mjs' reference forward pass.
// `circuitscope induction`: prefix-matching scores and losses from that
// reference pass on the sequences it reports, copying scores from OV rows
// formed HERE (E = ln1(W_E) with the raw weights).
// Environment: CIRCUITSCOPE_BIN, CIRCUITSCOPE_SOURCE_DIR.
import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, test } from 'node:test';

import { cli, cliJson, logSoftmax, maxRelDiff, readSafetensors, referenceForward, tempDir } from './helpers.mjs';

const work = tempDir();
const MODEL = { args: ['--layers', '3', '--d-model', '12', '--heads', '2', '--d-head', '4', '--ctx', '12', '--vocab', '20',
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

// E_l: W_E's rows through ln1 of layer l (raw weights) [d_vocab][d_model].
function embedForLayer(l) {
  const { d_model: D, d_vocab: V } = MODEL.cfg;
  const WE = MODEL.t['embed.W_E'].values;
  const w = MODEL.t[`blocks.${l}.ln1.w`].values, b = MODEL.t[`blocks.${l}.ln1.b`].values;
  return Array.from({ length: V }, (_, t) => {
    const x = Array.from({ length: D }, (_, d) => WE[t * D + d]);
    const mu = x.reduce((a, v) => a + v, 0) / D;
    const sd = Math.sqrt(x.reduce((a, v) => a + (v - mu) ** 2, 0) / D + MODEL.cfg.eps);
    return x.map((v, d) => ((v - mu) / sd) * w[d] + b[d]);
  });
}

// M [V, V] of rank <= d_head: its power sums tr(M^n), n = 1..d_head, fix the
// d_head eigenvalues `eig` ([[re, im]]) reported (Newton's identities).
function assertEigenvaluesOf(M, eig, where) {
  assert.equal(eig.length, MODEL.cfg.d_head, where);
  let Mk = M;
  for (let n = 1; n <= eig.length; n++) {
    const trace = Mk.reduce((a, row, i) => a + row[i], 0);
    let re = 0, im = 0;  // the sum of lambda^n over the complex eigenvalues
    for (const [a, b] of eig) {
      let zr = 1, zi = 0;
      for (let r = 0; r < n; r++) [zr, zi] = [zr * a - zi * b, zr * b + zi * a];
      re += zr;
      im += zi;
    }
    const scale = eig.reduce((a, [x, y]) => a + Math.hypot(x, y) ** n, 0);
    assert.ok(Math.abs(re - trace) < 1e-4 * Math.max(1, scale), `${where}: tr(M^${n}) ${trace} vs ${re}`);
    assert.ok(Math.abs(im) < 1e-4 * Math.max(1, scale), where);
    Mk = mul(Mk, M);
  }
}

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
      const vn = fro(mul(o1, ov(l2, h2)));
      assert.ok(Math.abs(j.virtual_norm[l1][h1][l2][h2] - vn) < 2e-6 * Math.max(1, vn), `virtual norm ${where}`);
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

describe('virtual heads', () => {
  // The full OV circuit of h2 o h1, formed HERE: E_l1 W_V1 W_O1 W_V2 W_O2 W_U [V, V].
  function denseVirtual(l1, h1, l2, h2) {
    const { d_model: D, d_vocab: V } = MODEL.cfg;
    const WU = MODEL.t['unembed.W_U'].values;
    const U = Array.from({ length: D }, (_, d) => Array.from({ length: V }, (_, o) => WU[d * V + o]));
    let x = mul(mul(embedForLayer(l1), head(`blocks.${l1}.attn.W_V`, h1)), head(`blocks.${l1}.attn.W_O`, h1));
    x = mul(mul(x, head(`blocks.${l2}.attn.W_V`, h2)), head(`blocks.${l2}.attn.W_O`, h2));
    return mul(x, U);
  }

  test('--json: every virtual head once, largest ||W_OV1 W_OV2|| first, its eigenvalues those of the dense circuit', () => {
    const j = cliJson(['virtual', MODEL.dir, '--json', '--raw', '--top', '1000']);
    const { n_layers: L, n_heads: H } = MODEL.cfg;
    assert.equal(j.count, (L * (L - 1)) / 2 * H * H);
    assert.equal(j.virtual_heads.length, j.count);
    const ov = (l, h) => mul(head(`blocks.${l}.attn.W_V`, h), head(`blocks.${l}.attn.W_O`, h));
    const seen = new Set();
    j.virtual_heads.forEach((v, i) => {
      const { layer: l1, head: h1 } = v.earlier, { layer: l2, head: h2 } = v.later;
      const where = `${l2}.${h2} o ${l1}.${h1}`;
      assert.ok(l1 < l2, where);
      seen.add(where);
      const vn = fro(mul(ov(l1, h1), ov(l2, h2)));
      assert.ok(Math.abs(v.norm - vn) < 2e-6 * Math.max(1, vn), `${where}: norm ${v.norm} vs ${vn}`);
      assert.ok(Math.abs(v.v_composition - score(ov(l1, h1), ov(l2, h2))) < 2e-6, `${where}: V-composition`);
      if (i > 0) assert.ok(j.virtual_heads[i - 1].norm >= v.norm, `${where}: ranked`);
      assertEigenvaluesOf(denseVirtual(l1, h1, l2, h2), v.ov_eigenvalues, where);
      const eig = v.ov_eigenvalues;
      const want = eig.reduce((a, [x]) => a + x, 0) / eig.reduce((a, [x, y]) => a + Math.hypot(x, y), 0);
      assert.ok(Math.abs(v.ov_copying_score - want) < 1e-5, `${where}: copying score`);
    });
    assert.equal(seen.size, j.count);
    assert.equal(cliJson(['virtual', MODEL.dir, '--json', '--raw', '--top', '3']).virtual_heads.length, 3);
  });

  test('ov --through: rows and columns of the virtual head\'s OV circuit equal the dense circuit', () => {
    const V = MODEL.cfg.d_vocab;
    for (const [l1, h1, l2, h2] of [[0, 1, 2, 0], [1, 0, 2, 1]]) {
      const M = denseVirtual(l1, h1, l2, h2);
      const where = `${l2}.${h2} o ${l1}.${h1}`;
      const row = cliJson(['ov', MODEL.dir, '--raw', '--json', '--head', `${l2}.${h2}`, '--through', `${l1}.${h1}`,
        '--source', '3', '--top', String(V)]);
      assert.deepEqual(row.through, { layer: l1, head: h1 });
      assert.equal(row.top.length, V);
      for (const e of row.top) assert.ok(Math.abs(e.value - M[3][e.id]) < 1e-5 * Math.max(1, Math.abs(M[3][e.id])), `${where} row 3, ${e.id}`);
      const col = cliJson(['ov', MODEL.dir, '--raw', '--json', '--head', `${l2}.${h2}`, '--through', `${l1}.${h1}`,
        '--out', '7', '--top', '5']);
      const want = M.map((r, s) => ({ id: s, value: r[7] })).sort((a, b) => b.value - a.value).slice(0, 5);
      assert.deepEqual(col.top.map((e) => e.id), want.map((e) => e.id), `${where} column 7`);
    }
  });

  test('bad input: a one-line reason and a non-zero exit', () => {
    const later = cli(['ov', MODEL.dir, '--head', '0.1', '--through', '1.0', '--source', '1']);
    assert.notEqual(later.code, 0);
    assert.match(later.stderr, /head 1\.0 must be in an earlier layer than head 0\.1/);
    assert.equal(later.stderr.trim().split('\n').length, 1, later.stderr);
    const outside = cli(['ov', MODEL.dir, '--head', '2.1', '--through', '0.7', '--source', '1']);
    assert.notEqual(outside.code, 0);
    assert.match(outside.stderr, /--through 0\.7/);
    const qk = cli(['qk', MODEL.dir, '--head', '2.1', '--through', '0.1', '--source', '1']);
    assert.equal(qk.code, 2, 'qk has no virtual heads');
    const top = cli(['virtual', MODEL.dir, '--top', '0']);
    assert.equal(top.code, 2);
    assert.match(top.stderr, /--top/);
  });
});

// TransformerLens' "mul" score of pattern rule(i, j) on attention A (docs/two-layer.md).
function detectorScore(A, ids, rule, noBos, noCurrent) {
  let hit = 0, all = 0;
  for (let i = 0; i < A.length; i++) for (let j = 0; j <= i; j++) {
    if ((noBos && j === 0) || (noCurrent && i === j)) continue;
    all += A[i][j];
    if (rule(ids, i, j)) hit += A[i][j];
  }
  return all > 0 ? hit / all : 0;
}
const RULES = {
  previous_token: (t, i, j) => j === i - 1,
  duplicate_token: (t, i, j) => j < i && t[j] === t[i],
  induction: (t, i, j) => j >= 1 && j - 1 !== i && t[j - 1] === t[i],
};

describe('detect', () => {
  const ids = [1, 5, 9, 2, 5, 9, 2, 7, 1, 5];
  for (const [flags, noBos, noCurrent] of [[[], false, false], [['--exclude-bos', '--exclude-current'], true, true]]) {
    test(`--json ${flags.join(' ') || '(no exclusions)'}: every head's three scores equal the definitions`, () => {
      const j = cliJson(['detect', MODEL.dir, '--ids', ids.join(','), '--json', '--raw', ...flags]);
      assert.deepEqual(j.ids, ids);
      const { patterns } = referenceForward(MODEL.t, MODEL.cfg, ids);
      for (const [key, rule] of Object.entries(RULES))
        patterns.forEach((layer, l) => layer.forEach((A, h) => {
          const want = detectorScore(A, ids, rule, noBos, noCurrent);
          assert.ok(Math.abs(j[key][l][h] - want) < 1e-5, `${key} ${l}.${h}: ${j[key][l][h]} vs ${want}`);
        }));
    });
  }
  test('bad input: usage errors exit 2 with one line', () => {
    const r = cli(['detect', MODEL.dir, '--ids', '1,2', '--text', 'x']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    const out = cli(['detect', MODEL.dir, '--ids', '1,99']);
    assert.notEqual(out.code, 0);
    assert.match(out.stderr, /99/);
  });
});

describe('induction', () => {
  test('--json: prefix matching, copying and the two losses equal the definitions', () => {
    const j = cliJson(['induction', MODEL.dir, '--json', '--raw', '--tokens', '5', '--repeats', '2', '--examples', '3', '--seed', '4']);
    const { n_layers: L, n_heads: H, d_model: D, d_vocab: V } = MODEL.cfg;
    assert.equal(j.sequences.length, 3);
    assert.equal(j.bos, null, 'make-random writes no tokenizer');
    // Prefix matching: attention from a repeated token to the tokens right after its earlier occurrences.
    const pm = Array.from({ length: L }, () => Array(H).fill(0));
    let dests = 0, first = 0, nFirst = 0, rep = 0, nRep = 0;
    for (const ids of j.sequences) {
      assert.equal(ids.length, 10);
      const { patterns, logits } = referenceForward(MODEL.t, MODEL.cfg, ids);
      for (let i = 0; i < ids.length; i++) {
        const earlier = ids.slice(0, i).includes(ids[i]);
        if (!earlier) continue;
        dests++;
        for (let l = 0; l < L; l++) for (let h = 0; h < H; h++)
          for (let k = 1; k <= i; k++) if (ids[k - 1] === ids[i]) pm[l][h] += patterns[l][h][i][k];
      }
      for (let t = 1; t < ids.length; t++) {
        const row = logits[t - 1], mx = Math.max(...row);
        const lse = mx + Math.log(row.reduce((s, x) => s + Math.exp(x - mx), 0));
        const loss = lse - row[ids[t]];
        if (t < 5) { first += loss; nFirst++; } else { rep += loss; nRep++; }
      }
    }
    for (let l = 0; l < L; l++) for (let h = 0; h < H; h++)
      assert.ok(Math.abs(j.prefix_matching[l][h] - pm[l][h] / dests) < 1e-5, `prefix ${l}.${h}`);
    assert.ok(Math.abs(j.loss_first - first / nFirst) < 1e-4, `loss_first ${j.loss_first} vs ${first / nFirst}`);
    assert.ok(Math.abs(j.loss_repeat - rep / nRep) < 1e-4, 'loss_repeat');
    // Copying: per sequence, the OV rows of its distinct tokens on those tokens, centred,
    // rectified, share on the token, 4 s - 1; mean over the tokens, then the sequences (no BOS here).
    const WE = MODEL.t['embed.W_E'].values, WU = MODEL.t['unembed.W_U'].values;
    for (let l = 0; l < L; l++) {
      const w = MODEL.t[`blocks.${l}.ln1.w`].values, b = MODEL.t[`blocks.${l}.ln1.b`].values;
      for (let h = 0; h < H; h++) {
        const ov = mul(head(`blocks.${l}.attn.W_V`, h), head(`blocks.${l}.attn.W_O`, h));
        let want = 0;
        for (const seq of j.sequences) {
          const tokens = [...new Set(seq)];
          let per = 0;
          for (const t of tokens) {
            const x = Array.from({ length: D }, (_, d) => WE[t * D + d]);
            const mu = x.reduce((s, v) => s + v, 0) / D;
            const sd = Math.sqrt(x.reduce((s, v) => s + (v - mu) ** 2, 0) / D + MODEL.cfg.eps);
            const e = x.map((v, d) => ((v - mu) / sd) * w[d] + b[d]);
            const y = ov[0].map((_, c) => e.reduce((s, v, d) => s + v * ov[d][c], 0));
            const row = tokens.map((o) => y.reduce((s, v, d) => s + v * WU[d * V + o], 0));
            const mean = row.reduce((s, v) => s + v, 0) / row.length;
            const r = row.map((v) => Math.max(v - mean, 0));
            const mass = r.reduce((s, v) => s + v, 0);
            per += Math.min(1, Math.max(-1, 4 * (mass > 0 ? r[tokens.indexOf(t)] / mass : 0) - 1)) / tokens.length;
          }
          want += per / j.sequences.length;
        }
        assert.ok(Math.abs(j.copying[l][h] - want) < 1e-4, `copying ${l}.${h}: ${j.copying[l][h]} vs ${want}`);
      }
    }
  });
  test('--json: previous-token scores and the K-composition term of [F]\'s scatter', () => {
    const j = cliJson(['induction', MODEL.dir, '--json', '--raw', '--tokens', '5', '--repeats', '2', '--examples', '2', '--seed', '9']);
    const { n_layers: L, n_heads: H, d_model: D, d_vocab: V } = MODEL.cfg;
    // Previous-token scores: the detector's definition on the reported sequences, averaged.
    const runs = j.sequences.map((s) => referenceForward(MODEL.t, MODEL.cfg, s).patterns);
    for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) {
      const want = runs.reduce((acc, p, i) => acc + detectorScore(p[l][h], j.sequences[i], RULES.previous_token, false, false), 0) / runs.length;
      assert.ok(Math.abs(j.previous_token[l][h] - want) < 1e-5, `previous ${l}.${h}`);
    }
    // The previous-token head: the best of the layers before the last.
    let best = { layer: 0, head: 0 };
    for (let l = 0; l < L - 1; l++) for (let h = 0; h < H; h++)
      if (j.previous_token[l][h] > j.previous_token[best.layer][best.head]) best = { layer: l, head: h };
    assert.deepEqual(j.k_term.previous_head, best);
    const heads = cliJson(['heads', MODEL.dir, '--json', '--raw']).heads;
    const { layer: l1, head: h1 } = best;
    assert.equal(j.k_term.heads.length, (L - 1 - l1) * H);
    for (const p of j.k_term.heads) {
      // M = E_l2 W_Q2 (E_l1 W_V1 W_O1 W_K2)^T [V, V], rank <= d_head: its power sums
      // tr(M^k), k = 1..d_head, fix the d_head eigenvalues reported (Newton's identities).
      const q = mul(embedForLayer(p.layer), head(`blocks.${p.layer}.attn.W_Q`, p.head));
      const k = mul(mul(mul(embedForLayer(l1), head(`blocks.${l1}.attn.W_V`, h1)), head(`blocks.${l1}.attn.W_O`, h1)), head(`blocks.${p.layer}.attn.W_K`, p.head));
      const M = mul(q, tr(k));
      const eig = p.k_term_eigenvalues;
      assertEigenvaluesOf(M, eig, `${p.layer}.${p.head}`);
      const pos = eig.reduce((a, [x]) => a + x, 0) / eig.reduce((a, [x, y]) => a + Math.hypot(x, y), 0);
      assert.ok(Math.abs(p.k_term_positivity - pos) < 1e-5, `${p.layer}.${p.head} positivity`);
      const hh = heads.find((x) => x.layer === p.layer && x.head === p.head);
      assert.ok(Math.abs(p.ov_positivity - hh.ov_copying_score) < 1e-6, 'OV positivity = the heads command\'s copying score');
    }
    // --prev chooses the head; one in the last layer has nothing to compose with.
    const chosen = cliJson(['induction', MODEL.dir, '--json', '--tokens', '3', '--examples', '1', '--prev', '1.1']);
    assert.deepEqual(chosen.k_term.previous_head, { layer: 1, head: 1 });
    assert.equal(chosen.k_term.heads.length, H);
    const r = cli(['induction', MODEL.dir, '--prev', `${L - 1}.0`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--prev 2\.0: no layer after layer 2/);
  });
  test('--ids: the in-context learning score on the windows that reach the late token', () => {
    const ids = Array.from({ length: 30 }, (_, i) => (i * 7 + 3) % 20);
    const j = cliJson(['induction', MODEL.dir, '--json', '--raw', '--tokens', '3', '--examples', '1', '--ids', ids.join(',')]);
    // n_ctx 12: early = round(50 * 12 / 512) = 1, late = round(500 * 12 / 512) = 12, clamped to 11; no smoothing.
    assert.deepEqual([j.in_context_learning.early, j.in_context_learning.late], [1, 11]);
    const windows = [ids.slice(0, 12), ids.slice(12, 24)];  // the last 6 tokens do not reach token 11
    assert.equal(j.in_context_learning.windows, 2);
    const nll = (w, t) => -logSoftmax(referenceForward(MODEL.t, MODEL.cfg, w).logits[t - 1])[w[t]];
    const want = windows.reduce((a, w) => a + nll(w, 1) - nll(w, 11), 0) / windows.length;
    assert.ok(Math.abs(j.in_context_learning.score - want) < 1e-4, `${j.in_context_learning.score} vs ${want}`);
    const short = cli(['induction', MODEL.dir, '--tokens', '3', '--ids', '1,2,3']);
    assert.equal(short.code, 1);
    assert.match(short.stderr, /more than 11 tokens/);
  });
  test('a sequence longer than n_ctx is refused with the reason', () => {
    const r = cli(['induction', MODEL.dir, '--tokens', '25', '--repeats', '4']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /n_ctx/);
  });
});

describe('run --ablate', () => {
  const ids = [1, 5, 9, 2, 5, 9, 2, 7, 1, 5];
  const nll = (logits, t) => -logSoftmax(logits[t])[ids[t + 1]];
  test('pattern-preserving: patterns of the full run forced, the listed heads left out', () => {
    const j = cliJson(['run', MODEL.dir, '--ids', ids.join(','), '--json', '--raw', '--logits', '--patterns', '--ablate', '0.1,2.0']);
    assert.deepEqual(j.ablated, [{ layer: 0, head: 1 }, { layer: 2, head: 0 }]);
    const full = referenceForward(MODEL.t, MODEL.cfg, ids);
    const want = referenceForward(MODEL.t, MODEL.cfg, ids, { forced: full.patterns, ablate: new Set(['0.1', '2.0']) });
    assert.ok(maxRelDiff(j.logits, want.logits) < 1e-4, 'ablated logits');
    assert.ok(maxRelDiff(j.patterns, full.patterns) < 1e-4, 'the patterns shown are the full run\'s');
    ids.slice(0, -1).forEach((_, t) => {
      assert.ok(Math.abs(j.losses[t] - nll(want.logits, t)) < 1e-4, `loss ${t}`);
      assert.ok(Math.abs(j.losses_full[t] - nll(full.logits, t)) < 1e-4, `full loss ${t}`);
    });
    // Recomputing the later layers' patterns would give other logits: the forcing is what is tested.
    const unforced = referenceForward(MODEL.t, MODEL.cfg, ids, { ablate: new Set(['0.1', '2.0']) });
    assert.ok(maxRelDiff(unforced.logits, want.logits) > 1e-3, 'forcing the patterns matters on this model');
    assert.notEqual(j.loss, j.loss_full);
  });
  test('bad --ablate: one line naming the option; exit 2 for syntax, 1 for a head the model lacks', () => {
    for (const [value, code, pattern] of [['0.x', 2, /--ablate '0.x'/], ['0.1,,1.0', 2, /empty item/], ['3.0', 1, /--ablate 3.0: layer 3/], ['0.2', 1, /head 2 is outside/]]) {
      const r = cli(['run', MODEL.dir, '--ids', '1,2', '--ablate', value]);
      assert.equal(r.code, code, `${value}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.equal(r.stdout, '');
    }
  });
});

// `terms`: without normalization each term is [F]'s product, formed HERE with
// the reference pass's patterns: direct x0 W_U, head A x0 W_OV W_U, virtual
// head A2 A1 x0 W_OV1 W_OV2 W_U; the loss without a term is the loss of the
// full logits minus that term's.
describe('terms', () => {
  const M2 = {};
  before(() => {
    M2.dir = path.join(work, 'm2');
    const r = cli(['make-random', M2.dir, '--layers', '2', '--d-model', '8', '--heads', '2', '--d-head', '4', '--ctx', '12',
      '--vocab', '20', '--pos', 'standard', '--norm', 'none', '--seed', '7', '--std', '0.35']);
    assert.equal(r.code, 0, r.stderr);
    M2.cfg = cliJson(['info', M2.dir, '--json', '--raw']).config;
    M2.t = readSafetensors(path.join(M2.dir, 'model.safetensors')).tensors;
  });
  // Each term's logits [T][V], formed from the weights and the reference pass's patterns.
  function termProducts(ids) {
    const { d_model: D, d_vocab_out: V, n_heads: H } = M2.cfg;
    const WE = M2.t['embed.W_E'].values, WP = M2.t['pos_embed.W_pos'].values, WU = M2.t['unembed.W_U'].values;
    const hd = (name, h) => {
      const { shape, values } = M2.t[name];
      const [, R, C] = shape;
      return Array.from({ length: R }, (_, i) => Array.from({ length: C }, (_, k) => values[(h * R + i) * C + k]));
    };
    const U = Array.from({ length: D }, (_, d) => Array.from({ length: V }, (_, o) => WU[d * V + o]));
    const x0 = ids.map((tok, p) => Array.from({ length: D }, (_, d) => WE[tok * D + d] + WP[p * D + d]));
    const full = referenceForward(M2.t, M2.cfg, ids);
    const A = (l, h) => full.patterns[l][h];
    const OV = (l, h) => mul(hd(`blocks.${l}.attn.W_V`, h), hd(`blocks.${l}.attn.W_O`, h));
    const want = new Map([['direct', mul(x0, U)]]);
    for (let l = 0; l < 2; l++) for (let h = 0; h < H; h++) want.set(`${l}.${h}`, mul(mul(mul(A(l, h), x0), OV(l, h)), U));
    for (let h1 = 0; h1 < H; h1++) for (let h2 = 0; h2 < H; h2++)
      want.set(`0.${h1} > 1.${h2}`, mul(mul(mul(mul(A(1, h2), A(0, h1)), x0), mul(OV(0, h1), OV(1, h2))), U));
    return { full, want };
  }
  test('--json: loss without each term and by order equal the products written out', () => {
    const ids = [3, 8, 1, 12, 8, 1, 0, 5, 8, 1];
    const j = cliJson(['terms', M2.dir, '--ids', ids.join(','), '--json', '--raw']);
    const T = ids.length;
    const { full, want } = termProducts(ids);
    const loss = (logits) => ids.slice(0, -1).reduce((s, _, t) => s - logSoftmax(logits[t])[ids[t + 1]], 0) / (T - 1);
    const minus = (a, ...bs) => a.map((row, t) => row.map((v, o) => bs.reduce((s, b) => s - b[t][o], v)));
    assert.equal(j.tokens, T - 1);
    assert.ok(Math.abs(j.loss_full - loss(full.logits)) < 1e-4);
    const names = j.terms.map((t) => t.name);
    assert.deepEqual([...names].sort(), [...want.keys(), 'biases'].sort());
    for (const t of j.terms) {
      if (t.name === 'biases') continue;
      const w = loss(minus(full.logits, want.get(t.name)));
      assert.ok(Math.abs(t.loss_without - w) < 1e-4, `${t.name}: ${t.loss_without} vs ${w}`);
      assert.ok(Math.abs(t.effect - (t.loss_without - j.loss_full)) < 1e-5);
      assert.equal(t.order, t.name === 'direct' ? 0 : t.name.split(' > ').length);
    }
    const second = [...want.entries()].filter(([k]) => k.includes('>')).map(([, v]) => v);
    const first = [...want.entries()].filter(([k]) => /^\d\.\d$/.test(k)).map(([, v]) => v);
    assert.ok(Math.abs(j.loss_by_order[0] - loss(minus(full.logits, ...first, ...second))) < 1e-4, 'order 0');
    assert.ok(Math.abs(j.loss_by_order[1] - loss(minus(full.logits, ...second))) < 1e-4, 'order 1');
    assert.ok(Math.abs(j.loss_by_order[2] - j.loss_full) < 1e-5, 'order 2 is the model');
  });
  // `paths`: one prediction's logit split; each term is its product above at
  // that position and token, and they add up to the logit.
  test('paths --json: each term is its product at the position; they add up to the logit', () => {
    const ids = [3, 8, 1, 12, 8, 1, 0, 5, 8, 1];
    const { full, want } = termProducts(ids);
    for (const [position, token] of [[9, null], [4, 7], [0, 2]]) {
      const args = ['paths', M2.dir, '--ids', ids.join(','), '--json', '--raw', '--position', String(position)];
      if (token !== null) args.push('--token', String(token));
      const j = cliJson(args);
      const row = full.logits[position];
      const tok = token ?? row.indexOf(Math.max(...row));
      assert.equal(j.position, position);
      assert.equal(j.token.id, tok, 'default: the top prediction');
      assert.ok(Math.abs(j.logit - row[tok]) < 1e-4, `logit ${j.logit} vs ${row[tok]}`);
      let sum = 0;
      for (const t of j.terms) {
        sum += t.contribution;
        if (t.name === 'biases') continue;
        const w = want.get(t.name)[position][tok];
        assert.ok(Math.abs(t.contribution - w) < 1e-4, `${t.name} at ${position}: ${t.contribution} vs ${w}`);
      }
      assert.ok(Math.abs(sum - row[tok]) < 1e-4, `terms add up: ${sum} vs ${row[tok]}`);
    }
    const r = cli(['paths', M2.dir, '--ids', '1,2', '--position', '2', '--json']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--position/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });
  test('text longer than n_ctx is cut into windows; bad input is one line', () => {
    const ids = Array.from({ length: 30 }, (_, i) => (i * 7) % 20);
    const j = cliJson(['terms', M2.dir, '--ids', ids.join(','), '--json']);
    assert.equal(j.windows, 3);
    assert.equal(j.tokens, 11 + 11 + 5);
    const r = cli(['terms', M2.dir, '--ids', '1', '--json']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /nothing to predict/);
    const u = cli(['terms', M2.dir, '--ids', '1,2', '--max-order', 'x']);
    assert.equal(u.code, 2);
    assert.equal(u.stderr.trim().split('\n').length, 1);
  });
});

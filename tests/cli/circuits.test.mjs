// CLI tests of the circuit commands (node --test): heads, ov, qk and
// skip-trigrams on small random models from `circuitscope make-random`, each
// checked against dense circuits computed HERE from the safetensors weights
// (double precision, plain loops; weight processing re-done here from
// docs/model.md, circuits from docs/one-layer.md):
//   OV = E W_V W_O W_U  [d_vocab, d_vocab_out], QK = E W_Q W_K^T E^T  [d_vocab, d_vocab]
// (TransformerLens row vectors; E = the rows of W_E, each through block l's
// ln1 unless --no-embed-norm).
// Environment: CIRCUITSCOPE_BIN, CIRCUITSCOPE_SOURCE_DIR.
import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, test } from 'node:test';

import { cli, cliJson, readSafetensors, tempDir } from './helpers.mjs';

const work = tempDir();

const MODELS = {
  // LN + standard positions: processing folds ln1 / ln_final.
  lnStd: { args: ['--layers', '1', '--d-model', '16', '--heads', '2', '--d-head', '4', '--ctx', '12', '--vocab', '30', '--pos', 'standard', '--norm', 'LN', '--seed', '21'] },
  // LN + Shortformer: no fold_ln; two layers.
  lnShort: { args: ['--layers', '2', '--d-model', '12', '--heads', '3', '--d-head', '4', '--ctx', '10', '--vocab', '25', '--pos', 'shortformer', '--norm', 'LN', '--seed', '22'] },
  // No normalization, no positions.
  plain: { args: ['--layers', '1', '--d-model', '16', '--heads', '2', '--d-head', '8', '--ctx', '8', '--vocab', '20', '--pos', 'none', '--norm', 'none', '--seed', '23', '--std', '0.3'] },
};

before(() => {
  for (const [name, m] of Object.entries(MODELS)) {
    m.dir = path.join(work, name);
    const r = cli(['make-random', m.dir, ...m.args]);
    assert.equal(r.code, 0, r.stderr);
    m.cfg = cliJson(['info', m.dir, '--json', '--raw']).config;
    m.raw = readSafetensors(path.join(m.dir, 'model.safetensors')).tensors;
    m.processed = processWeights(m.raw, m.cfg);
  }
});

// ---- reference: weight processing (docs/model.md, "Weight processing") ----
function processWeights(raw, cfg) {
  const t = {};
  for (const [k, v] of Object.entries(raw)) t[k] = { shape: v.shape, values: Float64Array.from(v.values) };
  const { d_model: D, n_heads: H, d_head: Dh, n_layers: L } = cfg;
  const V = cfg.d_vocab, Vo = cfg.d_vocab_out;
  let norm = cfg.normalization_type;  // null | 'LN'
  const pos = cfg.positional_embedding_type;
  if (norm === 'LN' && pos !== 'shortformer') {  // fold_ln
    for (let l = 0; l < L; l++) {
      const w = t[`blocks.${l}.ln1.w`].values, b = t[`blocks.${l}.ln1.b`].values;
      for (const n of ['Q', 'K', 'V']) {
        const W = t[`blocks.${l}.attn.W_${n}`].values, bias = t[`blocks.${l}.attn.b_${n}`].values;
        for (let h = 0; h < H; h++)
          for (let e = 0; e < Dh; e++) {
            let add = 0, mean = 0;
            for (let d = 0; d < D; d++) {
              const i = (h * D + d) * Dh + e;
              add += b[d] * W[i];
              W[i] *= w[d];
              mean += W[i] / D;
            }
            bias[h * Dh + e] += add;
            for (let d = 0; d < D; d++) W[(h * D + d) * Dh + e] -= mean;
          }
      }
      delete t[`blocks.${l}.ln1.w`]; delete t[`blocks.${l}.ln1.b`];
    }
    const w = t['ln_final.w'].values, b = t['ln_final.b'].values;
    const WU = t['unembed.W_U'].values, bU = t['unembed.b_U'].values;
    for (let o = 0; o < Vo; o++) {
      let mean = 0;
      for (let d = 0; d < D; d++) {
        bU[o] += b[d] * WU[d * Vo + o];
        WU[d * Vo + o] *= w[d];
        mean += WU[d * Vo + o] / D;
      }
      for (let d = 0; d < D; d++) WU[d * Vo + o] -= mean;
    }
    delete t['ln_final.w']; delete t['ln_final.b'];
    norm = 'LNPre';
  }
  const centerRows = (M, rows, cols) => {
    for (let r = 0; r < rows; r++) {
      let mean = 0;
      for (let c = 0; c < cols; c++) mean += M[r * cols + c] / cols;
      for (let c = 0; c < cols; c++) M[r * cols + c] -= mean;
    }
  };
  if (norm !== null) {  // center_writing_weights
    centerRows(t['embed.W_E'].values, V, D);
    if (pos === 'standard') centerRows(t['pos_embed.W_pos'].values, cfg.n_ctx, D);
    for (let l = 0; l < L; l++) {
      centerRows(t[`blocks.${l}.attn.W_O`].values, H * Dh, D);
      centerRows(t[`blocks.${l}.attn.b_O`].values, 1, D);
    }
  }
  centerRows(t['unembed.W_U'].values, D, Vo);  // center_unembed
  centerRows(t['unembed.b_U'].values, 1, Vo);
  for (let l = 0; l < L; l++) {  // fold_value_biases
    const bV = t[`blocks.${l}.attn.b_V`].values, WO = t[`blocks.${l}.attn.W_O`].values, bO = t[`blocks.${l}.attn.b_O`].values;
    for (let h = 0; h < H; h++)
      for (let e = 0; e < Dh; e++) {
        for (let d = 0; d < D; d++) bO[d] += bV[h * Dh + e] * WO[(h * Dh + e) * D + d];
        bV[h * Dh + e] = 0;
      }
  }
  t.normalization = norm;
  return t;
}

// ---- reference: dense circuits (docs/one-layer.md) ----
function circuits(m, layer, head, { raw = false, embedNorm = true } = {}) {
  const t = raw ? m.raw : m.processed;
  const norm = raw ? m.cfg.normalization_type : t.normalization;
  const { d_model: D, d_head: Dh, eps } = m.cfg;
  const V = m.cfg.d_vocab, Vo = m.cfg.d_vocab_out;
  const WE = t['embed.W_E'].values;
  const E = [];
  for (let s = 0; s < V; s++) {
    let x = Array.from(WE.subarray(s * D, (s + 1) * D));
    if (embedNorm && norm !== null) {
      const mean = x.reduce((a, v) => a + v, 0) / D;
      const c = x.map((v) => v - mean);
      const scale = Math.sqrt(c.reduce((a, v) => a + v * v, 0) / D + eps);
      x = c.map((v) => v / scale);
      if (norm === 'LN') {
        const w = t[`blocks.${layer}.ln1.w`].values, b = t[`blocks.${layer}.ln1.b`].values;
        x = x.map((v, d) => v * w[d] + b[d]);
      }
    }
    E.push(x);
  }
  const W = (n) => t[`blocks.${layer}.attn.W_${n}`].values;
  const proj = (Wn) => E.map((x) => {  // x @ W[head]: [d_head]
    const out = new Array(Dh).fill(0);
    for (let d = 0; d < D; d++) for (let e = 0; e < Dh; e++) out[e] += x[d] * Wn[(head * D + d) * Dh + e];
    return out;
  });
  const q = proj(W('Q')), k = proj(W('K')), v = proj(W('V'));
  const WO = W('O'), WU = t['unembed.W_U'].values;
  const OU = [];  // W_O[head] W_U: [d_head, d_vocab_out]
  for (let e = 0; e < Dh; e++) {
    const row = new Array(Vo).fill(0);
    for (let d = 0; d < D; d++) {
      const wo = WO[(head * Dh + e) * D + d];
      for (let o = 0; o < Vo; o++) row[o] += wo * WU[d * Vo + o];
    }
    OU.push(row);
  }
  const OV = v.map((ve) => {
    const row = new Array(Vo).fill(0);
    for (let e = 0; e < Dh; e++) for (let o = 0; o < Vo; o++) row[o] += ve[e] * OU[e][o];
    return row;
  });
  const QK = q.map((qd) => k.map((ks) => qd.reduce((a, x, e) => a + x * ks[e], 0)));
  return { OV, QK };
}

const col = (M, j) => M.map((row) => row[j]);
// Full sort: value descending, ties smaller id first.
const sorted = (values) => values.map((value, id) => ({ id, value })).sort((a, b) => b.value - a.value || a.id - b.id);
const maxAbs = (xs) => xs.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
// |a - b| <= 1e-4 * max(|a|, |b|, 10% of the largest entry of the line): float
// rounding of an entry that sums to nearly zero scales with its large terms.
const close = (a, b, scale) => Math.abs(a - b) <= 1e-4 * Math.max(Math.abs(a), Math.abs(b), 0.1 * scale);

// The reported top list against a full sort of `line`: the same length, at
// each rank the value of the sorted reference, and every reported id's own
// reference value equal to what is reported (so only near-ties may swap ids).
function checkTop(top, line, k, what) {
  const ref = sorted(line), scale = maxAbs(line);
  assert.equal(top.length, Math.min(k, line.length), `${what}: length`);
  const ids = new Set();
  top.forEach((e, i) => {
    assert.ok(close(e.value, ref[i].value, scale), `${what} rank ${i}: ${e.value} vs sorted ${ref[i].value}`);
    assert.ok(close(e.value, line[e.id], scale), `${what} rank ${i}: id ${e.id} has ${line[e.id]}, reported ${e.value}`);
    assert.ok(!ids.has(e.id), `${what}: id ${e.id} twice`);
    ids.add(e.id);
    if (i > 0) assert.ok(top[i - 1].value >= e.value, `${what}: not descending at ${i}`);
  });
  // Ids agree with the reference wherever the reference has no near-tie.
  top.forEach((e, i) => {
    const tiedBefore = i > 0 && close(ref[i - 1].value, ref[i].value, scale);
    const tiedAfter = i + 1 < ref.length && close(ref[i + 1].value, ref[i].value, scale);
    if (!tiedBefore && !tiedAfter) assert.equal(e.id, ref[i].id, `${what} rank ${i}`);
  });
}

const heads = (m) => {
  const out = [];
  for (let l = 0; l < m.cfg.n_layers; l++) for (let h = 0; h < m.cfg.n_heads; h++) out.push([l, h]);
  return out;
};

describe('ov and qk --top against dense circuits', () => {
  for (const name of Object.keys(MODELS)) {
    for (const mode of [{ raw: false }, { raw: true }, { raw: false, embedNorm: false }]) {
      const flags = [...(mode.raw ? ['--raw'] : []), ...(mode.embedNorm === false ? ['--no-embed-norm'] : [])];
      test(`${name} ${flags.join(' ') || 'processed'}`, () => {
        const m = MODELS[name];
        const V = m.cfg.d_vocab;
        for (const [l, h] of heads(m)) {
          const { OV, QK } = circuits(m, l, h, mode);
          const head = `${l}.${h}`;
          const k = 7;
          for (const s of [0, 3, V - 1]) {
            const j = cliJson(['ov', m.dir, '--head', head, '--source', String(s), '--top', String(k), '--json', ...flags]);
            assert.equal(j.source.id, s);
            assert.equal(j.weights, mode.raw ? 'raw' : 'processed');
            checkTop(j.top, OV[s], k, `ov ${name} ${head} --source ${s}`);
          }
          const o = 5;
          let j = cliJson(['ov', m.dir, '--head', head, '--out', String(o), '--top', String(k), '--json', ...flags]);
          checkTop(j.top, col(OV, o), k, `ov ${name} ${head} --out ${o}`);
          const d = 2;
          j = cliJson(['qk', m.dir, '--head', head, '--destination', String(d), '--top', String(k), '--json', ...flags]);
          checkTop(j.top, QK[d], k, `qk ${name} ${head} --destination ${d}`);
          j = cliJson(['qk', m.dir, '--head', head, '--source', String(V - 2), '--top', String(k), '--json', ...flags]);
          checkTop(j.top, col(QK, V - 2), k, `qk ${name} ${head} --source ${V - 2}`);
        }
      });
    }
  }

  test('--top larger than the vocabulary lists every token', () => {
    const m = MODELS.plain;
    const { OV } = circuits(m, 0, 1);
    const j = cliJson(['ov', m.dir, '--head', '0.1', '--source', '4', '--top', '1000', '--json']);
    checkTop(j.top, OV[4], 1000, 'ov --top 1000');
  });

  test('--raw and processed differ on an LN model, and say so', () => {
    const m = MODELS.lnStd;
    const args = ['ov', m.dir, '--head', '0.0', '--source', '1', '--top', '5', '--json'];
    const p = cliJson(args), r = cliJson([...args, '--raw']);
    assert.equal(p.weights, 'processed');
    assert.equal(r.weights, 'raw');
    assert.ok(p.top.some((e, i) => Math.abs(e.value - r.top[i].value) > 1e-3), 'raw and processed values are the same');
    const text = cli(['ov', m.dir, '--head', '0.0', '--source', '1', '--raw']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /raw weights/);
  });
});

describe('heads', () => {
  for (const name of Object.keys(MODELS)) {
    for (const raw of [false, true]) {
      test(`${name}${raw ? ' --raw' : ''}: eigenvalues against traces, diagonal test against row sorts`, () => {
        const m = MODELS[name];
        const j = cliJson(['heads', m.dir, '--json', ...(raw ? ['--raw'] : [])]);
        assert.equal(j.weights, raw ? 'raw' : 'processed');
        assert.equal(j.heads.length, m.cfg.n_layers * m.cfg.n_heads);
        const V = m.cfg.d_vocab;
        j.heads.forEach((e, i) => {
          const [l, h] = heads(m)[i];
          assert.deepEqual([e.layer, e.head], [l, h]);
          for (const key of ['ov_copying_score', 'qk_copying_score', 'ov_eigenvalues', 'positional_share',
            'ov_diagonal_top1', 'ov_diagonal_top5'])
            assert.ok(key in e, `${key} missing`);
          const { OV } = circuits(m, l, h, { raw });
          // sum of eigenvalues = trace(OV); sum of squares = trace(OV^2) (imaginary parts cancel).
          let tr = 0, tr2 = 0;
          for (let s = 0; s < V; s++) {
            tr += OV[s][s];
            for (let o = 0; o < V; o++) tr2 += OV[s][o] * OV[o][s];
          }
          const lam = e.ov_eigenvalues;
          assert.equal(lam.length, m.cfg.d_head);
          const sumRe = lam.reduce((a, [re]) => a + re, 0), sumIm = lam.reduce((a, [, im]) => a + im, 0);
          const sumAbs = lam.reduce((a, [re, im]) => a + Math.hypot(re, im), 0);
          const sq = lam.reduce((a, [re, im]) => a + re * re - im * im, 0);
          const sqAbs = lam.reduce((a, [re, im]) => a + re * re + im * im, 0);
          assert.ok(Math.abs(sumRe - tr) <= 1e-4 * Math.max(sumAbs, 1e-6), `${l}.${h}: sum ${sumRe} vs trace ${tr}`);
          assert.ok(Math.abs(sumIm) <= 1e-4 * Math.max(sumAbs, 1e-6), `${l}.${h}: imaginary parts sum to ${sumIm}`);
          assert.ok(Math.abs(sq - tr2) <= 1e-4 * Math.max(sqAbs, 1e-6), `${l}.${h}: sum of squares ${sq} vs trace(OV^2) ${tr2}`);
          // copying score as defined from the eigenvalues: sum Re / sum |lambda|.
          assert.ok(Math.abs(e.ov_copying_score - sumRe / sumAbs) <= 1e-4, `${l}.${h}: ov_copying_score`);
          assert.ok(e.qk_copying_score >= -1 - 1e-6 && e.qk_copying_score <= 1 + 1e-6);
          // Diagonal test: fraction of sources whose row ranks themselves 1st / in the top 5.
          let top1 = 0, top5 = 0;
          for (let s = 0; s < V; s++) {
            const rank = sorted(OV[s]).findIndex((x) => x.id === s);
            if (rank === 0) top1++;
            if (rank < 5) top5++;
          }
          assert.ok(Math.abs(e.ov_diagonal_top1 - top1 / V) < 1e-6, `${l}.${h}: top1 ${e.ov_diagonal_top1} vs ${top1 / V}`);
          assert.ok(Math.abs(e.ov_diagonal_top5 - top5 / V) < 1e-6, `${l}.${h}: top5 ${e.ov_diagonal_top5} vs ${top5 / V}`);
          if (m.cfg.positional_embedding_type === 'none') assert.equal(e.positional_share, 0);
          else assert.ok(e.positional_share >= 0 && e.positional_share <= 1, `positional_share ${e.positional_share}`);
        });
      });
    }
  }

  test('table without --json: one line per head', () => {
    const m = MODELS.lnShort;
    const r = cli(['heads', m.dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /processed weights/);
    for (const [l, h] of heads(m)) assert.match(r.stdout, new RegExp(`^${l}\\.${h} `, 'm'));
  });
});

// ---- reference: skip-trigrams (core/skip_trigrams.h, docs/one-layer.md) ----
// The documented candidate set and score, enumerated by brute force over the
// dense circuits.
function referenceTrigrams(m, l, h, { top = 20, perSource = 5, sources = 50, source, destination, out, raw = false }) {
  const { OV, QK } = circuits(m, l, h, { raw });
  const V = m.cfg.d_vocab, Vo = m.cfg.d_vocab_out;
  const rms = (M) => Math.sqrt(M.reduce((a, row) => a + row.reduce((b, v) => b + v * v, 0), 0) / (M.length * M[0].length));
  const qkRms = rms(QK), ovRms = rms(OV);
  const topIds = (line, k) => sorted(line).slice(0, k).map((x) => x.id);
  let S;
  if (source !== undefined) S = [source];
  else if (destination !== undefined && out !== undefined) S = [...Array(V).keys()];
  else if (destination !== undefined) S = topIds(QK[destination], sources);
  else if (out !== undefined) S = topIds(col(OV, out), sources);
  else S = [...Array(V).keys()];
  const cands = [];
  for (const s of S) {
    const D = destination !== undefined ? [destination] : topIds(col(QK, s), perSource);
    const O = out !== undefined ? [out] : topIds(OV[s], perSource);
    for (const d of D)
      for (const o of O) {
        const qk = QK[d][s], ov = OV[s][o];
        if (qk > 0 && ov > 0) cands.push({ source: s, destination: d, out: o, qk, ov, score: (qk / qkRms) * (ov / ovRms) });
      }
  }
  cands.sort((a, b) => b.score - a.score || a.source - b.source || a.destination - b.destination || a.out - b.out);
  return { entries: cands.slice(0, top), qkRms, ovRms, Vo };
}

function checkTrigrams(j, ref, what) {
  const rel = (a, b) => Math.abs(a - b) <= 1e-4 * Math.max(Math.abs(a), Math.abs(b), 1e-6);
  assert.ok(rel(j.qk_rms, ref.qkRms), `${what}: qk_rms ${j.qk_rms} vs ${ref.qkRms}`);
  assert.ok(rel(j.ov_rms, ref.ovRms), `${what}: ov_rms ${j.ov_rms} vs ${ref.ovRms}`);
  assert.equal(j.entries.length, ref.entries.length, `${what}: number of entries`);
  const scale = ref.entries.length ? ref.entries[0].score : 1;
  j.entries.forEach((e, i) => {
    const r = ref.entries[i];
    const near = (a, b) => Math.abs(a - b) <= 1e-4 * Math.max(Math.abs(a), Math.abs(b), 0.1 * scale);
    assert.ok(near(e.score, r.score), `${what} rank ${i}: score ${e.score} vs ${r.score}`);
    const tied = ref.entries.some((x, k) => k !== i && near(x.score, r.score));
    if (!tied)
      assert.deepEqual([e.source.id, e.destination.id, e.out.id], [r.source, r.destination, r.out], `${what} rank ${i}`);
    for (const key of ['source', 'destination', 'out']) assert.equal(typeof e[key].token, 'string');
  });
}

describe('skip-trigrams against brute force', () => {
  for (const name of Object.keys(MODELS)) {
    test(name, () => {
      const m = MODELS[name];
      const V = m.cfg.d_vocab;
      for (const [l, h] of heads(m)) {
        const head = `${l}.${h}`;
        const run = (flags) => cliJson(['skip-trigrams', m.dir, '--head', head, '--json', ...flags]);
        // Default candidate set.
        checkTrigrams(run(['--top', '15']), referenceTrigrams(m, l, h, { top: 15 }), `${name} ${head}`);
        // Every trigram with both entries positive (per-source lists as long as the vocabulary).
        checkTrigrams(run(['--top', '40', '--per-source', String(V)]),
          referenceTrigrams(m, l, h, { top: 40, perSource: V }), `${name} ${head} all`);
        // Filters.
        checkTrigrams(run(['--top', '10', '--source', '3']), referenceTrigrams(m, l, h, { top: 10, source: 3 }), `${name} ${head} --source`);
        checkTrigrams(run(['--top', '10', '--destination', '4', '--sources', '6']),
          referenceTrigrams(m, l, h, { top: 10, destination: 4, sources: 6 }), `${name} ${head} --destination`);
        checkTrigrams(run(['--top', '10', '--out', '2']), referenceTrigrams(m, l, h, { top: 10, out: 2 }), `${name} ${head} --out`);
        checkTrigrams(run(['--top', '10', '--destination', '1', '--out', '0']),
          referenceTrigrams(m, l, h, { top: 10, destination: 1, out: 0 }), `${name} ${head} --destination --out`);
        checkTrigrams(run(['--top', '12', '--raw']), referenceTrigrams(m, l, h, { top: 12, raw: true }), `${name} ${head} --raw`);
      }
    });
  }
});

describe('bad input: exit code, one stderr line naming the flag, nothing on stdout', () => {
  const expectFail = (args, code, pattern) => {
    const r = cli(args);
    assert.equal(r.code, code, `exit code of ${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, `stderr: ${r.stderr}`);
    assert.match(lines[0], /^circuitscope: /);
    assert.match(lines[0], pattern);
  };
  test('head out of range (data: exit 1)', () => {
    const m = MODELS.lnStd;
    expectFail(['ov', m.dir, '--head', '3.0', '--source', '1', '--json'], 1,
      /--head 3\.0: layer 3 is outside \[0, n_layers = 1\)/);
    expectFail(['qk', m.dir, '--head', '0.2', '--destination', '1'], 1, /--head 0\.2: head 2 is outside \[0, n_heads = 2\)/);
    expectFail(['skip-trigrams', m.dir, '--head', '1.0'], 1, /--head 1\.0: layer 1/);
  });
  test('token id out of range (data: exit 1)', () => {
    const m = MODELS.lnStd;
    expectFail(['ov', m.dir, '--head', '0.0', '--source', '30'], 1, /--source 30 is outside \[0, d_vocab = 30\)/);
    expectFail(['ov', m.dir, '--head', '0.0', '--out', '99'], 1, /--out 99 is outside \[0, d_vocab_out = 30\)/);
    expectFail(['qk', m.dir, '--head', '0.0', '--destination', '31'], 1, /--destination 31/);
    expectFail(['skip-trigrams', m.dir, '--head', '0.0', '--out', '30'], 1, /--out 30/);
  });
  test('usage errors (exit 2)', () => {
    const m = MODELS.lnStd;
    expectFail(['ov', m.dir, '--source', '1'], 2, /--head/);
    expectFail(['ov', m.dir, '--head', 'x', '--source', '1'], 2, /--head 'x'/);
    expectFail(['ov', m.dir, '--head', '0.a', '--source', '1'], 2, /--head '0\.a'/);
    expectFail(['ov', m.dir, '--head', '0.0'], 2, /--source ID or --out ID/);
    expectFail(['ov', m.dir, '--head', '0.0', '--source', '1', '--out', '2'], 2, /--source ID or --out ID/);
    expectFail(['qk', m.dir, '--head', '0.0', '--out', '2'], 2, /unknown option '--out'/);
    expectFail(['qk', m.dir, '--head', '0.0', '--source', '-1'], 2, /--source/);
    expectFail(['ov', m.dir, '--head', '0.0', '--source', '1', '--top', '0'], 2, /--top/);
    expectFail(['heads'], 2, /MODEL/);
    expectFail(['heads', m.dir, '--bogus'], 2, /--bogus/);
  });
  test('missing model (exit 1)', () => {
    expectFail(['heads', path.join(work, 'nope')], 1, /nope/);
  });
});

// The trainer end to end (CTest train.induction_forms): a 2-layer
// attention-only model trained by `circuitscope train` on repeated random
// tokens only ([I]'s setup) grows an induction head.
// Checked on the final checkpoint independently of the trainer's own
// evaluation: sequences of [I]'s evaluator are made here (BOS + 25 distinct
// random tokens repeated 4 times, 10 examples), run through
// `circuitscope run --patterns`, and scored here:
//   - prefix matching of a layer-1 head (mean attention from each token of
//     copies 2..4 to the tokens just after its earlier occurrences) > 0.5,
//   - mean loss on the repeats < half the mean loss on the first copy,
// and the log shows the phase change (nothing of the kind at step 0).
// 1,000 steps of batch 8 x 128 tokens, repeated segments of 8..40 tokens (in
// trial runs the head formed within 600-700 steps for each of 10 seeds); the
// time is printed.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { cli, cliJson, tempDir } from '../cli/helpers.mjs';

const STEPS = 1000;
const VOCAB = 256, BOS = 0, N = 25, REPEATS = 4, EXAMPLES = 10;

// Own PRNG (not the trainer's), LCG.
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

function repeatedSequences(seed) {
  const r = rng(seed);
  const seqs = [];
  for (let e = 0; e < EXAMPLES; e++) {
    const ids = Array.from({ length: VOCAB - 1 }, (_, i) => i + 1);  // all but BOS
    for (let j = 0; j < N; j++) {  // partial Fisher-Yates: N distinct ids
      const k = j + Math.floor(r() * (ids.length - j));
      [ids[j], ids[k]] = [ids[k], ids[j]];
    }
    const s = ids.slice(0, N);
    seqs.push([BOS, ...Array.from({ length: REPEATS }, () => s).flat()]);
  }
  return seqs;
}

test('an induction head forms on repeated random tokens', { timeout: 280_000 }, () => {
  const out = path.join(tempDir(), 'run');
  const t0 = Date.now();
  const r = cli(['train', '--out', out, '--vocab', String(VOCAB), '--bos', String(BOS), '--layers', '2',
    '--d-model', '64', '--heads', '4', '--d-head', '16', '--ctx', '128', '--batch', '8', '--lr', '2e-3',
    '--warmup', '100', '--schedule', 'constant', '--curriculum', `repeat:${STEPS}:8-40`, '--seed', '1',
    '--threads', '2', '--eval-every', '100', '--save-every', '0', '--no-progress']);
  const secs = (Date.now() - t0) / 1000;
  assert.equal(r.code, 0, r.stderr);
  console.log(`# trained ${STEPS} steps in ${secs.toFixed(1)} s`);

  const ck = path.join(out, `step-${String(STEPS).padStart(7, '0')}`);
  const L = 2, H = 4;
  const pm = Array.from({ length: L }, () => new Array(H).fill(0));
  let count = 0, first = 0, nFirst = 0, rep = 0, nRep = 0;
  for (const seq of repeatedSequences(20240601)) {
    const j = cliJson(['run', ck, '--ids', seq.join(','), '--patterns', '--json', '--raw']);
    // Prefix matching: destination 1 + k N + i (copy k >= 1) attends to 1 + k' N + i + 1, k' < k.
    for (let k = 1; k < REPEATS; k++)
      for (let i = 0; i < N; i++) {
        const dest = 1 + k * N + i;
        for (let l = 0; l < L; l++)
          for (let h = 0; h < H; h++) {
            let s = 0;
            for (let k2 = 0; k2 < k; k2++) s += j.patterns[l][h][dest][1 + k2 * N + i + 1];
            pm[l][h] += s;
          }
        count++;
      }
    // losses[t - 1] is the loss of predicting token t: first copy t = 1..N, repeats after.
    j.losses.forEach((loss, idx) => {
      const t = idx + 1;
      if (t <= N) { first += loss; nFirst++; } else { rep += loss; nRep++; }
    });
  }
  const scores = pm.map((row) => row.map((v) => v / count));
  const best = Math.max(...scores[1]);
  first /= nFirst;
  rep /= nRep;
  console.log(`# layer-1 prefix matching ${scores[1].map((v) => v.toFixed(3)).join(' ')}; ` +
    `loss first copy ${first.toFixed(3)}, repeats ${rep.toFixed(3)}`);
  assert.ok(best > 0.5, `best layer-1 prefix-matching score ${best.toFixed(3)} <= 0.5`);
  assert.ok(rep < 0.5 * first, `loss on repeats ${rep.toFixed(3)} is not under half of ${first.toFixed(3)}`);

  // The log shows where it came from: no induction at step 0, a prefix-matching
  // head at the end agreeing with the scores above.
  const log = readFileSync(path.join(out, 'train_log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const evals = log.filter((l) => l.prefix_matching);
  assert.equal(evals[0].step, 0);
  assert.ok(Math.max(...evals[0].prefix_matching[1]) < 0.1, 'induction already at step 0?');
  assert.ok(evals[0].repeat_loss_repeats > 0.9 * evals[0].repeat_loss_first);
  const last = evals.at(-1);
  assert.equal(last.step, STEPS);
  assert.ok(Math.max(...last.prefix_matching[1]) > 0.5);
});

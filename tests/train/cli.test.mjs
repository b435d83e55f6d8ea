// `circuitscope train` end to end on tiny models (node --test): checkpoint
// folders on disk, the log, resume giving the same bytes as a straight run,
// Ctrl-C saving a checkpoint, a NaN loss stopping with the last good
// checkpoint kept, and one-line errors with a non-zero exit for bad input.
// Environment: CIRCUITSCOPE_BIN (the binary), CIRCUITSCOPE_SOURCE_DIR.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';

import { BIN, cli, readSafetensors, tempDir } from '../cli/helpers.mjs';

const work = tempDir();

// Token ids 1..39 with some structure (a noisy cycle); 0 is kept for BOS.
function ids(n, seed) {
  let s = seed >>> 0;
  const out = new Uint16Array(n);
  let t = 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    t = (s >>> 24) % 4 === 0 ? 1 + ((s >>> 8) % 39) : 1 + (t % 39);
    out[i] = t;
  }
  return out;
}
function writeIds(name, arr) {
  const p = path.join(work, name);
  writeFileSync(p, Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength));
  return p;
}
const TRAIN = writeIds('train.u16', ids(3000, 1));
const HELDOUT = writeIds('heldout.u16', ids(600, 2));

// A tiny model: 2 layers, d_model 16, 2 heads, n_ctx 16, vocab 40.
const TINY = ['--layers', '2', '--d-model', '16', '--heads', '2', '--ctx', '16', '--vocab', '40', '--bos', '0',
  '--batch', '4', '--threads', '2', '--no-progress', '--data', TRAIN, '--heldout', HELDOUT];

const readLog = (file) => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const latest = (dir) => path.join(dir, readFileSync(path.join(dir, 'LATEST'), 'utf8').trim());

function oneLineError(r, code, pattern) {
  assert.equal(r.code, code, `exit ${r.code}, stderr: ${r.stderr}`);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^circuitscope: /);
  assert.match(lines[0], pattern);
}

describe('train', () => {
  test('checkpoints, LATEST and the log', () => {
    const out = path.join(work, 'basic');
    const r = cli(['train', ...TINY, '--out', out, '--steps', '6', '--save-every', '2', '--eval-every', '3',
      '--log-every', '1', '--curriculum', 'repeat:2,text:4']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /trained 6 steps/);
    const steps = readdirSync(out).filter((n) => n.startsWith('step-')).sort();
    assert.deepEqual(steps, ['step-0000002', 'step-0000004', 'step-0000006']);
    assert.equal(latest(out), path.join(out, 'step-0000006'));
    assert.ok(!readdirSync(out).some((n) => n.startsWith('.tmp')), 'no temporary folder left');
    for (const f of ['model.safetensors', 'config.json', 'optimizer.safetensors', 'trainer_state.json'])
      assert.ok(existsSync(path.join(out, 'step-0000006', f)), f);
    // The checkpoint is a model the other commands read (Hugging Face layout, F32).
    const info = JSON.parse(cli(['info', path.join(out, 'step-0000006'), '--json', '--raw']).stdout);
    assert.equal(info.config.n_layers, 2);
    assert.equal(info.config.d_vocab, 40);
    const st = readSafetensors(path.join(out, 'step-0000006', 'model.safetensors'));
    assert.deepEqual(st.tensors['blocks.1.attn.W_Q'].shape, [2, 16, 8]);
    const state = JSON.parse(readFileSync(path.join(out, 'step-0000006', 'trainer_state.json'), 'utf8'));
    assert.equal(state.step, 6);
    assert.equal(state.tokens, 6 * 4 * 16);
    // Log: step 0 (evaluation), then every step; evaluations at 0, 3 and 6.
    const log = readLog(path.join(out, 'train_log.jsonl'));
    assert.deepEqual(log.map((l) => l.step), [0, 1, 2, 3, 4, 5, 6]);
    assert.deepEqual(log.filter((l) => l.prefix_matching).map((l) => l.step), [0, 3, 6]);
    assert.deepEqual(log.map((l) => l.phase), ['repeated-random', 'repeated-random', 'repeated-random', 'text', 'text', 'text', 'text']);
    for (const l of log.slice(1)) {
      assert.ok(Number.isFinite(l.loss) && l.loss > 0, JSON.stringify(l));
      assert.ok(l.lr > 0 && l.tokens_per_s > 0);
    }
    const e = log[6];
    assert.equal(e.prefix_matching.length, 2);
    assert.equal(e.prefix_matching[1].length, 2);
    assert.equal(e.prev_token_on, 'held-out text');
    // An untrained-ish model on 40 ids: about log(40) nats.
    assert.ok(Math.abs(e.heldout_loss - Math.log(40)) < 1.0, `held-out loss ${e.heldout_loss}`);
  });

  test('resume continues bit-identically', () => {
    const args = [...TINY, '--schedule', 'constant', '--warmup', '2', '--save-every', '0', '--log-every', '1',
      '--eval-every', '0', '--curriculum', 'repeat:3,text:5'];
    const a = path.join(work, 'straight');
    assert.equal(cli(['train', ...args, '--out', a, '--steps', '8']).code, 0);
    const b = path.join(work, 'halves');
    let r = cli(['train', ...args, '--out', b, '--steps', '4']);
    assert.equal(r.code, 0, r.stderr);
    r = cli(['train', '--resume', b, '--steps', '8', '--no-progress']);
    assert.equal(r.code, 0, r.stderr);
    const wa = readFileSync(path.join(a, 'step-0000008', 'model.safetensors'));
    const wb = readFileSync(path.join(b, 'step-0000008', 'model.safetensors'));
    assert.ok(wa.equals(wb), 'weights differ after resuming');
    const oa = readFileSync(path.join(a, 'step-0000008', 'optimizer.safetensors'));
    const ob = readFileSync(path.join(b, 'step-0000008', 'optimizer.safetensors'));
    assert.ok(oa.equals(ob), 'optimizer moments differ after resuming');
    // The resumed log continues the first one: steps 0..8 once each, same losses.
    const la = readLog(path.join(a, 'train_log.jsonl')), lb = readLog(path.join(b, 'train_log.jsonl'));
    assert.deepEqual(lb.map((l) => l.step), la.map((l) => l.step));
    assert.deepEqual(lb.map((l) => l.loss), la.map((l) => l.loss));
  });

  test('Ctrl-C saves a checkpoint, exits 130, and the run resumes', async () => {
    const out = path.join(work, 'sigint');
    const child = spawn(BIN, ['train', ...TINY, '--out', out, '--steps', '10000000', '--save-every', '0',
      '--eval-every', '0', '--log-every', '5']);
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const logFile = path.join(out, 'train_log.jsonl');
    // Wait until training is under way (a few log lines), then interrupt.
    for (let i = 0; i < 400; i++) {
      await new Promise((res) => setTimeout(res, 50));
      if (existsSync(logFile) && readFileSync(logFile, 'utf8').split('\n').length > 3) break;
    }
    child.kill('SIGINT');
    const code = await new Promise((res) => child.on('close', res));
    assert.equal(code, 130, stderr);
    assert.match(stderr, /interrupted at step \d+/);
    const step = Number(/interrupted at step (\d+)/.exec(stderr)[1]);
    assert.ok(step > 0);
    const state = JSON.parse(readFileSync(path.join(latest(out), 'trainer_state.json'), 'utf8'));
    assert.equal(state.step, step);
    const r = cli(['train', '--resume', out, '--steps', String(step + 3), '--no-progress']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`trained ${step + 3} steps`));
  });

  test('a NaN loss stops with a clear message and the last good checkpoint kept', () => {
    const out = path.join(work, 'nan');
    const r = cli(['train', ...TINY, '--out', out, '--steps', '50', '--lr', '1e36', '--warmup', '0', '--schedule',
      'constant', '--grad-clip', '0', '--save-every', '1', '--eval-every', '0']);
    oneLineError(r, 1, /diverged: .*(NaN|Inf).* step \d+/);
    assert.match(r.stderr, /last good checkpoint is .*step-\d+/);
    const kept = latest(out);
    assert.ok(r.stderr.includes(kept), r.stderr);
    const st = readSafetensors(path.join(kept, 'model.safetensors'));
    for (const [name, t] of Object.entries(st.tensors))
      assert.ok(t.values.every(Number.isFinite), `${name} of the kept checkpoint has NaN/Inf`);
  });

  test('--config JSON, with flags overriding it', () => {
    const cfgFile = path.join(work, 'config.json');
    writeFileSync(cfgFile, JSON.stringify({
      model: { n_layers: 1, d_model: 24, n_heads: 3, d_head: 8, n_ctx: 20, positional: 'standard', normalization: 'LN' },
      batch: 2, steps: 9, lr: 0.002, schedule: 'constant', warmup: 1, bos: 0, eval_every: 0, save_every: 0,
      curriculum: [{ source: 'repeated-random', steps: 2, min_len: 3, max_len: 6 }, { source: 'text' }],
    }));
    const out = path.join(work, 'config-run');
    const r = cli(['train', '--config', cfgFile, '--data', TRAIN, '--steps', '4', '--out', out, '--no-progress']);
    assert.equal(r.code, 0, r.stderr);
    const used = JSON.parse(readFileSync(path.join(out, 'train_config.json'), 'utf8'));
    assert.equal(used.steps, 4);  // the flag wins
    assert.equal(used.batch, 2);
    assert.equal(used.model.n_layers, 1);
    assert.equal(used.model.positional, 'standard');
    assert.equal(used.model.d_vocab, 40);  // from the data: largest id 39 + 1
    assert.deepEqual(used.curriculum.map((p) => [p.source, p.min_len, p.max_len]),
      [['repeated-random', 3, 6], ['text', 0, 0]]);
    assert.deepEqual(readdirSync(out).filter((n) => n.startsWith('step-')), ['step-0000004']);
    writeFileSync(cfgFile, JSON.stringify({ batch: 2, learning_rate: 0.1 }));
    oneLineError(cli(['train', '--config', cfgFile, '--data', TRAIN, '--out', path.join(work, 'cfg-bad')]), 1,
      /unknown key 'learning_rate'/);
  });

  test('bad input: one line, non-zero exit', () => {
    const out = (n) => path.join(work, `bad-${n}`);
    const empty = writeIds('empty.u16', new Uint16Array(0));
    oneLineError(cli(['train', ...TINY.filter((a, i, all) => a !== TRAIN && all[i + 1] !== TRAIN), '--data', empty,
      '--out', out(1)]), 1, /training data .*empty/);
    oneLineError(cli(['train', '--data', path.join(work, 'missing.u16'), '--vocab', '40', '--out', out(2)]), 1,
      /missing\.u16.*no such file/);
    const short = writeIds('short.u16', ids(10, 3));
    oneLineError(cli(['train', '--data', short, '--ctx', '16', '--vocab', '40', '--out', out(3)]), 1,
      /10 tokens, fewer than one context of n_ctx 16/);
    const big = writeIds('big.u16', Uint16Array.from([...ids(100, 4), 45, ...ids(100, 5)]));
    oneLineError(cli(['train', '--data', big, '--ctx', '16', '--vocab', '40', '--out', out(4)]), 1,
      /token id 45 at position 100 is outside the model's vocabulary \[0, d_vocab = 40\)/);
    const odd = path.join(work, 'odd.u16');
    writeFileSync(odd, Buffer.from([1, 2, 3]));
    oneLineError(cli(['train', '--data', odd, '--vocab', '40', '--out', out(5)]), 1, /not a whole number/);
    const noext = path.join(work, 'ids.dat');
    writeFileSync(noext, Buffer.from([1, 0, 2, 0]));
    oneLineError(cli(['train', '--data', noext, '--vocab', '40', '--out', out(6)]), 2, /--data-dtype/);
    oneLineError(cli(['train', ...TINY, '--out', out(7), '--curriculum', 'copy:100']), 2, /'copy'/);
    oneLineError(cli(['train', ...TINY]), 2, /--out/);
    oneLineError(cli(['train', ...TINY, '--out', out(8), '--steps', '100', '--curriculum', 'repeat:200,text:10']),
      1, /never run/);
    // An existing run is not overwritten by a fresh one, and a resume cannot change the run's settings.
    const basic = path.join(work, 'basic');
    oneLineError(cli(['train', ...TINY, '--out', basic, '--steps', '2']), 1, /already holds a run/);
    oneLineError(cli(['train', '--resume', basic, '--lr', '0.1']), 2, /--lr cannot be changed when resuming/);
    oneLineError(cli(['train', '--resume', path.join(work, 'nowhere')]), 1, /neither a checkpoint folder/);
    oneLineError(cli(['train', '--resume', basic]), 1, /give --steps/);
  });
});

// `circuitscope convert IN OUT [--f16] [--name NAME]` (node --test): a
// checkpoint-like folder becomes the bundled-model files and nothing else;
// weights compared tensor by tensor with the input, read here with the test's
// own safetensors reader (F16 decoded in JavaScript).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cli, cliJson, tempDir, readSafetensors, DEMO } from './helpers.mjs';

// A random LayerNorm model over the demo's 257-token vocabulary, with the
// demo's tokenizer and the extra files a training checkpoint has.
function checkpoint(t, std = '0.5') {
  const dir = path.join(tempDir(t), 'step-0000100');
  const r = cli(['make-random', dir, '--layers', '2', '--d-model', '16', '--heads', '2', '--d-head', '8',
    '--ctx', '12', '--vocab', '257', '--norm', 'LN', '--pos', 'shortformer', '--seed', '5', '--std', std]);
  assert.equal(r.code, 0, r.stderr);
  copyFileSync(path.join(DEMO, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  writeFileSync(path.join(dir, 'optimizer.safetensors'), 'not a model file');
  writeFileSync(path.join(dir, 'trainer_state.json'), '{"step": 100}');
  return dir;
}

test('--f16: only the model files, same config and tokenizer bytes, weights rounded to F16', (t) => {
  const src = checkpoint(t);
  const out = path.join(tempDir(t), 'bundled');
  const j = cliJson(['convert', src, out, '--f16', '--json']);
  assert.equal(j.dtype, 'F16');
  assert.deepEqual(readdirSync(out).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
  for (const f of ['config.json', 'tokenizer.json']) {
    assert.ok(readFileSync(path.join(out, f)).equals(readFileSync(path.join(src, f))), `${f} copied unchanged`);
  }
  const a = readSafetensors(path.join(src, 'model.safetensors')).tensors;
  const bFile = readFileSync(path.join(out, 'model.safetensors'));
  const b = readSafetensors(path.join(out, 'model.safetensors')).tensors;
  assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort());
  const hdr = JSON.parse(bFile.subarray(8, 8 + Number(bFile.readBigUInt64LE(0))).toString('utf8'));
  let worst = 0;
  for (const [name, ta] of Object.entries(a)) {
    assert.equal(hdr[name].dtype, 'F16', `${name} dtype`);
    assert.deepEqual(b[name].shape, ta.shape, `${name} shape`);
    ta.values.forEach((x, i) => {
      const err = Math.abs(b[name].values[i] - x);
      // Round to nearest F16: half an ulp, 2^-11 relative (2^-25 absolute below the normal range).
      assert.ok(err <= Math.abs(x) * 2 ** -11 + 2 ** -25, `${name}[${i}]: ${x} -> ${b[name].values[i]}`);
      worst = Math.max(worst, err);
    });
  }
  assert.ok(worst > 0, 'F16 rounding changed something');
  assert.ok(Math.abs(j.max_abs_diff - worst) <= 1e-6 * Math.max(1, worst), `reported ${j.max_abs_diff}, seen ${worst}`);
  // The result loads and describes the same model.
  const info = cliJson(['info', out, '--json', '--raw']);
  const infoSrc = cliJson(['info', src, '--json', '--raw']);
  assert.deepEqual(info.config, infoSrc.config);
  assert.equal(info.tokenizer.vocab_size, 257);
});

test('without --f16 the weights are bit-identical; --name sets model_name only', (t) => {
  const src = checkpoint(t);
  const out = path.join(tempDir(t), 'named');
  const r = cli(['convert', src, out, '--name', 'snapshot, step 100']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /as F32/);
  const a = readSafetensors(path.join(src, 'model.safetensors')).tensors;
  const b = readSafetensors(path.join(out, 'model.safetensors')).tensors;
  for (const [name, ta] of Object.entries(a)) assert.deepEqual(Array.from(b[name].values), Array.from(ta.values), name);
  const ca = JSON.parse(readFileSync(path.join(src, 'config.json'), 'utf8'));
  const cb = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
  assert.equal(cb.model_name, 'snapshot, step 100');
  delete ca.model_name;
  delete cb.model_name;
  assert.deepEqual(cb, ca);
});

test('bad input: one stderr line, exit codes', (t) => {
  const src = checkpoint(t);
  let r = cli(['convert', src, src, '--f16']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^circuitscope: convert: OUT '.*' is IN itself/);
  assert.equal(r.stderr.trim().split('\n').length, 1);

  const big = checkpoint(t, '1e5');
  r = cli(['convert', big, path.join(tempDir(t), 'o'), '--f16']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /tensor '[^']+' has the value .*outside F16's range/);

  r = cli(['convert', src]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /missing OUT/);
  r = cli(['convert', path.join(tempDir(t), 'nothing-here'), path.join(tempDir(t), 'o')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no such file or folder/);
});

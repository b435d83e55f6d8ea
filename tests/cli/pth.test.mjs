// PyTorch checkpoints on the command line (docs/model.md, PyTorch checkpoints):
// every MODEL form (a folder with model_final.pth, a folder with another .pth,
// a .pth path with config.json beside it) gives the logits of its safetensors
// twin (tests/fixtures/pth, written by torch.save and by hand from the same
// numbers) and of the reference forward pass on the twin's tensors; hostile
// and truncated checkpoints exit non-zero with one line naming the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { cli, cliJson, maxRelDiff, readSafetensors, referenceForward, SOURCE_DIR, tempDir } from './helpers.mjs';

const FIX = path.join(SOURCE_DIR, 'tests/fixtures/pth');
const TWIN = path.join(FIX, 'tiny-2l-safetensors');
const IDS = [5, 17, 300, 5, 17, 2047, 0, 1024];

function run(model, extra = []) {
  return cliJson(['run', model, '--ids', IDS.join(','), '--json', '--logits', ...extra]);
}

// The weights are bit for bit the twin's (tests/unit/test_pth.cpp); the
// forward pass's float sums may round differently with where the heap put
// them (Eigen's vector loops start at aligned addresses), hence 1e-5.
const SAME = 1e-5;

test('a folder with model_final.pth gives the logits of its safetensors twin', () => {
  for (const extra of [[], ['--raw']]) {
    const a = run(path.join(FIX, 'tiny-2l'), extra);
    const b = run(TWIN, extra);
    assert.ok(maxRelDiff(a.logits, b.logits, 1) <= SAME, `logits differ (${extra.join(' ') || 'processed'})`);
    assert.ok(Math.abs(a.loss - b.loss) <= SAME * b.loss);
  }
});

test('the checkpoint\'s logits match the reference forward pass on the twin\'s tensors', () => {
  const j = run(path.join(FIX, 'tiny-2l'), ['--raw']);
  const cfg = cliJson(['info', path.join(FIX, 'tiny-2l'), '--json', '--raw']).config;
  const { tensors } = readSafetensors(path.join(TWIN, 'model.safetensors'));
  const ref = referenceForward(tensors, cfg, IDS);
  assert.ok(maxRelDiff(j.logits, ref.logits, 1e-2) < 1e-4, 'logits differ from the reference');
});

test('a .pth path takes config.json from beside it; F16, BF16 and the legacy format load', () => {
  const twin = run(TWIN).logits;
  for (const [file, tol] of [['legacy.pth', SAME], ['f16.pth', 2e-2], ['bf16.pth', 1e-1]]) {
    const j = run(path.join(FIX, 'checkpoints', file));
    const d = maxRelDiff(j.logits, twin, 1);
    assert.ok(d <= tol, `${file}: logits differ from the twin's by ${d} (allowed ${tol})`);
    if (tol > SAME) assert.ok(d > SAME, `${file}: rounded weights should change the logits a little`);
  }
  const info = cliJson(['info', path.join(FIX, 'checkpoints', 'bf16.pth'), '--json']);
  assert.equal(info.config.n_layers, 2);
});

test('a folder with one other .pth (and config.json) loads it', (t) => {
  const dir = tempDir(t);
  copyFileSync(path.join(FIX, 'checkpoints', 'legacy.pth'), path.join(dir, 'weights.pth'));
  copyFileSync(path.join(FIX, 'checkpoints', 'config.json'), path.join(dir, 'config.json'));
  assert.ok(maxRelDiff(run(dir, ['--raw']).logits, run(TWIN, ['--raw']).logits, 1) <= SAME);
});

test('a .pth alone (no config.json beside it) loads with its config read off the tensor shapes', (t) => {
  const dir = tempDir(t);
  copyFileSync(path.join(FIX, 'tiny-2l', 'model_final.pth'), path.join(dir, 'model_final.pth'));
  assert.ok(maxRelDiff(run(path.join(dir, 'model_final.pth'), ['--raw']).logits, run(TWIN, ['--raw']).logits, 1) <= SAME);
});

test('hostile checkpoints exit non-zero with one line, and run nothing', (t) => {
  const marker = '/tmp/circuitscope-pwned';
  const before = existsSync(marker);
  const cases = {
    'global_os_system.pth': /global 'posix\.system' at byte \d+ is not allowed/,
    'reduce_storage.pth': /REDUCE at byte \d+ calls 'torch\.FloatStorage'/,
    'offset_beyond.pth': /tensor 'embed\.W_E' spans elements \[3, 3 \+ 4\) beyond its storage/,
    'storage_short.pth': /should hold 400 elements of F32 but its entry has 16 bytes/,
    'zip_bomb.pth': /is compressed \(method 8\)/,
  };
  for (const [file, re] of Object.entries(cases)) {
    const r = cli(['info', path.join(FIX, 'hostile', file)]);
    assert.notEqual(r.code, 0, file);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${file}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(file.replace('.', '\\.')));
    assert.match(r.stderr, re);
  }
  if (!before) assert.ok(!existsSync(marker), 'a pickle ran os.system');
  // Cut short: the zip and the legacy format.
  const dir = tempDir(t);
  copyFileSync(path.join(FIX, 'checkpoints', 'config.json'), path.join(dir, 'config.json'));
  for (const src of ['tiny-2l/model_final.pth', 'checkpoints/legacy.pth']) {
    const whole = readFileSync(path.join(FIX, src));
    writeFileSync(path.join(dir, 'cut.pth'), whole.subarray(0, Math.floor(whole.length / 2)));
    const r = cli(['info', path.join(dir, 'cut.pth')]);
    assert.notEqual(r.code, 0, src);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /truncated/, r.stderr);
  }
});

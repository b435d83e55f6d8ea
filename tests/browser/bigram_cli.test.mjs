// (4) The page's bigram top-k (cs_bigram_top_json) equals the CLI's
// `circuitscope bigrams MODEL --id N --top K --json [--raw]`, for the default
// model and for an uploaded LayerNorm model (where processing matters).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  openPage, waitIdle, waitForState, assertNoErrors, cliPath, demoFiles, testModelFiles, writeTempFolder,
} from './harness.mjs';

function cli(model, id, k, raw) {
  const args = ['bigrams', model, '--id', String(id), '--top', String(k), '--json'];
  if (raw) args.push('--raw');
  return JSON.parse(execFileSync(cliPath, args, { encoding: 'utf8' }));
}

async function page_(page, id, k) {
  return JSON.parse(await page.evaluate(([id, k]) =>
    Module.ccall('cs_bigram_top_json', 'string', ['number', 'number'], [id, k]), [id, k]));
}

function same(actual, expected, what) {
  assert.deepEqual(Object.keys(actual), Object.keys(expected), `${what}: keys`);
  assert.deepEqual(actual.source, expected.source, `${what}: source`);
  assert.equal(actual.weights, expected.weights, `${what}: weights`);
  assert.equal(actual.next.length, expected.next.length, `${what}: length`);
  actual.next.forEach((a, i) => {
    const e = expected.next[i];
    assert.deepEqual(Object.keys(a), Object.keys(e), `${what}: keys of next[${i}]`);
    assert.equal(a.id, e.id, `${what}: next[${i}].id`);
    assert.equal(a.token, e.token, `${what}: next[${i}].token`);
    assert.ok(Math.abs(a.logit - e.logit) <= 1e-4, `${what}: next[${i}].logit ${a.logit} vs ${e.logit}`);
    assert.ok(Math.abs(a.prob - e.prob) <= 1e-4, `${what}: next[${i}].prob ${a.prob} vs ${e.prob}`);
  });
}

async function compare(page, modelDir, ids, raw) {
  await page.evaluate((raw) => Module.ccall('cs_set_raw', null, ['number'], [raw ? 1 : 0]), raw);
  await waitForState(page, (x) => x.model && x.model.weights === (raw ? 'raw' : 'processed') && !x.raw_pending,
    { what: raw ? 'raw weights' : 'processed weights' });
  for (const [id, k] of ids) {
    same(await page_(page, id, k), cli(modelDir, id, k, raw), `${modelDir} id ${id} top ${k}${raw ? ' raw' : ''}`);
  }
}

test('bigram top-k equals the CLI', { timeout: 180000 }, async (t) => {
  assert.ok(existsSync(cliPath), `CLI not found at ${cliPath} (set CIRCUITSCOPE_CLI)`);
  const demo = demoFiles();
  const n = demo.config.d_vocab;
  const ids = [[0, 10], [1, 5], [Math.floor(n / 2), 20], [n - 1, 10], [101 % n, 1], [32 % n, 50]];
  const app = await openPage();
  const upload = testModelFiles({ dModel: 16, nHeads: 2, dHead: 8, norm: 'LN', seed: 3 });
  const dir = writeTempFolder(upload.files);
  try {
    const { page, errors } = app;
    await waitIdle(page);
    await t.test('default model, processed', () => compare(page, demo.dir, ids, false));
    await t.test('default model, raw', () => compare(page, demo.dir, ids, true));
    await page.evaluate(() => Module.ccall('cs_set_raw', null, ['number'], [0]));

    await page.setInputFiles('#file-input', Object.keys(upload.files).map((f) => join(dir, f)));
    await waitForState(page, (x) => x.model && x.model.id === 'file:model.safetensors' && !x.loading.active,
      { what: 'uploaded model' });
    await t.test('LayerNorm model, processed', () => compare(page, dir, ids, false));
    await t.test('LayerNorm model, raw', () => compare(page, dir, ids, true));

    const bad = JSON.parse(await page.evaluate(() => Module.ccall('cs_bigram_top_json', 'string', ['number', 'number'], [-1, 5])));
    assert.match(bad.error, /out of range/);
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

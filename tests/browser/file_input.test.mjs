// (2) A model picked through the hidden file input replaces the default one:
// a folder's three files, then a single .safetensors carrying its config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  openPage, waitIdle, waitForState, assertNoErrors, defaultBundled, testModelFiles, writeTempFolder,
  safetensorsBytes, makeModel, safetensorsParamCount, screenshot,
} from './harness.mjs';

test('file input loads a model that replaces the default', { timeout: 120000 }, async () => {
  const { config, files } = testModelFiles({ dModel: 16, nHeads: 2, dHead: 8, norm: 'LN', seed: 11 });
  const dir = writeTempFolder(files);
  const app = await openPage();
  try {
    const { page, errors } = app;
    const before = await waitIdle(page);
    assert.equal(before.model.id, defaultBundled().id);

    await page.setInputFiles('#file-input', Object.keys(files).map((f) => join(dir, f)));
    const s = await waitForState(page, (x) => x.model && x.model.id === 'file:model.safetensors' && !x.loading.active,
      { what: 'uploaded model' });
    assert.equal(s.error, '');
    assert.equal(s.model.origin, 'files');
    assert.equal(s.model.title, config.model_name);
    assert.equal(s.model.config.d_model, 16);
    assert.equal(s.model.config.n_heads, 2);
    assert.equal(s.model.config.d_head, 8);
    assert.equal(s.model.config.n_layers, 1);
    // fold_ln leaves LayerNorm without weights: ln1.w, ln1.b per layer and ln_final.w, ln_final.b go.
    const lnParams = 2 * 16 * (1 + 1);
    assert.equal(s.model.config.n_params, safetensorsParamCount(files['model.safetensors']) - lnParams);
    // LayerNorm model: TransformerLens folds LN into the next weights (LN -> LNPre).
    assert.match(s.model.processing, /fold_ln/);
    assert.equal(s.model.config.normalization, 'LNPre');
    assert.ok(s.model.tokenizer, 'tokenizer.json came along');
    await waitIdle(page);
    await screenshot(page, 'file-input.png');

    // One .safetensors whose __metadata__ holds the config.
    const m2 = makeModel({ dVocab: config.d_vocab, dModel: 12, nHeads: 3, dHead: 4, norm: 'none', seed: 5,
      name: 'single-file' });
    const single = safetensorsBytes(m2.tensors, { config: JSON.stringify(m2.config) });
    const dir2 = writeTempFolder({ 'single.safetensors': single });
    await page.setInputFiles('#file-input', [join(dir2, 'single.safetensors')]);
    const s2 = await waitForState(page, (x) => x.model && x.model.id === 'file:single.safetensors' && !x.loading.active,
      { what: 'single-file model' });
    assert.equal(s2.error, '');
    assert.equal(s2.download.label, 'Reading single.safetensors', 'the line the panel showed above the bar');
    assert.equal(s2.model.title, 'single-file');
    assert.equal(s2.model.config.d_model, 12);
    assert.equal(s2.model.config.n_heads, 3);
    assert.equal(s2.model.config.normalization, 'none');
    assert.equal(s2.model.tokenizer, null);
    rmSync(dir2, { recursive: true, force: true });

    // Back to the bundled model (what the panel's "Load" button does).
    const bundled = defaultBundled();
    await page.evaluate((id) => window.circuitscopeShell.loadBundled(id), bundled.id);
    const s3 = await waitForState(page, (x) => x.model && x.model.id === bundled.id && !x.loading.active,
      { what: 'bundled model again' });
    assert.equal(s3.model.title, bundled.title);
    assert.equal(s3.download.active, false);
    assert.ok(s3.download.total > 0 && s3.download.loaded === s3.download.total, 'download progress reported');
    assert.equal(s3.download.label, `Downloading ${bundled.title}`, 'the line the panel shows above the bar');
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

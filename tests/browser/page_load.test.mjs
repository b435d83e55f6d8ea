// (1) The page loads, draws crisp on HiDPI, shows the default model's card;
// cs_state_json agrees with the bundled files; raw/processed toggle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  openPage, waitIdle, waitForState, screenshot, pixelShare, assertNoErrors, defaultBundled, demoFiles,
  safetensorsParamCount, tokenizerSize,
} from './harness.mjs';

test('page loads and shows the default model card', { timeout: 120000 }, async () => {
  const bundled = defaultBundled();
  const demo = demoFiles();
  const app = await openPage({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 2 });
  try {
    const { page, errors } = app;
    const s = await waitIdle(page);
    assert.equal(s.error, '');
    assert.ok(s.model, 'a model is loaded');
    assert.equal(s.model.id, bundled.id);
    assert.equal(s.model.title, bundled.title);
    assert.equal(s.model.origin, 'bundled');
    for (const key of ['n_layers', 'd_model', 'n_heads', 'd_head', 'n_ctx', 'd_vocab']) {
      assert.equal(s.model.config[key], demo.config[key], `config ${key}`);
    }
    const weights = readFileSync(join(demo.dir, 'model.safetensors'));
    assert.equal(s.model.config.n_params, safetensorsParamCount(weights), 'parameter count = sum of tensor sizes');
    assert.equal(s.model.weights, 'processed');
    assert.match(s.model.processing, /^processed: /);
    assert.ok(s.model.tokenizer && s.model.tokenizer.kind.length > 0, 'tokenizer kind');
    assert.equal(s.model.tokenizer.size, tokenizerSize(demo.tokenizerJson));
    assert.deepEqual(s.bundled.map((b) => b.id)[0], bundled.id);

    // The boot screen is gone; the canvas fills the window at devicePixelRatio 2.
    assert.equal(await page.locator('#boot').isHidden(), true);
    const dims = await page.evaluate(() => {
      const c = document.getElementById('canvas');
      return { w: c.width, h: c.height, cssW: c.clientWidth, cssH: c.clientHeight, dpr: devicePixelRatio };
    });
    assert.equal(dims.dpr, 2);
    assert.equal(dims.cssW, 1280);
    assert.equal(dims.cssH, 800);
    assert.equal(dims.w, 2560, 'canvas backing store is devicePixelRatio x CSS size');
    assert.equal(dims.h, 1600);

    // Something is drawn: the heatmap's diverging colours (reds or blues) are on screen. Checked on
    // the demo model whichever model is the default: its byte-bigram logits are large, so its
    // heatmap is saturated (a trained model's may be pale), then back to the default.
    await page.evaluate(() => window.circuitscopeShell.loadBundled('demo'));
    await waitForState(page, (x) => x.model && x.model.id === 'demo' && !x.loading.active, { what: 'demo model' });
    await waitIdle(page);
    const shot = await screenshot(page, 'page-load.png');
    const coloured = await pixelShare(page, shot, [0.3, 0.5, 1, 1],
      'Math.abs(r - b) > 80 && Math.max(r, b) > 120');
    assert.ok(coloured > 0.01, `heatmap colours visible (share ${coloured})`);
    await page.evaluate((id) => window.circuitscopeShell.loadBundled(id), bundled.id);
    await waitForState(page, (x) => x.model && x.model.id === bundled.id && !x.loading.active,
      { what: 'the default model again' });
    await waitIdle(page);

    // Resizing the window resizes the canvas.
    await page.setViewportSize({ width: 1000, height: 700 });
    await page.waitForFunction(() => document.getElementById('canvas').width === 2000, null, { timeout: 10000 });
    assert.equal(await page.evaluate(() => document.getElementById('canvas').height), 1400);

    // Raw weights (as stored) and back.
    await page.evaluate(() => Module.ccall('cs_set_raw', null, ['number'], [1]));
    let r = await waitForState(page, (x) => x.model && x.model.weights === 'raw' && !x.loading.active,
      { what: 'raw weights' });
    assert.equal(r.model.processing, 'raw (as stored)');
    assert.equal(r.show_raw, true);
    assert.equal(r.model.config.n_params, s.model.config.n_params);
    await page.evaluate(() => Module.ccall('cs_set_raw', null, ['number'], [0]));
    r = await waitForState(page, (x) => x.model && x.model.weights === 'processed', { what: 'processed again' });
    assert.equal(r.model.processing, s.model.processing);

    // Selecting a token drives the bigram view.
    await page.evaluate(() => Module.ccall('cs_select_token', null, ['number'], [5]));
    assert.equal((await waitForState(page, (x) => x.bigram.source === 5)).bigram.source, 5);
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.evaluate((id) => Module.ccall('cs_select_token', null, ['number'], [id]), s.bigram.source);
    await waitIdle(page);
    await screenshot(page, 'page-load.png');
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
  }
});

test('without WebGL2 the page says so', { timeout: 60000 }, async () => {
  const app = await openPage({ extraArgs: ['--disable-3d-apis'] });
  try {
    const { page, errors } = app;
    await page.waitForFunction(() => document.getElementById('boot').classList.contains('fatal'), null,
      { timeout: 20000 });
    const text = await page.locator('#boot-status').textContent();
    assert.match(text, /needs WebGL2/);
    assert.equal(await page.locator('#boot').isVisible(), true);
    await screenshot(page, 'no-webgl2.png');
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
  }
});

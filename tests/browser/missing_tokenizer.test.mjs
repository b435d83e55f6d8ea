// A model without its tokenizer.json (issue: hardening).
// - The user's folder with config.json and model.safetensors but no
//   tokenizer.json loads: tokens are shown as ids (#12), the model card says in
//   one warning line that tokenizer.json was missing, and every view works; the
//   Prompt and Term importance views read token ids (their text becomes a run
//   of ids the model can read, and the user's text comes back with the next
//   model that has a tokenizer).
// - A bundled model lists its tokenizer.json in assets/models/index.json, so a
//   tokenizer.json that fails to download (HTTP 404) is a download fault like
//   its weights': the model is not shown without it (its tokens would read as
//   ids), the banner names the file in one line, the model shown before stays,
//   and the same model loads once the file is there again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  openPage, serveStatic, distDir, waitIdle, waitForState, getState, openTab, screenshot, assertNoErrors,
  defaultBundled, testModelFiles, writeTempFolder, bundledIndex,
  loadBundledFailing,
} from './harness.mjs';

const NO_TOKENIZER = /^no tokenizer\.json came with the model: tokens are shown as ids/;

test('a model folder without tokenizer.json loads with token ids', { timeout: 180000 }, async () => {
  const { files } = testModelFiles({ nLayers: 2, nCtx: 128, seed: 31, name: 'no-tokenizer' });
  delete files['tokenizer.json'];
  const dir = writeTempFolder(files);
  const app = await openPage();
  try {
    const { page, errors } = app;
    const before = await waitIdle(page);
    assert.equal(before.model.id, defaultBundled().id);
    assert.match(before.views.prompt.selection.text, /OrderedDict/, 'the default prompt is text');

    await page.setInputFiles('#file-input', Object.keys(files).map((f) => join(dir, f)));
    let s = await waitForState(page, (x) => x.model && x.model.title === 'no-tokenizer' && !x.loading.active,
      { what: 'the model without a tokenizer' });
    assert.equal(s.error, '');
    assert.equal(s.model.tokenizer, null);
    const notes = s.model.warnings.filter((w) => NO_TOKENIZER.test(w));
    assert.equal(notes.length, 1, `one note on the card: ${JSON.stringify(s.model.warnings)}`);
    assert.ok(!notes[0].includes('\n'), 'one line');

    // Every view works on it: no banner, results held.
    for (const id of Object.keys(s.views)) {
      await openTab(page, id);
      s = await waitIdle(page);
      assert.equal(s.error, '', `view ${id}: ${s.error}`);
    }
    const top = s.views.bigram.results;
    assert.ok(JSON.stringify(top).includes('"#'), 'tokens are shown as #id');
    const prompt = s.views.prompt;
    assert.match(prompt.selection.text, /^\d+( \d+)+$/, 'the prompt is token ids');
    const ids = prompt.selection.text.split(' ').map(Number);
    assert.deepEqual(prompt.results.run.value.ids, ids, 'the prompt ran on those ids');
    assert.match(s.views.terms.selection.text, /^\d+( \d+)+$/, 'the term importance sample is token ids');
    await openTab(page, 'prompt');
    await waitIdle(page);
    await screenshot(page, 'missing-tokenizer-prompt.png');

    // Ids the user types run; a word gets a one-line reason.
    await page.evaluate(() => Module.ccall('cs_set_selections', 'string', ['string'],
      [JSON.stringify({ prompt: { text: '5 9 5 9 5' } })]));
    s = await waitIdle(page);
    assert.equal(s.error, '');
    assert.deepEqual(s.views.prompt.results.run.value.ids, [5, 9, 5, 9, 5]);
    await page.evaluate(() => Module.ccall('cs_set_selections', 'string', ['string'],
      [JSON.stringify({ prompt: { text: '5 cat' } })]));
    s = await waitForState(page, (x) => x.error !== '', { what: 'the reason for a word' });
    assert.match(s.error, /no tokenizer.*type token ids below 2048 separated by spaces.*"cat" is not one/);
    assert.ok(!s.error.includes('\n'), 'one line');
    // The banner says what failed: the prompt, not a load (the model is the one just loaded).
    assert.deepEqual(s.banner, { heading: 'Could not compute:', message: s.error, note: '' });
    await page.evaluate(() => Module.ccall('cs_report_error', null, ['string'], ['']));

    // A model with a tokenizer gets text again.
    await page.evaluate((id) => window.circuitscopeShell.loadBundled(id), defaultBundled().id);
    s = await waitForState(page, (x) => x.model && x.model.id === defaultBundled().id && !x.loading.active,
      { what: 'the bundled model again' });
    assert.ok(!s.model.warnings.some((w) => NO_TOKENIZER.test(w)));
    assert.equal(s.views.terms.selection.text, before.views.terms.selection.text, 'the sample text comes back');
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a bundled model whose tokenizer.json is missing keeps the model shown', { timeout: 120000 }, async () => {
  const other = bundledIndex().find((m) => m.id !== defaultBundled().id);
  const tokenizer = `/assets/models/${other.id}/tokenizer.json`;
  let missing = true;
  const server = await serveStatic(distDir, {
    fault: (path, res) => {
      if (path !== tokenizer || !missing) return false;
      res.writeHead(404).end('not found');
      return true;
    },
  });
  const app = await openPage({ server });
  try {
    const { page } = app;
    const before = await waitIdle(page);
    const s = await loadBundledFailing(page, other.id, { what: 'the error for the missing tokenizer' });
    assert.equal(s.error, `assets/models/${other.id}/tokenizer.json: HTTP 404 Not Found`);
    assert.equal(s.model.id, before.model.id, 'the model shown before stays');
    assert.deepEqual(s.banner, { heading: 'Could not load:', message: s.error,
      note: `Still showing the previous model: ${before.model.title}` });
    assert.deepEqual(s.model.config, before.model.config);
    await waitIdle(page);
    await screenshot(page, 'missing-tokenizer-bundled.png');

    missing = false;
    await page.evaluate(() => Module.ccall('cs_report_error', null, ['string'], ['']));
    await page.evaluate((id) => window.circuitscopeShell.loadBundled(id), other.id);
    const after = await waitForState(page, (x) => x.model && x.model.id === other.id && !x.loading.active,
      { what: `${other.id} shown` });
    assert.equal(after.error, '');
    assert.ok(after.model.tokenizer, 'with its tokenizer');
    // Console errors are expected here (the 404); the page itself reported none.
    const pageErrors = app.errors.filter((e) => !/404|tokenizer\.json/.test(e));
    assertNoErrors(assert, pageErrors);
  } finally {
    await app.close();
  }
});

// (5) Bad files show the error banner (in cs_state_json and on screen) and the
// previous model stays loaded; a good file afterwards clears the banner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  openPage, waitIdle, waitForState, screenshot, pixelShare, assertNoErrors, defaultBundled, testModelFiles,
  writeTempFolder,
} from './harness.mjs';

// The banner's red (0.55, 0.08, 0.10) in the top strip of a screenshot.
const BANNER_RED = 'r > 110 && r < 170 && g < 45 && b < 50';

test('a bad file shows the error banner and keeps the previous model', { timeout: 120000 }, async (t) => {
  const good = testModelFiles({ seed: 9, name: 'good-after-errors' });
  const st = good.files['model.safetensors'];
  const cases = {
    truncated: { ...good.files, 'model.safetensors': st.subarray(0, Math.floor(st.length / 2)) },
    contradicting: { ...good.files, 'config.json': JSON.stringify({ ...good.config, d_model: 32 }) },
    'no weights': { 'notes.txt': 'not a model', 'config.json': good.files['config.json'] },
  };
  const expect = { truncated: /safetensors|offset|bytes/i, contradicting: /d_model/, 'no weights': /\.safetensors/ };
  const app = await openPage();
  const dirs = [];
  try {
    const { page, errors } = app;
    const before = await waitIdle(page);
    assert.equal(before.model.id, defaultBundled().id);
    assert.equal(before.error, '');
    assert.ok((await pixelShare(page, await screenshot(page, 'before-bad-file.png'), [0, 0, 1, 0.08], BANNER_RED)) < 0.01,
      'no banner before');

    for (const [name, files] of Object.entries(cases)) {
      await t.test(name, async () => {
        const dir = writeTempFolder(files);
        dirs.push(dir);
        await page.evaluate(() => Module.ccall('cs_report_error', null, ['string'], ['']));
        await page.setInputFiles('#file-input', Object.keys(files).map((f) => join(dir, f)));
        const s = await waitForState(page, (x) => x.error !== '' && !x.loading.active, { what: `error for ${name}` });
        assert.match(s.error, expect[name]);
        assert.ok(!s.error.includes('\n'), 'one line');
        assert.equal(s.model.id, before.model.id, 'the previous model stays');
        assert.deepEqual(s.model.config, before.model.config);
        await waitIdle(page);
        const shot = await screenshot(page, `bad-file-${name.replace(/ /g, '-')}.png`);
        const red = await pixelShare(page, shot, [0, 0, 1, 0.08], BANNER_RED);
        assert.ok(red > 0.3, `red banner visible at the top (share ${red})`);
      });
    }

    await t.test('too large for memory', async () => {
      // 4.25e9 bytes cannot fit in wasm's 4 GB next to what is already there:
      // the allocation fails cleanly (the shell calls this with a File's size).
      const ptr = await page.evaluate(() =>
        Module.ccall('cs_stage_file', 'number', ['string', 'number'], ['huge.safetensors', 4.25e9]));
      assert.equal(ptr, 0);
      const s = await waitForState(page, (x) => x.error !== '', { what: 'too-large error' });
      assert.equal(s.error, "file huge.safetensors (4250.0 MB) is too large for the browser's memory");
      assert.equal(s.model.id, before.model.id);
      await page.evaluate(() => Module.ccall('cs_discard_staged', null, [], []));
    });

    // The page still works: a good model loads and clears the banner.
    const dir = writeTempFolder(good.files);
    dirs.push(dir);
    await page.setInputFiles('#file-input', Object.keys(good.files).map((f) => join(dir, f)));
    const s = await waitForState(page, (x) => x.model && x.model.title === 'good-after-errors' && !x.loading.active,
      { what: 'good model after errors' });
    assert.equal(s.error, '');
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
});

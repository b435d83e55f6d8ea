// Memory running out while a model loads (issue: hardening). A test-only call
// (cs_test_fill_memory) takes all the memory the page can still get (up to
// its 4 GB) but a little more than the chosen file, as a browser with less
// memory would: the file is read in, and turning its tensors into the model's
// floats fails (std::bad_alloc). The banner says so in one line naming the
// file, the model shown before stays, and once the memory is given back the
// views work and the same files load. In both of the page's modes
// (single-threaded, and cross-origin isolated with worker threads).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  openPage, waitIdle, waitForState, waitFrames, getState, openTab, screenshot, assertNoErrors, defaultBundled,
  makeModel, safetensorsBytes, writeTempFolder,
} from './harness.mjs';

for (const isolated of [false, true]) {
const mode = isolated ? 'worker threads' : 'one thread';
const shot = (name) => `${name}${isolated ? '-mt' : ''}.png`;

test(`running out of memory during a load keeps the model shown (${mode})`, { timeout: 180000 }, async () => {
  // 30000 x 128 embedding and unembedding: 31 MB of F32.
  const { tensors, config } = makeModel({ dVocab: 30000, dModel: 128, nHeads: 2, dHead: 16, nCtx: 16, norm: 'LN',
    seed: 3, name: 'too-big-for-what-is-left' });
  const weights = safetensorsBytes(tensors);
  const dir = writeTempFolder({ 'model.safetensors': weights, 'config.json': JSON.stringify(config) });
  const paths = ['model.safetensors', 'config.json'].map((f) => join(dir, f));
  const app = await openPage({ isolated });
  try {
    const { page, errors } = app;
    const before = await waitIdle(page);
    assert.equal(before.model.id, defaultBundled().id);
    assert.equal(before.threads > 1, isolated, mode);

    // Room for the file and a few MB, not for the model made from it.
    const taken = await page.evaluate((leave) =>
      Module.ccall('cs_test_fill_memory', 'number', ['number'], [leave]), weights.length + (6 << 20));
    assert.ok(taken > 1e9, `the memory was taken (${taken} bytes)`);
    await page.setInputFiles('#file-input', paths);
    const s = await waitForState(page, (x) => x.error !== '' && !x.loading.active,
      { what: 'the out-of-memory message' });
    assert.equal(s.error, 'loading model.safetensors: ran out of memory');
    assert.equal(s.model.id, before.model.id, 'the model shown before stays');
    assert.deepEqual(s.banner, { heading: 'Could not load:', message: s.error,
      note: `Still showing the previous model: ${before.model.title}` });
    assert.deepEqual(s.model.config, before.model.config);
    await waitIdle(page);
    await screenshot(page, shot('out-of-memory'));

    // A large answer asked for with no memory left at all (in one task: no frame runs
    // meanwhile): a one-line reason in its place, not an exception thrown into JavaScript.
    const full = await page.evaluate(() => {
      const size = Module.ccall('cs_state_json', 'string', [], []).length;
      Module.ccall('cs_test_fill_memory', 'number', ['number'], [0]);
      let answer;
      try { answer = Module.ccall('cs_state_json', 'string', [], []); } catch (e) { answer = `threw: ${e}`; }
      Module.ccall('cs_test_fill_memory', 'number', ['number'], [-1]);
      return { size, answer };
    });
    assert.ok(full.size > 1024, `the state is larger than the pieces of under 64 bytes left (${full.size} bytes)`);
    assert.deepEqual(JSON.parse(full.answer), { call_error: 'cs_state_json: ran out of memory' }, full.answer.slice(0, 200));

    // Memory given back: the page keeps working.
    await page.evaluate(() => Module.ccall('cs_test_fill_memory', 'number', ['number'], [-1]));
    await page.evaluate(() => Module.ccall('cs_report_error', null, ['string'], ['']));
    await openTab(page, 'composition');
    assert.equal((await waitIdle(page)).error, '');
    await page.setInputFiles('#file-input', paths);
    const after = await waitForState(page, (x) => x.model && x.model.title === config.model_name && !x.loading.active,
      { what: 'the same files, with memory' });
    assert.equal(after.error, '');
    assert.equal(after.model.config.d_vocab, 30000);
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

// Memory running out while a frame is drawn: in a view, inside its tab, child
// window and ID scope (a test-only call makes the next view's drawing throw
// std::bad_alloc), and anywhere in the frame while every block of 16 kB or
// more is taken for a while and a new tab opens (as in a browser that refuses
// to grow the page's memory: ImGui's own allocations then throw too, instead
// of returning a null pointer that ImGui would write through). The frame is
// closed, the banner says so, and the page goes on drawing with its model.
test(`running out of memory while drawing keeps the page working (${mode})`, { timeout: 180000 }, async () => {
  const app = await openPage({ isolated });
  try {
    const { page, errors } = app;
    const before = await waitIdle(page);
    await openTab(page, 'composition');
    await waitIdle(page);

    await page.evaluate(() => Module.ccall('cs_test_fail_drawing', null, [], []));
    const s = await waitForState(page, (x) => x.error !== '', { what: 'the drawing message' });
    assert.equal(s.error, 'drawing the page: ran out of memory');
    assert.deepEqual(s.banner, { heading: 'Could not compute:', message: s.error, note: '' });
    assert.equal(s.model.id, before.model.id);
    await waitFrames(page, 5);
    await screenshot(page, shot('out-of-memory-drawing'));

    // Blocks of 16 kB and more taken for a second while the mouse moves and the Heads tab opens.
    await page.evaluate(() => Module.ccall('cs_report_error', null, ['string'], ['']));
    const frames = (await getState(page)).frames;
    const taken = await page.evaluate(() => Module.ccall('cs_test_fill_memory', 'number', ['number'], [1]));
    assert.ok(taken > 1e9, `the memory was taken (${taken} bytes)`);
    for (let i = 0; i < 10; ++i) {
      await page.mouse.move(200 + 40 * i, 300 + 10 * i);
      await page.waitForTimeout(50);
    }
    await page.evaluate(() => Module.ccall('cs_open_view', null, ['string'], ['heads']));
    await page.waitForTimeout(500);
    await page.evaluate(() => Module.ccall('cs_test_fill_memory', 'number', ['number'], [-1]));
    const after = await waitFrames(page, 5);
    assert.ok(after.frames > frames, `frames go on (${frames} -> ${after.frames})`);
    assert.equal(after.error, 'drawing the page: ran out of memory');
    await screenshot(page, shot('out-of-memory-drawing-full'));
    await page.evaluate(() => Module.ccall('cs_report_error', null, ['string'], ['']));
    // The Heads tab's work, which failed while memory was short, starts again
    // when the tab is shown again: its table fills in.
    await openTab(page, 'composition');
    await waitFrames(page, 2);
    await openTab(page, 'heads');
    const idle = await waitIdle(page);
    assert.equal(idle.error, '');
    assert.equal(idle.model.id, before.model.id, 'the model shown before stays');
    assert.equal(idle.open_view, 'heads');
    const summary = idle.views.heads.results.summary;
    assert.equal(summary.freshness, 'current');
    assert.equal(summary.value.length, before.model.config.n_layers * before.model.config.n_heads);
    await screenshot(page, shot('out-of-memory-drawing-after'));
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
  }
});
}

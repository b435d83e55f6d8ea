// Fifty model loads and view switches in a row (issue: hardening): the wasm
// heap's bytes in use (malloc's, from the page's state) come back to within
// 10% of where they were after a warm-up round, so a load leaves nothing
// behind. Two small models from files alternate, and each load opens the next
// of five views; the two measures are taken at the same point of the cycle
// (the same model and view).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { openPage, waitIdle, waitForState, assertNoErrors, testModelFiles, writeTempFolder } from './harness.mjs';

const LOADS = 50;
const VIEWS = ['bigram', 'heads', 'head', 'skip_trigrams', 'prompt'];
const CYCLE = 10;  // loads after which the model and the view repeat (2 models, 5 views)

test('fifty loads and view switches do not leak wasm memory', { timeout: 240000 }, async () => {
  const models = ['leak-a', 'leak-b'].map((name, i) => {
    const { files } = testModelFiles({ nLayers: 1, dModel: 32, nHeads: 4, dHead: 8, nCtx: 64, seed: 50 + i, name });
    const dir = writeTempFolder(files);
    return { name, dir, paths: Object.keys(files).map((f) => join(dir, f)) };
  });
  const app = await openPage({ viewport: { width: 960, height: 640 } });  // quicker frames
  try {
    const { page, errors } = app;
    await waitIdle(page);
    let start = null;
    const inUse = [];
    for (let i = 0; i < LOADS; i++) {
      const m = models[i % 2];
      const view = VIEWS[i % VIEWS.length];
      await page.setInputFiles('#file-input', m.paths);
      await page.evaluate((id) => Module.ccall('cs_open_view', null, ['string'], [id]), view);
      // Loaded, the view open and its results computed (nothing running).
      const s = await waitForState(page, (x) => x.model && x.model.title === m.name && x.open_view === view &&
        !x.loading.active && !x.jobs.length, { what: `load ${i}` });
      assert.equal(s.error, '', `load ${i}`);
      inUse.push(s.memory.in_use);
      if (i === CYCLE - 1) start = s;  // after the warm-up round
    }
    const end = inUse[LOADS - 1];
    assert.equal((LOADS - 1) % CYCLE, CYCLE - 1, 'the end is at the point of the cycle the start was');
    const mb = (n) => (n / 1e6).toFixed(2);
    console.log(`wasm bytes in use (MB) after each load: ${inUse.map(mb).join(' ')}`);
    assert.ok(Math.abs(end - start.memory.in_use) <= 0.1 * start.memory.in_use,
      `bytes in use: ${mb(start.memory.in_use)} MB after the warm-up, ${mb(end)} MB after ${LOADS} loads`);
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
    for (const m of models) rmSync(m.dir, { recursive: true, force: true });
  }
});

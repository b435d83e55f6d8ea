// Network faults while a bundled model downloads (issue: hardening): a 404, a
// connection that breaks off halfway, and one that stalls. Each gives a
// one-line reason naming the file, the model shown before stays, and the page
// keeps working: the same model loads once the fault is gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import {
  openPage, serveStatic, distDir, waitIdle, waitForState, defaultBundled, bundledIndex, screenshot,
  loadBundledFailing,
} from './harness.mjs';

test('a bundled model download that fails, breaks off or stalls keeps the model shown', { timeout: 240000 }, async (t) => {
  const other = bundledIndex().find((m) => m.id !== defaultBundled().id);
  assert.ok(other, 'a second bundled model to download');
  const weights = `/assets/models/${other.id}/model.safetensors`;
  const held = [];  // stalled responses, ended when the test is done
  let mode = null;
  const server = await serveStatic(distDir, {
    fault: (path, res, file) => {
      if (path !== weights || !mode) return false;
      if (mode === '404') {
        res.writeHead(404).end('not found');
        return true;
      }
      const bytes = readFileSync(file);
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': statSync(file).size,
        'Cache-Control': 'no-store' });
      res.write(bytes.subarray(0, bytes.length >> 1));
      if (mode === 'halfway') setTimeout(() => res.destroy(), 50);
      else held.push(res);  // 'stall': headers and half the bytes, then nothing
      return true;
    },
  });
  const app = await openPage({ server });
  try {
    const { page } = app;
    const before = await waitIdle(page);
    assert.equal(before.model.id, defaultBundled().id);
    await page.evaluate(() => { window.circuitscopeDownloadStallMs = 2000; });
    const expect = {
      '404': new RegExp(`model\\.safetensors: HTTP 404`),
      halfway: /model\.safetensors: the download broke off/,
      stall: /model\.safetensors: the download stalled \(no data for 2 s\)/,
    };
    for (const m of ['404', 'halfway', 'stall']) {
      await t.test(m, async () => {
        mode = m;
        await page.evaluate(() => Module.ccall('cs_report_error', null, ['string'], ['']));
        const t0 = Date.now();
        const s = await loadBundledFailing(page, other.id, { what: `the error for ${m}` });
        assert.match(s.error, expect[m]);
        assert.ok(!s.error.includes('\n'), 'one line');
        assert.equal(s.model.id, before.model.id, 'the model shown before stays');
        assert.deepEqual(s.model.config, before.model.config);
        if (m === 'stall') assert.ok(Date.now() - t0 < 30000, 'the stall is given up after the set time');
        await screenshot(page, `fault-${m}.png`);
      });
    }
    await t.test('the page keeps working: the model loads once the fault is gone', async () => {
      mode = null;
      await page.evaluate(() => Module.ccall('cs_report_error', null, ['string'], ['']));
      await page.evaluate((id) => window.circuitscopeShell.loadBundled(id), other.id);
      const s = await waitForState(page, (x) => x.model && x.model.id === other.id && !x.loading.active,
        { what: `${other.id} shown`, timeout: 60000 });
      assert.equal(s.error, '');
    });
  } finally {
    for (const r of held) r.destroy();
    await app.close();
  }
});

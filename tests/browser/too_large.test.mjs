// A file larger than the page holds (issue: hardening): the page refuses it
// from its size alone, before reading a byte of it or of the files chosen with
// it, with one line giving its name, its size and the limit (the one number
// the C++ side holds: Session::kMaxFileBytes, io/model_io.h kPageMaxBytes).
// The model shown before stays and the page keeps working. The file is real:
// a 5.2 GB sparse file (no disk blocks) given to the file input, which
// Chromium reads only when asked to (it is not copied).
// A bundled model whose server announces a file that large (Content-Length)
// is refused the same way before its download is read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  openPage, serveStatic, distDir, waitIdle, waitForState, openTab, screenshot, assertNoErrors, defaultBundled,
  bundledIndex, testModelFiles, writeTempFolder,
  loadBundledFailing,
} from './harness.mjs';

const HUGE = 5.2e9;
const MESSAGE = 'model.safetensors is 5.2 GB; the page holds files up to 2.1 GB';

test('a file larger than the page holds is refused from its size', { timeout: 120000 }, async () => {
  const { files } = testModelFiles({ seed: 41, name: 'after-the-huge-file' });
  const good = writeTempFolder(files);
  const huge = writeTempFolder({ 'config.json': files['config.json'] }, 'circuitscope-huge-');
  const hugePath = join(huge, 'model.safetensors');
  const fd = openSync(hugePath, 'w');
  ftruncateSync(fd, HUGE);  // sparse: no blocks on disk
  closeSync(fd);
  const app = await openPage();
  try {
    const { page, errors } = app;
    const before = await waitIdle(page);
    assert.equal(before.model.id, defaultBundled().id);

    const t0 = Date.now();
    await page.setInputFiles('#file-input', [join(huge, 'config.json'), hugePath]);
    const s = await waitForState(page, (x) => x.error !== '', { what: 'the too-large message' });
    assert.equal(s.error, MESSAGE);
    assert.ok(Date.now() - t0 < 10000, 'refused at once');
    assert.equal(s.model.id, before.model.id, 'the model shown before stays');
    assert.deepEqual(s.model.config, before.model.config);
    assert.equal(s.download.active, false);
    assert.equal(s.memory.heap_bytes, before.memory.heap_bytes, 'nothing was read into memory');
    assert.ok(statSync(hugePath).blocks < 64, 'the file stayed sparse');
    await waitIdle(page);
    await screenshot(page, 'too-large.png');

    // The page keeps working: a view switch, then a model that fits.
    await openTab(page, 'heads');
    await waitIdle(page);
    await page.evaluate(() => Module.ccall('cs_report_error', null, ['string'], ['']));
    await page.setInputFiles('#file-input', Object.keys(files).map((f) => join(good, f)));
    const after = await waitForState(page, (x) => x.model && x.model.title === 'after-the-huge-file' && !x.loading.active,
      { what: 'a model that fits' });
    assert.equal(after.error, '');
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
    rmSync(huge, { recursive: true, force: true });
    rmSync(good, { recursive: true, force: true });
  }
});

test('a bundled model announcing a file too large is refused before its download', { timeout: 120000 }, async () => {
  const other = bundledIndex().find((m) => m.id !== defaultBundled().id);
  const weights = `/assets/models/${other.id}/model.safetensors`;
  const held = [];
  const server = await serveStatic(distDir, {
    fault: (path, res) => {
      if (path !== weights) return false;
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(HUGE) });
      res.write(Buffer.alloc(1 << 16));
      held.push(res);  // the rest never comes: only the announced size may be looked at
      return true;
    },
  });
  const app = await openPage({ server });
  try {
    const { page } = app;
    const before = await waitIdle(page);
    const s = await loadBundledFailing(page, other.id, { what: 'the too-large message' });
    assert.equal(s.error, MESSAGE);
    assert.equal(s.model.id, before.model.id, 'the model shown before stays');
    assert.equal(s.memory.heap_bytes, before.memory.heap_bytes, 'nothing was read into memory');
  } finally {
    for (const r of held) r.destroy();
    await app.close();
  }
});

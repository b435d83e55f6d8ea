// The one-file page (dist/circuitscope-offline.html, scripts/make-offline.mjs):
// copied alone into an empty folder and opened through a file:// URL with the
// network cut (context offline, every http(s) request aborted, any request
// other than the file itself reported). It boots, opens a link's model and
// tab from its embedded files, and the Prompt view holds what the CLI
// computes on that bundled model; another embedded model opens after it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  cliJson, nearCli, openPage, topIds, waitIdle, waitForState, screenshot, assertNoErrors, distDir, openTab,
} from './harness.mjs';


test('the offline file works from file:// with no network', { timeout: 300000 }, async (t) => {
  const src = join(distDir, 'circuitscope-offline.html');
  assert.ok(statSync(src).size > 1e6, 'the offline file embeds the wasm and the models');
  const dir = mkdtempSync(join(tmpdir(), 'cs-offline-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(src, join(dir, 'circuitscope.html'));  // alone, under another name
  const url = pathToFileURL(join(dir, 'circuitscope.html')).href;
  const app = await openPage({ server: { url, close: async () => {} }, query: '?model=attn-only-1l&view=prompt', offline: true });
  try {
    const { page, errors } = app;
    // The link's model, then its tab (applied once that model is shown).
    let s = await waitForState(page, (x) => x.model && x.model.id === 'attn-only-1l' && !x.loading.active &&
      x.open_view === 'prompt', { what: 'the embedded 1-layer model on the link\'s tab', timeout: 120000 });
    assert.equal(s.error, '');
    s = await waitForState(page, (x) => x.views.prompt.results.run.freshness === 'current', { what: 'prompt run' });
    const run = s.views.prompt.results.run.value;
    const T = run.ids.length;
    const ref = cliJson(['run', join(distDir, 'assets', 'models', 'attn-only-1l'), '--ids', run.ids.join(','), '--logits']);
    nearCli(run.loss, ref.loss, 'loss');
    assert.deepEqual(run.top.map((x) => x.id), topIds(ref.logits[T - 1], run.top.length), 'top predictions at the end');
    await waitIdle(page);
    await screenshot(page, 'offline-prompt.png');

    // Back to another state of the address: the 0-layer model, also embedded.
    await page.evaluate(() => {
      history.pushState(null, '', '?model=attn-only-0l');
      dispatchEvent(new PopStateEvent('popstate'));
    });
    s = await waitForState(page, (x) => x.model && x.model.id === 'attn-only-0l' && !x.loading.active,
      { what: 'the embedded 0-layer model', timeout: 120000 });
    assert.equal(s.error, '');
    await openTab(page, 'bigram');
    await waitIdle(page);
    await screenshot(page, 'offline-bigram.png');
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
  }
});

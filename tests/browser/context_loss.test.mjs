// A lost WebGL context (issue: hardening): the browser takes the page's
// context away (here WEBGL_lose_context, as after a GPU reset), then restores
// it. While it is lost the page says so and draws nothing; once it is restored
// it draws again with the same model, the same tab and the same selections,
// and a view switch works. In both of the page's modes (single-threaded, and
// cross-origin isolated with worker threads).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  openPage, waitIdle, waitForState, getState, openTab, screenshot, pixelShare, assertNoErrors, defaultBundled,
} from './harness.mjs';

// Text and widgets: light pixels on the dark page (its background is 0.09, 0.09, 0.11).
const LIGHT = 'r + g + b > 300';
// The whole canvas in one colour: nothing drawn.
const BLANK = 'r + g + b < 3 * 40';

for (const isolated of [false, true]) {
const mode = isolated ? 'worker threads' : 'one thread';
const shot = (name) => `${name}${isolated ? '-mt' : ''}.png`;

test(`a lost WebGL context is restored with the model kept (${mode})`, { timeout: 120000 }, async () => {
  const app = await openPage({ isolated });
  try {
    const { page, errors } = app;
    await waitIdle(page);
    await openTab(page, 'head');
    await page.evaluate(() => Module.ccall('cs_set_selections', 'string', ['string'],
      [JSON.stringify({ head: { layer: 1, head: 3 } })]));
    const before = await waitIdle(page);
    assert.equal(before.model.id, defaultBundled().id);
    assert.equal(before.views.head.selection.layer, 1);
    assert.equal(before.views.head.selection.head, 3);
    assert.deepEqual(before.gl, { lost: false, restores: 0 });
    assert.equal(before.threads > 1, isolated, mode);
    const lightBefore = await pixelShare(page, await screenshot(page, shot('context-before')), [0, 0, 1, 1], LIGHT);

    await page.evaluate(() => {
      window.loseContextForTest = document.getElementById('canvas').getContext('webgl2').getExtension('WEBGL_lose_context');
      window.loseContextForTest.loseContext();
    });
    const lost = await waitForState(page, (x) => x.gl.lost, { what: 'the context lost' });
    await page.waitForTimeout(300);
    assert.equal((await getState(page)).frames, lost.frames, 'no frames drawn while it is lost');
    assert.equal(await page.locator('#boot').isVisible(), true, 'the page says why nothing moves');
    assert.match(await page.locator('#boot-status').textContent(), /WebGL context was lost.*The model and your selections stay/);
    await screenshot(page, shot('context-lost'));

    await page.evaluate(() => window.loseContextForTest.restoreContext());
    await waitForState(page, (x) => !x.gl.lost && x.gl.restores === 1, { what: 'the context restored' });
    const after = await waitIdle(page);
    assert.ok(after.frames > lost.frames + 2, 'frames are drawn again');
    assert.equal(await page.locator('#boot').isHidden(), true, 'the note is gone');
    assert.equal(after.model.id, before.model.id, 'the same model');
    assert.deepEqual(after.model.config, before.model.config);
    assert.equal(after.open_view, 'head', 'the same tab');
    assert.deepEqual(after.views.head.selection, before.views.head.selection, 'the same selection');
    const restored = await screenshot(page, shot('context-restored'));
    const lightAfter = await pixelShare(page, restored, [0, 0, 1, 1], LIGHT);
    assert.ok(lightAfter > 0.5 * lightBefore, `text and widgets drawn again (${lightAfter} vs ${lightBefore} before)`);
    assert.ok(await pixelShare(page, restored, [0, 0, 1, 1], BLANK) < 0.99, 'not blank');

    // A view switch still works and draws.
    await openTab(page, 'bigram');
    const s = await waitIdle(page);
    assert.equal(s.open_view, 'bigram');
    assert.equal(s.error, '');
    await screenshot(page, shot('context-restored-bigram'));
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
  }
});
}

// (3) Files dropped on the page (a DragEvent carrying File objects) load a model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openPage, waitIdle, waitForState, assertNoErrors, defaultBundled, testModelFiles } from './harness.mjs';

test('dropping model files on the page loads them', { timeout: 120000 }, async () => {
  const { files } = testModelFiles({ dModel: 24, nHeads: 3, dHead: 8, norm: 'LN', seed: 23, name: 'dropped' });
  const app = await openPage();
  try {
    const { page, errors } = app;
    assert.equal((await waitIdle(page)).model.id, defaultBundled().id);
    const payload = Object.entries(files).map(([name, data]) => [name, Buffer.from(data).toString('base64')]);
    const overlayShown = await page.evaluate((payload) => {
      const dt = new DataTransfer();
      for (const [name, b64] of payload) {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        dt.items.add(new File([bytes], name));
      }
      const target = document.getElementById('canvas');
      const fire = (type) => target.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
      fire('dragenter');
      fire('dragover');
      const shown = !document.getElementById('drop-overlay').hidden;
      fire('drop');
      return shown;
    }, payload);
    assert.equal(overlayShown, true, 'the drop overlay shows while dragging');
    const s = await waitForState(page, (x) => x.model && x.model.id === 'file:model.safetensors' && !x.loading.active,
      { what: 'dropped model' });
    assert.equal(await page.locator('#drop-overlay').isHidden(), true);
    assert.equal(s.error, '');
    assert.equal(s.model.title, 'dropped');
    assert.equal(s.model.config.d_model, 24);
    assert.equal(s.model.config.n_heads, 3);
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
  }
});

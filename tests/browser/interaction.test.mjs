// Driving the page like a user: paste into a token field (the clipboard
// bridge), Enter to pick, copy back out, the raw-weights checkbox, a heatmap
// click, and "Open model files..." opening the browser's file chooser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  openPage, waitIdle, waitForState, waitFrames, pressKey, getState, assertNoErrors, demoFiles, testModelFiles, writeTempFolder, screenshot, center,
} from './harness.mjs';


test('keyboard, mouse, clipboard and file chooser', { timeout: 120000 }, async () => {
  const vocab = JSON.parse(demoFiles().tokenizerJson).model.vocab;
  const app = await openPage();
  const upload = testModelFiles({ seed: 17, name: 'picked-in-chooser' });
  const dir = writeTempFolder(upload.files);
  try {
    const { page, errors } = app;
    let s = await waitIdle(page);
    await page.evaluate(() => {
      window.copied = [];
      navigator.clipboard.writeText = async (t) => { window.copied.push(t); };
    });

    // Paste "q" into the current-token field, press Enter: "q" becomes the current token.
    assert.ok(s.rects.source_query, 'the current-token field is on screen');
    const field = center(s.rects.source_query);
    await page.mouse.click(field.x, field.y);
    await waitForState(page, (x) => x.text_input, { what: 'the field to take keyboard input' });
    await page.evaluate(() => {
      const dt = new DataTransfer();
      dt.setData('text/plain', 'q');
      document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
    });
    await waitFrames(page);
    await pressKey(page, 'Enter');
    s = await waitForState(page, (x) => x.bigram.source === vocab.q, { what: 'pasted token selected' });

    // Back into the field (Enter left it), select all and copy: the text goes
    // to navigator.clipboard.writeText.
    await page.mouse.click(field.x, field.y);
    await waitForState(page, (x) => x.text_input, { what: 'the field to take keyboard input again' });
    await pressKey(page, 'Control+a');
    await pressKey(page, 'Control+c');
    await page.waitForFunction(() => window.copied.length > 0, null, { timeout: 5000 });
    // A held key may repeat under load (ImGui polls keys per frame): every copy must be the field's text.
    const copied = await page.evaluate(() => window.copied);
    assert.ok(copied.length >= 1 && copied.every((t) => t === 'q'), `copied ${JSON.stringify(copied)}`);

    // The raw-weights checkbox.
    const box = center(s.rects.raw_checkbox);
    await page.mouse.click(box.x, box.y);
    await waitForState(page, (x) => x.show_raw && x.model.weights === 'raw', { what: 'raw after click' });
    await page.mouse.click(box.x, box.y);
    await waitForState(page, (x) => !x.show_raw && x.model.weights === 'processed', { what: 'processed after click' });

    // A heatmap cell (row 1, column 2) selects that pair: where it is drawn once
    // the reload's jobs are done (while jobs run the page draws 5 frames a second).
    s = await waitIdle(page);
    const g = s.rects.heatmap_grid;
    const n = s.bigram.block_tokens.length;
    assert.ok(g && n >= 3, 'heatmap with at least 3 tokens');
    const cell = (g[2] - g[0]) / n;
    await page.mouse.move(g[0] + cell * 2.5, g[1] + cell * 1.5);
    await waitFrames(page);
    await screenshot(page, 'heatmap-hover.png');
    await page.mouse.click(g[0] + cell * 2.5, g[1] + cell * 1.5);
    await waitForState(page, (x) => x.bigram.source === s.bigram.block_tokens[1] && x.bigram.next === s.bigram.block_tokens[2],
      { what: 'heatmap click' });

    // "Open model files..." opens the browser's file chooser (the hidden input).
    // The chooser opens from the frame after the click, under the click's
    // transient user activation; on a loaded machine that frame can come too
    // late, so a click that opened nothing is repeated (at most 3 times).
    let chooser = null;
    for (let attempt = 0; attempt < 3 && !chooser; ++attempt) {
      const button = center((await getState(page)).rects.open_files);
      await page.mouse.move(button.x, button.y);
      await waitFrames(page);
      [chooser] = await Promise.all([page.waitForEvent('filechooser', { timeout: 8000 }).catch(() => null),
        (async () => { await page.mouse.down(); await waitFrames(page); await page.mouse.up(); })()]);
    }
    assert.ok(chooser, 'clicking "Open model files..." opens the file chooser');
    assert.equal(chooser.isMultiple(), true);
    await chooser.setFiles(Object.keys(upload.files).map((f) => join(dir, f)));
    await waitForState(page, (x) => x.model && x.model.title === 'picked-in-chooser' && !x.loading.active,
      { what: 'model from the chooser' });
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

// The model panel's "Download analysis report (JSON)" (src/app/analysis_report.h):
// it shows its progress and can be cancelled (then nothing is saved), and the
// file it saves is what `circuitscope report MODEL --json` prints for the same
// model (wasm against native: equal to float rounding), named after the model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { assertDeepNear } from '../cli/helpers.mjs';
import {
  assertNoErrors, center, cliJson, distDir, getState, openPage, screenshot, waitForState, waitFrames, waitIdle,
} from './harness.mjs';

const MODEL_ID = 'attn-only-2l';

async function click(page, item) {
  const s = await waitForState(page, (x) => x.rects && x.rects[item], { what: item });
  const c = center(s.rects[item]);
  await page.mouse.click(c.x, c.y);
}

test('the analysis report: progress, cancel, and the CLI\'s JSON', { timeout: 300000 }, async () => {
  const app = await openPage();
  try {
    const { page, errors } = app;
    await waitForState(page, (x) => x.model && x.model.id === MODEL_ID && !x.loading.active, { what: MODEL_ID });
    await waitIdle(page);
    let downloads = 0;
    page.on('download', () => { downloads++; });

    // Started, then cancelled while it runs: its progress bar goes, nothing is saved.
    await click(page, 'report_button');
    let s = await waitForState(page, (x) => x.report.running && x.rects.cancel_report, { what: 'the report running' });
    assert.ok(s.report.progress >= 0 && s.report.progress < 1);
    await screenshot(page, 'report-progress.png');
    await click(page, 'cancel_report');
    s = await waitForState(page, (x) => !x.report.running && x.rects.report_button, { what: 'the report cancelled' });
    await waitFrames(page, 5);
    assert.equal(downloads, 0, 'a cancelled report saves nothing');
    assert.equal((await getState(page)).report.last, null);

    // Run to the end: the download.
    const [d] = await Promise.all([page.waitForEvent('download', { timeout: 240000 }), click(page, 'report_button')]);
    assert.equal(d.suggestedFilename(), `${MODEL_ID}_analysis_report.json`);
    const got = JSON.parse(readFileSync(await d.path(), 'utf8'));
    s = await waitForState(page, (x) => !x.report.running && x.report.last, { what: 'the report done' });
    assert.equal(s.report.last.name, d.suggestedFilename());

    // The CLI on the same files; the page ran the OV diagonal test (quick for this model), as the CLI does by default.
    const want = cliJson(['report', join(distDir, 'assets', 'models', MODEL_ID)]);
    assert.deepEqual(got.commands, want.commands);
    assert.deepEqual(Object.keys(got), Object.keys(want));
    assert.equal(got.info.weights_file, want.info.weights_file);
    assert.deepEqual(got.induction.sequences, want.induction.sequences);
    assertDeepNear(got, want, 1e-4, 'report');
    assert.ok(got.induction.prefix_matching.flat().some((v) => v >= 0.4), 'the model has induction heads');
    await screenshot(page, 'report-done.png');
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
  }
});

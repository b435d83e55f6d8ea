// A PyTorch checkpoint in the page (docs/model.md, PyTorch checkpoints): the
// user picks model_final.pth + config.json + tokenizer.json; the Prompt view
// then holds the tokens, losses and top predictions the CLI computes on the
// checkpoint's safetensors twin (tests/fixtures/pth, written from the same
// numbers by torch and by hand). A hostile pickle (os.system) and a
// truncated checkpoint are refused with one line and that model stays.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cliJson, nearCli, openPage, topIds, waitIdle, waitForState, screenshot, assertNoErrors, repoRoot, openTab,
} from './harness.mjs';

const FIX = join(repoRoot, 'tests', 'fixtures', 'pth');
const TWIN = join(FIX, 'tiny-2l-safetensors');

test('a .pth checkpoint gives its safetensors twin\'s logits; hostile ones are refused', { timeout: 300000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cs-pth-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(join(FIX, 'tiny-2l', 'model_final.pth'), join(dir, 'model_final.pth'));
  copyFileSync(join(FIX, 'tiny-2l', 'config.json'), join(dir, 'config.json'));
  // The bundled models' tokenizer (2048 tokens, the fixture's d_vocab).
  copyFileSync(join(repoRoot, 'assets', 'models', 'attn-only-1l', 'tokenizer.json'), join(dir, 'tokenizer.json'));
  const app = await openPage();
  try {
    const { page, errors } = app;
    await waitIdle(page);
    await page.setInputFiles('#file-input', ['model_final.pth', 'config.json', 'tokenizer.json'].map((f) => join(dir, f)));
    let s = await waitForState(page, (x) => x.model && x.model.id === 'file:model_final.pth' && !x.loading.active,
      { what: 'the checkpoint loaded' });
    assert.equal(s.error, '');
    assert.equal(s.model.config.n_layers, 2);
    await openTab(page, 'prompt');
    s = await waitForState(page, (x) => x.views.prompt.results.run.freshness === 'current', { what: 'prompt run' });
    const run = s.views.prompt.results.run.value;
    const T = run.ids.length;
    assert.ok(T >= 8, `a prompt of ${T} tokens`);
    const ref = cliJson(['run', TWIN, '--ids', run.ids.join(','), '--logits']);
    nearCli(run.loss, ref.loss, 'loss');
    run.losses.forEach((v, i) => nearCli(v, ref.losses[i], `loss at ${i}`));
    assert.deepEqual(run.top.map((x) => x.id), topIds(ref.logits[T - 1], run.top.length), 'top predictions at the end');
    await screenshot(page, 'pth-prompt.png');

    const shown = s.model;
    const bad = {
      'global_os_system.pth': /global 'posix\.system' at byte \d+ is not allowed/,
      'cut.pth': /truncated/,
    };
    const whole = readFileSync(join(FIX, 'tiny-2l', 'model_final.pth'));
    writeFileSync(join(dir, 'cut.pth'), whole.subarray(0, Math.floor(whole.length * 0.7)));
    copyFileSync(join(FIX, 'hostile', 'global_os_system.pth'), join(dir, 'global_os_system.pth'));
    for (const [file, re] of Object.entries(bad)) {
      await page.evaluate(() => Module.ccall('cs_report_error', null, ['string'], ['']));
      await page.setInputFiles('#file-input', [join(dir, file), join(dir, 'config.json')]);
      s = await waitForState(page, (x) => x.error !== '' && !x.loading.active, { what: `error for ${file}` });
      assert.match(s.error, re);
      assert.ok(s.error.includes(file), `the message names ${file}: ${s.error}`);
      assert.ok(!s.error.includes('\n'), 'one line');
      assert.equal(s.model.id, shown.id, 'the checkpoint stays');
      assert.deepEqual(s.model.config, shown.config);
    }
    await waitIdle(page);
    await screenshot(page, 'pth-hostile-refused.png');
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
  }
});

// The Prompt view holds what the CLI computes on the bundled 2-layer model
// (the page's default) and its default text: the tokens, losses and the
// chosen head's pattern (`run --patterns`), the top predictions at the
// position (`run --logits`), the logit split by path (`paths`); clicking a
// token with the mouse locks it (predictions and split follow), hovering
// another shows its attention without unlocking, clicking again unlocks;
// ticking the induction heads' boxes ablates them (`run --ablate`) and changes
// the prediction shown. Screenshots go to test-artifacts/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  cliJson, nearCli, openPage, topIds, waitIdle, waitForState, getState, screenshot, assertNoErrors, cliPath, distDir, center,
} from './harness.mjs';

const cli = cliJson;
const near = nearCli;

const MODEL_ID = 'attn-only-2l';
const modelDir = join(distDir, 'assets', 'models', MODEL_ID);
const argmax = (row) => row.reduce((best, v, i) => (v > row[best] ? i : best), 0);
const prompt = (s) => s.views.prompt.results;
const current = (x) => prompt(x).run.freshness === 'current' && prompt(x).split.freshness === 'current';

function sameSplit(view, ref, what) {
  assert.equal(view.position, ref.position, `${what}: position`);
  assert.equal(view.token.id, ref.token.id, `${what}: token`);
  near(view.logit, ref.logit, `${what}: logit`, 1e-4);
  assert.deepEqual(view.terms.map((t) => t.name), ref.terms.map((t) => t.name), `${what}: terms`);
  view.terms.forEach((t, i) => near(t.contribution, ref.terms[i].contribution, `${what}: ${t.name}`, 2e-4));
}

test('the Prompt view holds what run and paths compute; lock, unlock and ablation', { timeout: 600000 }, async () => {
  const app = await openPage();
  try {
    const { page, errors } = app;
    await waitIdle(page);
    await waitForState(page, (x) => x.model && x.model.id === MODEL_ID && !x.loading.active, { what: MODEL_ID });
    await page.evaluate(() => Module.ccall('cs_open_view', null, ['string'], ['prompt']));
    // The head badges change the layout of the head row when they arrive: wait for them before clicking.
    let s = await waitForState(page, (x) => x.open_view === 'prompt' && current(x) && x.badges.value,
      { what: 'prompt results and badges', timeout: 120000 });
    await waitIdle(page);
    const text = s.views.prompt.selection.text;
    const run = prompt(s).run.value;
    const T = run.ids.length;
    const ref = cli(['run', modelDir, '--text', text, '--patterns', '--logits']);
    assert.deepEqual(run.ids, ref.ids, 'tokens (BOS, then the text)');
    assert.deepEqual(run.tokens, ref.tokens);
    near(run.loss, ref.loss, 'loss');
    run.losses.forEach((v, t) => near(v, ref.losses[t], `loss at ${t}`));
    assert.deepEqual(run.head, { layer: 0, head: 0 });
    run.pattern.forEach((row, i) => row.forEach((v, j) => near(v, ref.patterns[0][0][i][j], `pattern 0.0 ${i},${j}`, 1e-3)));
    assert.equal(run.position, T - 1, 'nothing locked: the last position');
    assert.equal(run.locked, null);
    assert.deepEqual(run.top.map((t) => t.id), topIds(ref.logits[T - 1], 10), 'top predictions at the end');
    sameSplit(prompt(s).split.value, cli(['paths', modelDir, '--text', text]), 'split at the end');
    await screenshot(page, 'prompt-view.png');

    // Lock a token with the mouse: predictions and split at that position.
    const k = 20;
    s = await getState(page);
    assert.ok(s.rects[`prompt_token_${k}`], 'token chips are on screen');
    let c = center(s.rects[`prompt_token_${k}`]);
    await page.mouse.click(c.x, c.y);
    s = await waitForState(page, (x) => prompt(x).run.value.locked === k && current(x), { what: 'locked' });
    assert.equal(prompt(s).run.value.position, k);
    assert.deepEqual(prompt(s).run.value.top.map((t) => t.id), topIds(ref.logits[k], 10), `top predictions after token ${k}`);
    sameSplit(prompt(s).split.value, cli(['paths', modelDir, '--text', text, '--position', String(k)]), `split at ${k}`);
    // Choose head 1.6 (an induction head): the strip shows its attention from the focus.
    s = await getState(page);
    c = center(s.rects['prompt_head_1.6']);
    await page.mouse.click(c.x, c.y);
    s = await waitForState(page, (x) => prompt(x).run.value.head.layer === 1 && prompt(x).run.value.head.head === 6, { what: 'head 1.6' });
    prompt(s).run.value.focus_attention.forEach((v, j) => near(v, ref.patterns[1][6][k][j], `1.6 from ${k} to ${j}`, 1e-3));
    // Hover another token: the focus moves, the lock stays.
    c = center(s.rects[`prompt_token_${k + 3}`]);
    await page.mouse.move(c.x, c.y);
    s = await waitForState(page, (x) => prompt(x).run.value.focus === k + 3, { what: 'hover' });
    assert.equal(prompt(s).run.value.locked, k);
    prompt(s).run.value.focus_attention.forEach((v, j) => near(v, ref.patterns[1][6][k + 3][j], `1.6 from ${k + 3}`, 1e-3));
    // Click the locked token again: unlocked, back to the last position.
    c = center(s.rects[`prompt_token_${k}`]);
    await page.mouse.click(c.x, c.y);
    s = await waitForState(page, (x) => prompt(x).run.value.locked === null && current(x), { what: 'unlocked' });
    assert.equal(prompt(s).run.value.position, T - 1);
    assert.equal(prompt(s).split.value.position, T - 1);

    // Ablate the induction heads by ticking their boxes: the prediction shown changes.
    const heads = ['1.3', '1.4', '1.6', '1.7'];
    for (const h of heads) {
      const st = await getState(page);
      c = center(st.rects[`prompt_ablate_${h}`]);
      await page.mouse.click(c.x, c.y);
      await waitForState(page, (x) => x.views.prompt.selection.ablate.includes(h), { what: `tick ${h}` });
    }
    s = await waitForState(page, (x) => prompt(x).ablated.freshness === 'current' && prompt(x).ablated.value &&
      prompt(x).ablated.value.heads.length === heads.length, { what: 'ablated run', timeout: 120000 });
    const abl = cli(['run', modelDir, '--text', text, '--logits', '--ablate', heads.join(',')]);
    const a = prompt(s).ablated.value;
    near(a.loss, abl.loss, 'ablated loss');
    near(abl.loss_full, ref.loss, 'the CLI full loss');
    assert.deepEqual(a.top.map((t) => t.id), topIds(abl.logits[T - 1], 10), 'ablated top predictions');
    assert.notEqual(a.top[0].id, prompt(s).run.value.top[0].id, 'ablating the induction heads changes the prediction');
    assert.equal(prompt(s).run.value.top[0].id, argmax(ref.logits[T - 1]));
    assert.ok(a.loss > prompt(s).run.value.loss, 'and raises the loss on this text');
    await waitIdle(page);
    await screenshot(page, 'prompt-view-ablated.png');
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
  }
});

// The Term importance view holds `circuitscope terms` on its sample: the
// model's loss, the loss by path order and every term's loss without it.
test('the Term importance view holds what terms computes', { timeout: 600000 }, async () => {
  const app = await openPage();
  try {
    const { page, errors } = app;
    await waitIdle(page);
    await waitForState(page, (x) => x.model && x.model.id === MODEL_ID && !x.loading.active, { what: MODEL_ID });
    await page.evaluate(() => Module.ccall('cs_open_view', null, ['string'], ['terms']));
    const s = await waitForState(page, (x) => x.open_view === 'terms' && x.views.terms.results.importance.freshness === 'current',
      { what: 'term importance', timeout: 300000 });
    const v = s.views.terms.results.importance.value;
    const text = s.views.terms.selection.text;
    const ref = cli(['terms', modelDir, '--text', text]);
    assert.equal(v.windows, ref.windows);
    assert.ok(v.windows >= 2, 'the default sample is longer than n_ctx');
    assert.equal(v.tokens, ref.tokens);
    near(v.loss_full, ref.loss_full, 'loss');
    v.loss_by_order.forEach((x, k) => near(x, ref.loss_by_order[k], `loss up to order ${k}`));
    assert.deepEqual(v.terms.map((t) => t.name), ref.terms.map((t) => t.name));
    v.terms.forEach((t, i) => near(t.loss_without, ref.terms[i].loss_without, `without ${t.name}`));
    // The story on the bundled model: heads help, virtual heads give the model back.
    assert.ok(v.loss_by_order[1] < v.loss_by_order[0], 'single heads lower the loss');
    near(v.loss_by_order[2], v.loss_full, 'two layers, order 2: the model', 1e-4);
    assert.ok(s.rects.terms_orders && s.rects.terms_table, 'the bars and the table are drawn');
    await waitIdle(page);
    await screenshot(page, 'terms-view.png');
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
  }
});

// The two-layer views hold what the CLI computes, on the bundled 2-layer
// model (the page's default): the Composition view's Q-, K-, V-composition
// heatmaps and baseline (`composition --json`) and its induction scatter
// (`induction --json`'s k_term), with the previous-token head found by the
// detector and then chosen; the Induction view's experiment (`induction
// --json`: prefix matching, previous-token scores, losses) and the attention
// pattern it draws (`run --patterns` on the same sequence). The results compared are the ones the view holds
// and draws (cs_state_json's "views"). Screenshots go to test-artifacts/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  cliJson, nearCli, openPage, waitIdle, waitForState, screenshot, assertNoErrors, cliPath, distDir, openTab,
} from './harness.mjs';

const cli = cliJson;
const near = nearCli;

const MODEL_ID = 'attn-only-2l';
const modelDir = join(distDir, 'assets', 'models', MODEL_ID);

const composition = (s) => s.views.composition.results;

function sameScatter(view, ref, what) {
  assert.deepEqual(view.previous_head, ref.previous_head, `${what}: previous-token head`);
  assert.equal(view.heads.length, ref.heads.length, `${what}: heads`);
  view.heads.forEach((h, i) => {
    const c = ref.heads[i];
    assert.deepEqual([h.layer, h.head], [c.layer, c.head]);
    near(h.ov_positivity, c.ov_positivity, `${what} ${c.layer}.${c.head} OV positivity`);
    near(h.k_term_positivity, c.k_term_positivity, `${what} ${c.layer}.${c.head} K-term positivity`);
  });
}

test('the Composition view holds what composition and induction compute', { timeout: 600000 }, async () => {
  assert.ok(existsSync(cliPath), `CLI not found at ${cliPath}`);
  const app = await openPage();
  try {
    const { page, errors } = app;
    await waitIdle(page);
    const loaded = await waitForState(page, (x) => x.model && x.model.id === MODEL_ID && !x.loading.active,
      { what: MODEL_ID });
    assert.equal(loaded.model.weights, 'processed');
    await openTab(page, 'composition');
    const s = await waitForState(page, (x) => composition(x).scores.freshness === 'current' &&
      composition(x).scatter.freshness === 'current', { what: 'composition results', timeout: 180000 });
    // Scores: every pair, raw (the baseline shown beside them).
    const view = composition(s).scores.value;
    const ref = cli(['composition', modelDir]);
    near(view.baseline, ref.baseline, 'baseline', 1e-6);
    for (const k of ['Q', 'K', 'V'])
      view[k].forEach((a, l1) => a.forEach((b, h1) => b.forEach((c, l2) => c.forEach((v, h2) =>
        near(v, ref[k][l1][h1][l2][h2], `${k} ${l1}.${h1} -> ${l2}.${h2}`, 1e-5)))));
    // The scatter, with the head the detector finds (as the CLI with its defaults).
    const found = composition(s).scatter.value;
    assert.equal(found.found, true);
    sameScatter(found, cli(['induction', modelDir]).k_term, 'found');
    await waitIdle(page);
    await screenshot(page, 'two-layer-composition.png');

    // A chosen previous-token head: the scatter follows, the scores stay.
    const prev = `0.${(found.previous_head.head + 1) % loaded.model.config.n_heads}`;
    const r = await page.evaluate((json) => Module.ccall('cs_set_selections', 'string', ['string'], [json]),
      JSON.stringify({ composition: { prev } }));
    assert.equal(r, '', `cs_set_selections: ${r}`);
    const s2 = await waitForState(page, (x) => composition(x).scatter.freshness === 'current' &&
      composition(x).scatter.value.found === false, { what: 'chosen scatter', timeout: 120000 });
    sameScatter(composition(s2).scatter.value, cli(['induction', modelDir, '--prev', prev]).k_term, `--prev ${prev}`);
    assert.equal(composition(s2).scores.freshness, 'current');
    // A head that does not exist is refused with a message naming the field, the view unchanged.
    const bad = await page.evaluate(() => Module.ccall('cs_set_selections', 'string', ['string'], [JSON.stringify({ composition: { prev: '5.0' } })]));
    assert.match(bad, /prev/);
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
  }
});

test('the Induction view holds what induction computes', { timeout: 600000 }, async () => {
  const app = await openPage();
  try {
    const { page, errors } = app;
    await waitIdle(page);
    await waitForState(page, (x) => x.model && x.model.id === MODEL_ID && !x.loading.active, { what: MODEL_ID });
    await openTab(page, 'induction');
    const done = (x) => x.views.induction.results.experiment;
    const s = await waitForState(page, (x) => done(x).freshness === 'current', { what: 'experiment', timeout: 180000 });
    const v = done(s).value;
    const ref = cli(['induction', modelDir]);
    assert.deepEqual([v.tokens, v.repeats, v.examples, v.seed, v.bos], [ref.tokens, ref.repeats, ref.examples, ref.seed, ref.bos]);
    for (const k of ['prefix_matching', 'previous_token', 'copying'])
      v[k].forEach((row, l) => row.forEach((x, h) => near(x, ref[k][l][h], `${k} ${l}.${h}`)));
    // [I]'s copying score separates the induction heads (which copy) from the layer-0 heads.
    const pmTop = (l, h) => v.prefix_matching[l][h] >= 0.4;
    for (let l = 0; l < v.copying.length; l++) for (let h = 0; h < v.copying[l].length; h++)
      if (l === 0) assert.ok(v.copying[l][h] < -0.3, `layer-0 head ${l}.${h} does not copy: ${v.copying[l][h]}`);
      else if (pmTop(l, h)) assert.ok(v.copying[l][h] > -0.3, `induction head ${l}.${h} copies: ${v.copying[l][h]}`);
    near(v.loss_first, ref.loss_first, 'loss on the first copy');
    near(v.loss_repeat, ref.loss_repeat, 'loss on the repeats');
    assert.ok(v.loss_repeat < 0.5 * v.loss_first, 'the bundled 2-layer model predicts the repeats');
    // The head drawn: the best prefix-matching head; its pattern on the first sequence as `run` gives it.
    let best = { layer: 0, head: 0 };
    v.prefix_matching.forEach((row, l) => row.forEach((x, h) => { if (x > v.prefix_matching[best.layer][best.head]) best = { layer: l, head: h }; }));
    assert.deepEqual(v.head, best);
    const run = cli(['run', modelDir, '--ids', ref.sequences[0].join(','), '--patterns']);
    v.pattern.forEach((row, i) => row.forEach((x, j) => near(x, run.patterns[best.layer][best.head][i][j], `pattern ${i},${j}`, 1e-3)));
    await waitIdle(page);
    await screenshot(page, 'two-layer-induction.png');
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
  }
});


// The head badges on the bundled 2-layer model: the heads labelled induction
// heads are those the detector finds on repeated random tokens (`induction
// --json`'s prefix matching over the page's threshold), they are the later
// layer's heads with the largest K-composition with the previous-token head
// (`composition --json`), and the page draws their badges in the Heads grid
// and the Prompt view.
test('badges: the induction heads the detector finds are the top K-composition heads, shown as such', { timeout: 600000 }, async () => {
  const app = await openPage();
  try {
    const { page, errors } = app;
    await waitIdle(page);
    await waitForState(page, (x) => x.model && x.model.id === MODEL_ID && !x.loading.active, { what: MODEL_ID });
    const s = await waitForState(page, (x) => x.badges && x.badges.value, { what: 'badges', timeout: 120000 });
    const b = s.badges.value;
    const ref = cli(['induction', modelDir]);
    assert.deepEqual(b.experiment, { tokens: ref.tokens, repeats: ref.repeats, examples: ref.examples, seed: ref.seed });
    const named = (m, t) => m.flatMap((row, l) => row.map((v, h) => [v, `${l}.${h}`])).filter(([v]) => v >= t).map(([, n]) => n);
    b.prefix_matching.forEach((row, l) => row.forEach((v, h) => near(v, ref.prefix_matching[l][h], `prefix matching ${l}.${h}`)));
    const induction = named(ref.prefix_matching, b.thresholds.induction);
    assert.deepEqual(b.heads.induction, induction, 'induction badges = the detector over the threshold');
    assert.deepEqual(b.heads.previous_token, named(ref.previous_token, b.thresholds.previous_token));
    assert.ok(induction.length >= 2, `the bundled model has induction heads: ${induction}`);
    // The previous-token head (the detector's best) and K-composition with it.
    const prev = ref.k_term.previous_head;
    assert.ok(b.heads.previous_token.includes(`${prev.layer}.${prev.head}`));
    const comp = cli(['composition', modelDir]);
    const k = comp.K[prev.layer][prev.head][1].map((v, h) => [v, `1.${h}`]).sort((x, y) => y[0] - x[0]);
    assert.deepEqual(k.slice(0, induction.length).map(([, n]) => n).sort(), [...induction].sort(),
      `top K-composition with ${prev.layer}.${prev.head}: ${JSON.stringify(k)}`);
    // Drawn: in the Prompt view's head row and the Heads grid.
    for (const [tab, where] of [['prompt', 'prompt'], ['heads', 'heads']]) {
      await openTab(page, tab);
      const st = await waitForState(page, (x) => Object.keys(x.rects).some((r) => r.startsWith(`badge_${where}_`)), { what: `${tab} badges` });
      for (const h of induction) assert.ok(st.rects[`badge_${where}_induction_${h}`], `${tab}: induction badge on ${h}`);
      for (const h of b.heads.previous_token) assert.ok(st.rects[`badge_${where}_previous_token_${h}`], `${tab}: prev badge on ${h}`);
      const drawn = Object.keys(st.rects).filter((r) => r.startsWith(`badge_${where}_induction_`)).map((r) => r.split('_').pop());
      assert.deepEqual(drawn.sort(), [...induction].sort(), `${tab}: no other head labelled induction`);
    }
    await screenshot(page, 'badges-heads.png');
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
  }
});

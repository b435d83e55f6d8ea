// The Virtual heads view holds what the CLI computes, on the bundled 2-layer
// model (the page's default): its ranking of every virtual head by
// ||W_OV1 W_OV2|| (`virtual --json`), and for the virtual head it explores
// (the largest; then one clicked in its list; then one clicked in the
// Composition view's V heatmap) the OV rows and columns (`ov --head L2.H2
// --through L1.H1`) and eigenvalues (`virtual --json`). The results compared
// are the ones the view holds and draws (cs_state_json's "views").
// Screenshots go to test-artifacts/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  center, cliJson, nearCli, openPage, waitIdle, waitForState, screenshot, assertNoErrors, distDir, openTab,
} from './harness.mjs';

const MODEL_ID = 'attn-only-2l';
const modelDir = join(distDir, 'assets', 'models', MODEL_ID);
const results = (s) => s.views.virtual.results;
const headOf = (t) => { const [layer, head] = t.split('.').map(Number); return { layer, head }; };

// Everything the view shows for its virtual head is current.
const settled = (x) => {
  const r = results(x);
  return r.ranking.freshness === 'current' && r.head && r.ov_outs.freshness === 'current' &&
    r.ov_sources.freshness === 'current' && r.eigen.freshness === 'current';
};

// The explored virtual head's lists and eigenvalues against the CLI.
function sameAsCli(s, all, what) {
  const r = results(s);
  const sel = s.views.virtual.selection;
  const { earlier, later } = r.head;
  for (const [list, flag, id] of [[r.ov_outs, '--source', sel.ov_source], [r.ov_sources, '--out', sel.ov_out]]) {
    assert.deepEqual([list.key.earlier, list.key.later, list.key.id], [earlier, later, id], `${what}: ${flag} key`);
    const ref = cliJson(['ov', modelDir, '--head', later, '--through', earlier, flag, String(id), '--top', String(sel.k)]);
    assert.deepEqual(ref.through, headOf(earlier));
    assert.deepEqual(list.value.map((e) => e.id), ref.top.map((e) => e.id), `${what}: ${flag} ${id} ids`);
    list.value.forEach((e, i) => nearCli(e.value, ref.top[i].value, `${what}: ${flag} ${id} rank ${i}`, 1e-5));
    assert.deepEqual(list.value.map((e) => e.token), ref.top.map((e) => e.token), `${what}: tokens as the CLI shows them`);
  }
  const c = all.virtual_heads.find((v) => v.earlier.layer === headOf(earlier).layer && v.earlier.head === headOf(earlier).head &&
    v.later.layer === headOf(later).layer && v.later.head === headOf(later).head);
  assert.ok(c, `${what}: ${earlier} -> ${later} is listed by the CLI`);
  nearCli(r.eigen.value.ov_copying_score, c.ov_copying_score, `${what}: copying score`, 1e-4);
  assert.equal(r.eigen.value.ov.length, c.ov_eigenvalues.length);
  r.eigen.value.ov.forEach(([re, im], i) => {
    nearCli(Math.hypot(re, im), Math.hypot(...c.ov_eigenvalues[i]), `${what}: |eigenvalue ${i}|`, 1e-3);
  });
}

test('the Virtual heads view holds what virtual and ov --through compute', { timeout: 600000 }, async () => {
  const app = await openPage();
  try {
    const { page, errors } = app;
    await waitIdle(page);
    const loaded = await waitForState(page, (x) => x.model && x.model.id === MODEL_ID && !x.loading.active, { what: MODEL_ID });
    const H = loaded.model.config.n_heads;
    await openTab(page, 'virtual');
    let s = await waitForState(page, settled, { what: 'virtual heads', timeout: 180000 });
    // The ranking: every pair once, in the CLI's order, with its norm and V-composition.
    const all = cliJson(['virtual', modelDir, '--top', '100000']);
    const ranking = results(s).ranking.value;
    assert.equal(ranking.length, all.count);
    assert.equal(ranking.length, H * H);
    ranking.forEach((v, i) => {
      const c = all.virtual_heads[i];
      assert.deepEqual([headOf(v.earlier), headOf(v.later)], [c.earlier, c.later], `rank ${i}`);
      nearCli(v.norm, c.norm, `rank ${i} norm`, 1e-5);
      nearCli(v.v_composition, c.v_composition, `rank ${i} V-composition`, 1e-5);
    });
    // None chosen: the largest is explored.
    assert.equal(s.views.virtual.selection.earlier, null);
    assert.deepEqual(results(s).head, { earlier: ranking[0].earlier, later: ranking[0].later });
    sameAsCli(s, all, 'the largest');
    await waitIdle(page);
    await screenshot(page, 'virtual-heads.png');

    // A click on the third row explores it.
    const row = s.rects.virtual_rank_2;
    assert.ok(row, 'the ranking rows are on screen');
    let c = center(row);
    await page.mouse.click(c.x, c.y);
    s = await waitForState(page, (x) => settled(x) && x.views.virtual.selection.earlier === ranking[2].earlier &&
      results(x).head.later === ranking[2].later, { what: 'the clicked virtual head', timeout: 120000 });
    sameAsCli(s, all, 'the third');

    // A pair that is not (earlier, later) is refused with the field named; the view keeps its head.
    const bad = await page.evaluate(() => Module.ccall('cs_set_selections', 'string', ['string'],
      [JSON.stringify({ virtual: { earlier: '1.0', later: '0.3' } })]));
    assert.match(bad, /earlier.*must be in an earlier layer/);
    assert.equal((await waitForState(page, settled)).views.virtual.selection.earlier, ranking[2].earlier);

    // From the Composition view: a click on a V-composition cell opens that virtual head here.
    await openTab(page, 'composition');
    s = await waitForState(page, (x) => x.views.composition.results.scores.freshness === 'current' && x.rects.composition_V,
      { what: 'composition', timeout: 180000 });
    const g = s.rects.composition_V;  // rows: earlier heads (layer 0), columns: later heads (layer 1)
    const [h1, h2] = [5, 2];
    c = { x: g[0] + (h2 + 0.5) * (g[2] - g[0]) / H, y: g[1] + (h1 + 0.5) * (g[3] - g[1]) / H };
    await page.mouse.click(c.x, c.y);
    s = await waitForState(page, (x) => x.open_view === 'virtual' && settled(x) &&
      x.views.virtual.selection.earlier === `0.${h1}` && x.views.virtual.selection.later === `1.${h2}`,
    { what: 'the virtual head clicked in the V heatmap', timeout: 120000 });
    sameAsCli(s, all, `0.${h1} -> 1.${h2}`);
    await waitIdle(page);
    await screenshot(page, 'virtual-heads-from-composition.png');
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
  }
});

// The one-layer views hold what the CLI computes: the Heads grid (`heads`),
// a head's OV and QK lookups (`ov`, `qk`), the skip-trigram table
// (`skip-trigrams`) and the bigram top-k on screen (`bigrams`), on the bundled
// 1-layer model, with processed and raw weights. The results compared are the
// ones each view holds and draws (cs_state_json's "views"), not a second
// computation through the bridge. Screenshots of each tab go to test-artifacts/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  openPage, waitIdle, waitForState, getState, screenshot, assertNoErrors, cliPath, distDir, openTab,
} from './harness.mjs';

const MODEL_ID = 'attn-only-1l';
const modelDir = join(distDir, 'assets', 'models', MODEL_ID);

function cli(args, raw) {
  const full = [...args, '--json'];
  if (raw) full.push('--raw');
  return JSON.parse(execFileSync(cliPath, full, { encoding: 'utf8', maxBuffer: 64 << 20 }));
}

const close = (a, b, tol = 1e-4) => (a === null && b === null) ||
  (typeof a === 'number' && typeof b === 'number' && Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)));

function sameNumber(a, b, what, tol) { assert.ok(close(a, b, tol), `${what}: page ${a} vs CLI ${b}`); }

// Two ranked lists of {id, token, value}: same ids in the same order (ties may
// swap only between equal values), values within tolerance.
function sameRanked(page, cliList, what) {
  assert.equal(page.length, cliList.length, `${what}: length`);
  page.forEach((p, i) => {
    const c = cliList[i];
    sameNumber(p.value, c.value, `${what}[${i}].value`);
    if (p.id !== c.id) assert.ok(close(p.value, c.value, 1e-6), `${what}[${i}]: id ${p.id} vs ${c.id}`);
    else assert.equal(p.token, c.token, `${what}[${i}].token`);
  });
}

async function setSelections(page, sel) {
  const r = await page.evaluate((json) => Module.ccall('cs_set_selections', 'string', ['string'], [json]),
    JSON.stringify(sel));
  assert.equal(r, "", `cs_set_selections: ${r}`);
}

const results = (s, id) => s.views[id].results;

async function check(t, page, raw) {
  const label = raw ? 'raw' : 'processed';
  await page.evaluate((raw) => Module.ccall('cs_set_raw', null, ['number'], [raw ? 1 : 0]), raw);
  await waitForState(page, (x) => x.model && x.model.weights === label && !x.raw_pending, { what: label });
  await waitIdle(page, { timeout: 120000 });

  await t.test(`Heads grid == heads --json (${label})`, async () => {
    await openTab(page, 'heads');  // the grid computes once its tab is shown
    const s = await waitForState(page, (x) => results(x, 'heads').summary.freshness === 'current',
      { what: 'heads summary', timeout: 120000 });
    const view = results(s, 'heads').summary;
    assert.equal(view.weights, label);
    const ref = cli(['heads', modelDir], raw);
    assert.equal(view.value.length, ref.heads.length, 'number of heads');
    view.value.forEach((h, i) => {
      const c = ref.heads[i];
      assert.equal(h.layer, c.layer);
      assert.equal(h.head, c.head);
      for (const k of ['ov_copying_score', 'qk_copying_score', 'positional_share', 'ov_diagonal_top1',
        'ov_diagonal_top5']) sameNumber(h[k], c[k], `head ${c.layer}.${c.head} ${k}`);
      assert.equal(h.ov_eigenvalues.length, c.ov_eigenvalues.length);
      h.ov_eigenvalues.forEach((z, j) => {
        sameNumber(z[0], c.ov_eigenvalues[j][0], `eig ${j} re`, 1e-3);
        sameNumber(Math.abs(z[1]), Math.abs(c.ov_eigenvalues[j][1]), `eig ${j} |im|`, 1e-3);
      });
    });
    // The copying heads the grid marks (positive eigenvalue score) are the CLI's.
    const marked = view.value.filter((h) => h.ov_copying_score > 0).map((h) => `${h.layer}.${h.head}`);
    const found = ref.heads.filter((h) => h.ov_copying_score > 0).map((h) => `${h.layer}.${h.head}`);
    assert.deepEqual(marked, found);
    if (!raw) assert.ok(found.length >= 6, `the 1-layer model's heads mostly copy: ${found}`);
  });

  await t.test(`Head view OV/QK lookups == ov/qk --json (${label})`, async () => {
    const tok = (await getState(page)).views.head.selection.ov_source;
    const sel = { layer: 0, head: 3, k: 12, ov_source: tok, ov_out: (tok + 7) % 2048, qk_destination: 30,
      qk_source: (tok + 11) % 2048 };
    await setSelections(page, { head: sel });
    const s = await waitForState(page, (x) => ['ov_outs', 'ov_sources', 'qk_sources', 'qk_destinations']
      .every((k) => results(x, 'head')[k].freshness === 'current'), { what: 'head lookups', timeout: 120000 });
    const r = results(s, 'head');
    assert.equal(r.weights, label);
    const h = '0.3';
    sameRanked(r.ov_outs.value, cli(['ov', modelDir, '--head', h, '--source', String(sel.ov_source), '--top', '12'], raw).top, 'OV row');
    sameRanked(r.ov_sources.value, cli(['ov', modelDir, '--head', h, '--out', String(sel.ov_out), '--top', '12'], raw).top, 'OV column');
    sameRanked(r.qk_sources.value, cli(['qk', modelDir, '--head', h, '--destination', String(sel.qk_destination), '--top', '12'], raw).top, 'QK row');
    sameRanked(r.qk_destinations.value, cli(['qk', modelDir, '--head', h, '--source', String(sel.qk_source), '--top', '12'], raw).top, 'QK column');
    const heads = cli(['heads', modelDir], raw).heads;
    const e = await waitForState(page, (x) => results(x, 'head').eigen.freshness === 'current', { what: 'eigen' });
    sameNumber(results(e, 'head').eigen.value.ov_copying_score, heads[3].ov_copying_score, 'head view OV score');
  });

  await t.test(`Skip-trigram table == skip-trigrams --json (${label})`, async () => {
    await setSelections(page, { skip_trigrams: { layer: 0, head: 3, all_heads: false, top_n: 25 } });
    const s = await waitForState(page, (x) => results(x, 'skip_trigrams').table.freshness === 'current' &&
      results(x, 'skip_trigrams').table.key.head === 3, { what: 'skip-trigram table', timeout: 120000 });
    const rows = results(s, 'skip_trigrams').table.value;
    const ref = cli(['skip-trigrams', modelDir, '--head', '0.3', '--top', '25'], raw).entries;
    assert.equal(rows.length, ref.length, 'rows');
    assert.ok(rows.length > 0, 'some skip-trigrams');
    rows.forEach((p, i) => {
      const c = ref[i];
      sameNumber(p.score, c.score, `trigram ${i} score`);
      if (p.source.id === c.source.id && p.destination.id === c.destination.id && p.out.id === c.out.id) {
        assert.equal(p.source.token, c.source.token);
      } else {
        assert.ok(close(p.score, c.score, 1e-6), `trigram ${i}: a different trigram with another score`);
      }
    });
  });

  await t.test(`bigram top-k on screen == bigrams --json (${label})`, async () => {
    await setSelections(page, { bigram: { source: 17, k: 9 } });
    const s = await waitForState(page, (x) => results(x, 'bigram').top_next.freshness === 'current' &&
      results(x, 'bigram').top_next.key.token === 17, { what: 'bigram top next' });
    const ref = cli(['bigrams', modelDir, '--id', '17', '--top', '9'], raw).next;
    const got = results(s, 'bigram').top_next.value;
    assert.deepEqual(got.map((r) => r.id), ref.map((r) => r.id));
    got.forEach((r, i) => sameNumber(r.logit, ref[i].logit, `bigram ${i} logit`));
  });
}

test('one-layer views hold what the CLI computes', { timeout: 600000 }, async (t) => {
  assert.ok(existsSync(cliPath), `CLI not found at ${cliPath}`);
  const app = await openPage();
  try {
    const { page, errors } = app;
    await waitIdle(page);
    await page.evaluate((id) => window.circuitscopeShell.loadBundled(id), MODEL_ID);
    const loaded = await waitForState(page, (x) => x.model && x.model.id === MODEL_ID && !x.loading.active,
      { what: MODEL_ID });
    // The model picker shows the bundled model on screen, even loaded by a script.
    assert.equal(loaded.bundled_pick, MODEL_ID);
    await check(t, page, false);
    for (const tab of ['heads', 'head', 'skip_trigrams']) {
      await openTab(page, tab);
      await waitIdle(page, { timeout: 120000 });
      await screenshot(page, `circuits-${tab}.png`);
    }
    await check(t, page, true);
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
  }
});

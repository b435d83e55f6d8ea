// Exports (src/app/export.h): the tab bar's "Download..." lists what the open
// tab shows; a CSV download equals the table the view holds and draws (and
// the CLI's numbers); a JSON download carries the same with the model, view
// and weights; files are named after the model, view and table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import {
  artifactsDir, center, cliJson, distDir, getState, nearCli, openPage, openTab, screenshot, waitForState, waitFrames, waitIdle,
  assertNoErrors,
} from './harness.mjs';
import { join } from 'node:path';

const MODEL_ID = 'attn-only-2l';

// RFC 4180 (a parser of the test's own): records split by CRLF, quoted fields may hold anything.
function parseCsv(text) {
  const records = [];
  let record = [];
  let field = '';
  for (let i = 0; i < text.length;) {
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (text[i] === '"' && text[i + 1] === '"') { field += '"'; i += 2; } else if (text[i] === '"') { i++; break; } else field += text[i++];
      }
    } else if (text[i] === ',') { record.push(field); field = ''; i++; } else if (text[i] === '\r' && text[i + 1] === '\n') {
      record.push(field); records.push(record); record = []; field = ''; i += 2;
    } else field += text[i++];
  }
  return records;
}

async function download(page, item, encoding = 'utf8') {
  let s = await getState(page);
  const c = center(s.rects.export);
  await page.mouse.click(c.x, c.y);
  await waitForState(page, (x) => x.rects && x.rects[item], { what: `${item} in the Download menu` });
  await waitFrames(page, 3);  // a popup's first frame may be drawn before it is moved inside the window
  s = await getState(page);
  const [d] = await Promise.all([page.waitForEvent('download'), (async () => {
    const r = center(s.rects[item]);
    await page.mouse.click(r.x, r.y);
  })()]);
  const file = await d.path();
  await waitForState(page, (x) => !x.rects[item], { what: 'the menu closed' });
  return { name: d.suggestedFilename(), text: readFileSync(file, encoding) };
}

test('a CSV download equals the table shown; JSON carries the same', { timeout: 300000 }, async () => {
  const app = await openPage();
  try {
    const { page, errors } = app;
    await waitForState(page, (x) => x.model && x.model.id === MODEL_ID && !x.loading.active, { what: MODEL_ID });
    await openTab(page, 'bigram');
    let s = await waitForState(page, (x) => x.views.bigram.results.top_next.freshness === 'current' &&
      x.views.bigram.results.block.freshness === 'current', { what: 'bigram results' });
    await waitIdle(page);
    const held = s.views.bigram.results.top_next;
    const source = held.key.token;

    const csv = await download(page, 'export_next-tokens_csv');
    assert.equal(csv.name, `${MODEL_ID}_bigram_next-tokens.csv`);
    const rows = parseCsv(csv.text);
    assert.deepEqual(rows[0], ['rank', 'id', 'token', 'logit', 'probability']);
    assert.equal(rows.length - 1, held.value.length);
    const ref = cliJson(['bigrams', join(distDir, 'assets', 'models', MODEL_ID), '--id', String(source), '--top', String(held.value.length)]);
    held.value.forEach((e, i) => {
      const r = rows[i + 1];
      assert.equal(r[0], String(i + 1));
      assert.equal(Number(r[1]), e.id, `row ${i} id`);
      assert.equal(r[2], e.token, `row ${i} token (spaces and quotes kept)`);
      assert.equal(Math.fround(Number(r[3])), Math.fround(e.logit), `row ${i} logit as the view holds it`);
      assert.equal(Math.fround(Number(r[4])), Math.fround(e.prob), `row ${i} probability as the view holds it`);
      assert.equal(Number(r[1]), ref.next[i].id, `row ${i}: the CLI's ranking`);
      nearCli(Number(r[3]), ref.next[i].logit, `row ${i} logit against the CLI`);
    });

    const json = await download(page, 'export_heatmap_json');
    assert.equal(json.name, `${MODEL_ID}_bigram_heatmap.json`);
    const j = JSON.parse(json.text);
    assert.equal(j.model, MODEL_ID);
    assert.equal(j.view, 'bigram');
    assert.equal(j.weights, 'processed');
    s = await getState(page);
    const block = s.views.bigram.results.block;
    assert.deepEqual(j.rows.map((r) => r.slice(1)), block.value, 'the heatmap as the view holds it');
    assert.deepEqual(j.columns.slice(1), block.key.map((id) => j.rows[block.key.indexOf(id)][0]), 'labelled by its tokens');
    // The heatmap as a PNG: what the screen shows in its rectangle, axes and legend included.
    // (It lies partly below the tab's scrolled area: the page scrolls it into view for the picture.)
    s = await getState(page);
    assert.ok(s.rects.plot_0, 'the heatmap is listed as a plot');
    assert.ok(s.rects.plot_0[3] > 900, 'the test starts with the heatmap partly out of view');
    const png = await download(page, 'export_plot_0_png', 'base64');
    await page.mouse.move(2, 2);
    await waitIdle(page);
    const r = (await getState(page)).rects.plot_0;
    assert.ok(r[3] <= 900, `scrolled into view for the picture: ${r}`);
    assert.match(png.name, new RegExp(`^${MODEL_ID}_bigram_.*\\.png$`));
    const bytes = Buffer.from(png.text, 'base64');
    mkdirSync(artifactsDir, { recursive: true });
    writeFileSync(join(artifactsDir, 'export-heatmap.png'), bytes);  // to look at
    assert.equal(bytes.subarray(1, 4).toString('latin1'), 'PNG');
    const [w, h] = [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
    assert.ok(Math.abs(w - (r[2] - r[0])) <= 1 && Math.abs(h - (r[3] - r[1])) <= 1, `PNG ${w}x${h} vs rect ${r}`);
    const shot = await page.screenshot({ clip: { x: r[0], y: r[1], width: w, height: h } });
    const diff = await page.evaluate(async ([a, b]) => {
      const pixels = async (b64) => {
        const bmp = await createImageBitmap(await (await fetch(`data:image/png;base64,${b64}`)).blob());
        const c = new OffscreenCanvas(bmp.width, bmp.height);
        const g = c.getContext('2d');
        g.drawImage(bmp, 0, 0);
        return g.getImageData(0, 0, bmp.width, bmp.height).data;
      };
      const [p, q] = [await pixels(a), await pixels(b)];
      let sum = 0;
      const n = Math.min(p.length, q.length);
      for (let i = 0; i < n; i++) if (i % 4 !== 3) sum += Math.abs(p[i] - q[i]);
      let ink = 0;  // how much of it is not the background (a blank picture fails)
      for (let i = 0; i < n; i += 4) if (Math.abs(p[i] - 28) + Math.abs(p[i + 1] - 28) + Math.abs(p[i + 2] - 33) > 60) ink++;
      return { mean: sum / (n * 0.75), ink: ink / (n / 4) };
    }, [png.text, shot.toString('base64')]);
    assert.ok(diff.mean < 6, `the PNG differs from the screen by ${diff.mean} per channel`);
    assert.ok(diff.ink > 0.2, `the PNG shows the heatmap (${diff.ink} of it drawn)`);
    await screenshot(page, 'export-menu.png');
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
  }
});

// Links (src/app/link.h): the address bar follows what the page shows; a
// link opened in a fresh page restores every view's selection and the tab;
// back and forward move between states; "Copy link" copies the address;
// hostile parameters give a message and a fallback, never markup in the page;
// a link to dropped files asks for them and is restored once they are in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  center, openPage, waitIdle, waitForState, getState, assertNoErrors, openTab, screenshot, testModelFiles, writeTempFolder,
} from './harness.mjs';

const MODEL_ID = 'attn-only-2l';
const selections = (s) => Object.fromEntries(Object.entries(s.views).map(([id, v]) => [id, v.selection]));
const setSelections = (page, sel) => page.evaluate((json) =>
  Module.ccall('cs_set_selections', 'string', ['string'], [json]), JSON.stringify(sel));
const search = (page) => page.evaluate(() => location.search);

test('a link restores the views and the tab; back and forward move between states', { timeout: 600000 }, async () => {
  const a = await openPage();
  let link;
  let want;
  try {
    const { page, errors } = a;
    await waitForState(page, (x) => x.model && x.model.id === MODEL_ID && !x.loading.active, { what: MODEL_ID });
    await waitIdle(page);
    assert.equal(await search(page), `?model=${MODEL_ID}`, 'nothing changed: the address names just the model');
    // State A: the Head view on head 1.4.
    assert.equal(await setSelections(page, { head: { layer: 1, head: 4 } }), '');
    await openTab(page, 'head');
    await page.waitForFunction(() => location.search.includes('head.layer=1'), null, { timeout: 10000 });
    const stateA = await search(page);
    assert.match(stateA, /view=head/);
    await page.waitForTimeout(1200);  // a second of quiet: the next state is a new history entry
    // State B: the Prompt view with a text, a locked position and an ablated head.
    assert.equal(await setSelections(page, { prompt: { text: 'def f(x):\n    return x & 1  # <b>bold?</b>', position: 5, ablate: ['1.4'] } }), '');
    await openTab(page, 'prompt');
    await page.waitForFunction(() => location.search.includes('prompt.text='), null, { timeout: 10000 });
    const stateB = await search(page);
    assert.match(stateB, /view=prompt/);
    assert.match(stateB, /head\.layer=1/, 'the Head view\'s selection is still in the link');
    want = selections(await getState(page));
    link = stateB;
    // Back: state A (the Head view open, no prompt fields); forward: B again.
    await page.goBack();
    let s = await waitForState(page, (x) => x.open_view === 'head', { what: 'back to the head view' });
    assert.equal(await search(page), stateA);
    assert.equal(s.views.prompt.selection.position, null);
    await page.goForward();
    s = await waitForState(page, (x) => x.open_view === 'prompt' && x.views.prompt.selection.position === 5, { what: 'forward' });
    assert.deepEqual(selections(s), want);
    // Copy link: the address as it is now.
    await page.evaluate(() => { window.copied = null; window.circuitscopeShell.copyText = (t) => { window.copied = t; }; });
    const c = center(s.rects.copy_link);
    await page.mouse.click(c.x, c.y);
    await page.waitForFunction(() => window.copied !== null, null, { timeout: 10000 });
    assert.equal(await page.evaluate(() => window.copied), await page.evaluate(() => location.href));
    assertNoErrors(assert, errors);
  } finally {
    await a.close();
  }
  // The link in a fresh page: the same selections and tab.
  const b = await openPage({ query: link });
  try {
    await waitForState(b.page, (x) => x.model && x.model.id === MODEL_ID && !x.loading.active &&
      x.open_view === 'prompt', { what: 'the link restored', timeout: 120000 });
    // Once the jobs are done: the Direct path's next token is the top one found
    // after the load (a link leaves it out), not yet set while that scan runs.
    const s = await waitIdle(b.page);
    assert.equal(s.error, '');
    assert.deepEqual(selections(s), want);
    assertNoErrors(assert, b.errors);
  } finally {
    await b.close();
  }
});

test('hostile parameters: a message and a fallback, no markup in the page', { timeout: 300000 }, async () => {
  const query = '?model=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E&view=%3Cscript%3Ealert(2)%3C%2Fscript%3E' +
    '&head.layer=99&head.ov_source=9999999&prompt.text=%3Cimg%20src%3Dy%20onerror%3Dalert(3)%3E' +
    '&virtual.earlier=1.0&virtual.later=0.1&nosuch.x=1';
  const app = await openPage({ query });
  try {
    const { page } = app;
    await page.evaluate(() => { window.alerted = 0; window.alert = () => { window.alerted++; }; });
    const s = await waitForState(page, (x) => x.model && !x.loading.active && x.error, { what: 'the fallback', timeout: 120000 });
    assert.equal(s.model.id, MODEL_ID, 'an unknown model: the first bundled one');
    assert.match(s.error, /is not one of this page's models|is not a view|must be in an earlier layer/);
    assert.deepEqual(s.banner, { heading: 'This link could not be followed in full:', message: s.error, note: '' });
    await waitIdle(page);
    const st = await getState(page);
    assert.equal(st.views.head.selection.layer, 1, 'a head out of range is clamped');
    assert.ok(st.views.head.selection.ov_source < st.model.config.d_vocab, 'a token id beyond the vocabulary is clamped');
    assert.equal(st.views.prompt.selection.text, '<img src=y onerror=alert(3)>', 'markup is text, kept as typed');
    assert.equal(await page.evaluate(() => document.querySelectorAll('img, script:not([src])').length), 0, 'no markup injected');
    assert.equal(await page.evaluate(() => window.alerted), 0);
    // The page still works: another tab draws.
    await openTab(page, 'prompt');
    await waitIdle(page);
  } finally {
    await app.close();
  }
});

test('a link to dropped files asks for them, then restores the rest', { timeout: 300000 }, async (t) => {
  const { files } = testModelFiles({ nLayers: 2, seed: 21, name: 'my-dropped-model' });
  const dir = writeTempFolder(files);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pick = (page) => page.setInputFiles('#file-input', Object.keys(files).map((f) => join(dir, f)));
  const FILE_ID = 'file:model.safetensors';
  let link;
  let want;
  const a = await openPage();
  try {
    const { page, errors } = a;
    await waitForState(page, (x) => x.model && x.model.id === MODEL_ID && !x.loading.active, { what: MODEL_ID });
    await pick(page);
    await waitForState(page, (x) => x.model && x.model.id === FILE_ID && !x.loading.active, { what: 'the dropped model' });
    assert.equal(await setSelections(page, { head: { layer: 1, head: 1 } }), '');
    await openTab(page, 'head');
    await page.waitForFunction(() => location.search.includes('head.layer=1') && location.search.includes('view=head'),
      null, { timeout: 10000 });
    link = await search(page);
    assert.match(link, /model=file%3Amodel\.safetensors|model=file:model\.safetensors/);
    want = (await getState(page)).views.head.selection;
    assertNoErrors(assert, errors);
  } finally {
    await a.close();
  }
  const b = await openPage({ query: link });
  try {
    const { page, errors } = b;
    let s = await waitForState(page, (x) => x.error !== '', { what: 'the request for the files' });
    assert.match(s.error, /drop the same files here/);
    assert.ok(!s.model || s.model.id !== FILE_ID);
    await waitIdle(page);
    await screenshot(page, 'link-asks-for-files.png');
    await pick(page);
    s = await waitForState(page, (x) => x.model && x.model.id === FILE_ID && !x.loading.active && x.open_view === 'head',
      { what: 'the link restored on the dropped files' });
    assert.deepEqual(s.views.head.selection, want);
    assert.equal(s.error, '');
    assertNoErrors(assert, errors);
  } finally {
    await b.close();
  }
});

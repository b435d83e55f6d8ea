// (7) Long work runs as jobs a slice per frame (src/app/jobs.h): the reverse
// lookup computed across frames equals the CLI's `bigrams --reverse`; a newer
// selection drops the running lookup; a model load shows progress and can be
// cancelled, leaving the shown model as it was. Each test runs in both of the
// page's modes: served plainly (single-threaded build, jobs stepped between
// frames) and cross-origin isolated (threaded build, jobs on worker threads).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  openPage, waitIdle, waitForState, assertNoErrors, cliPath, demoFiles, makeModel, safetensorsBytes,
  writeTempFolder, openTab,
} from './harness.mjs';

function cliReverse(model, id, k, raw) {
  const args = ['bigrams', model, '--id', String(id), '--top', String(k), '--reverse', '--json'];
  if (raw) args.push('--raw');
  return JSON.parse(execFileSync(cliPath, args, { encoding: 'utf8' }));
}

function sameList(actual, expected, what) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  actual.forEach((a, i) => {
    const e = expected[i];
    assert.equal(a.id, e.id, `${what}: [${i}].id`);
    assert.equal(a.token, e.token, `${what}: [${i}].token`);
    assert.ok(Math.abs(a.logit - e.logit) <= 1e-4, `${what}: [${i}].logit ${a.logit} vs ${e.logit}`);
    assert.ok(Math.abs(a.prob - e.prob) <= 1e-4, `${what}: [${i}].prob ${a.prob} vs ${e.prob}`);
  });
}

const call = (page, fn, ...args) =>
  page.evaluate(([fn, args]) => Module.ccall(fn, null, args.map(() => 'number'), args), [fn, args]);

// Selects `next` in the reverse lookup (as the view does) and waits for its result on screen.
async function reverseInView(page, next, k) {
  await call(page, 'cs_set_top_k_sources', k);
  await call(page, 'cs_select_next', next);
  const s = await waitForState(page, (x) => x.bigram.top_sources_next === next && x.bigram.k_sources === k &&
    !x.bigram.top_sources_pending, { what: `reverse lookup of ${next}` });
  return s.bigram.top_sources;
}

// The mode the page says it is in, and where it says it.
async function expectMode(page, isolated) {
  const s = await waitIdle(page);
  if (isolated) assert.ok(s.threads >= 2, `cross-origin isolated: worker threads (threads ${s.threads})`);
  else assert.equal(s.threads, 1, 'not isolated: one thread');
  assert.ok(s.rects.threads_mode, 'the model panel says which mode the page is in');
  assert.equal(await page.evaluate(() => self.crossOriginIsolated), isolated);
  return s;
}

for (const isolated of [false, true]) {
const mode = isolated ? 'worker threads' : 'one thread';

test(`reverse lookup across frames equals the CLI (${mode})`, { timeout: 180000 }, async () => {
  assert.ok(existsSync(cliPath), `CLI not found at ${cliPath} (set CIRCUITSCOPE_CLI)`);
  const demo = demoFiles();
  const n = demo.config.d_vocab;
  const app = await openPage({ isolated });
  try {
    const { page, errors } = app;
    await expectMode(page, isolated);
    for (const raw of [false, true]) {
      await call(page, 'cs_set_raw', raw ? 1 : 0);
      await waitForState(page, (x) => x.model.weights === (raw ? 'raw' : 'processed') && !x.raw_pending,
        { what: 'weights' });
      for (const [id, k] of [[0, 5], [Math.floor(n / 3), 10], [n - 1, 20]]) {
        const want = cliReverse(demo.dir, id, k, raw);
        sameList(await reverseInView(page, id, k), want.sources, `view: next ${id} top ${k}${raw ? ' raw' : ''}`);
        const bridge = JSON.parse(await page.evaluate(([id, k]) =>
          Module.ccall('cs_bigram_sources_json', 'string', ['number', 'number'], [id, k]), [id, k]));
        assert.deepEqual(bridge.next_token, want.next_token);
        assert.equal(bridge.weights, want.weights);
        sameList(bridge.sources, want.sources, `bridge: next ${id} top ${k}${raw ? ' raw' : ''}`);
      }
    }
    const bad = JSON.parse(await page.evaluate(() =>
      Module.ccall('cs_bigram_sources_json', 'string', ['number', 'number'], [-1, 5])));
    assert.match(bad.error, /out of range/);
    // The shell's streaming path: a reservation beyond memory fails with the banner, untouched.
    const ok = await page.evaluate(() => Module.ccall('cs_stage_reserve', 'number', ['string', 'number'], ['big.safetensors', 3.9e9]));
    assert.equal(ok, 0);
    const e = await waitForState(page, (x) => x.error !== '', { what: 'too-large error' });
    assert.equal(e.error, "file big.safetensors (3900.0 MB) is too large for the browser's memory");
    await page.evaluate(() => { Module.ccall('cs_discard_staged', null, [], []); Module.ccall('cs_report_error', null, ['string'], ['']); });
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
  }
});

test(`jobs show progress, a newer selection or Cancel drops them (${mode})`, { timeout: 240000 }, async () => {
  assert.ok(existsSync(cliPath), `CLI not found at ${cliPath} (set CIRCUITSCOPE_CLI)`);
  // Large enough that a load and a reverse lookup each take several frames
  // of the single-threaded page, 25 ms of work in each (40000 x 256 embedding
  // and unembedding: 82 MB of F32; the lookup alone is about 50 ms of wasm).
  const { tensors, config } = makeModel({ dVocab: 40000, dModel: 256, nHeads: 2, dHead: 16, nCtx: 16, norm: 'LN',
    seed: 5, name: 'wide-vocab' });
  const dir = writeTempFolder({ 'model.safetensors': safetensorsBytes(tensors), 'config.json': JSON.stringify(config) });
  const files = ['model.safetensors', 'config.json'].map((f) => join(dir, f));
  const app = await openPage({ isolated });
  try {
    const { page, errors } = app;
    const before = await expectMode(page, isolated);

    // Cancel: as soon as the load is running (in the frame it is first seen), cancel it.
    const watched = page.evaluate(() => new Promise((resolve) => {
      const seen = [];
      const tick = () => {
        const s = window.circuitscopeShell.state();
        if (s.loading.active) {
          seen.push(s.loading.progress);
          Module.ccall('cs_cancel_load', null, [], []);
          resolve({ seen, after: window.circuitscopeShell.state() });
          return;
        }
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    }));
    await page.setInputFiles('#file-input', files);
    const { after } = await watched;
    assert.equal(after.loading.active, false, 'cancelled');
    const s1 = await waitIdle(page);
    assert.equal(s1.model.id, before.model.id, 'the shown model stays');
    assert.equal(s1.error, '');

    // Load it for real, recording the load's progress frame by frame.
    const progress = page.evaluate(() => new Promise((resolve) => {
      const seen = [];
      const tick = () => {
        const s = window.circuitscopeShell.state();
        if (s.loading.active) seen.push(s.loading.progress);
        if (s.model && s.model.id === 'file:model.safetensors' && !s.loading.active) { resolve(seen); return; }
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    }));
    await page.setInputFiles('#file-input', files);
    const seen = await progress;
    // Stepped between frames the load spans several (25 ms of it in each frame
    // not drawn); on worker threads it may be done within a frame or two (the
    // page renders meanwhile).
    if (!isolated) {
      assert.ok(seen.length >= 3, `the load took several frames (${seen.length}: ${seen})`);
      assert.ok(seen.some((p) => p > 0 && p < 1), `progress between 0 and 1 was shown: ${seen}`);
    }
    assert.ok(seen.length >= 1 && seen.every((p) => p >= 0 && p <= 1), `the load was shown running: ${seen}`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1], `progress never goes back: ${seen}`);
    await waitIdle(page);

    // A reverse lookup runs over several frames with its progress in the state;
    // selecting another token in the same frame drops it for the newer one.
    // On worker threads the lookup may finish within a frame: the newer
    // selection then comes in the same frame, while the first runs on its thread.
    const run = await page.evaluate((isolated) => new Promise((resolve) => {
      const seen = [];
      Module.ccall('cs_select_next', null, ['number'], [123]);
      let switched = false, droppedShown = false;
      if (isolated) {
        Module.ccall('cs_select_next', null, ['number'], [31000]);
        switched = true;
      }
      const tick = () => {
        const s = window.circuitscopeShell.state();
        const job = s.jobs.find((j) => j.slot === 'bigram.sources');
        if (job) seen.push(job.progress);
        if (s.bigram.top_sources_next === 123) droppedShown = true;
        if (!switched && job && job.progress > 0) {
          Module.ccall('cs_select_next', null, ['number'], [31000]);
          switched = true;
        }
        if (switched && !s.bigram.top_sources_pending) { resolve({ seen, bigram: s.bigram, droppedShown }); return; }
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    }), isolated);
    if (!isolated) assert.ok(run.seen.some((p) => p > 0 && p < 1), `reverse lookup progress was shown: ${run.seen}`);
    assert.equal(run.bigram.top_sources_next, 31000, 'the newer selection won');
    assert.equal(run.droppedShown, false, 'the dropped lookup never reached the screen');
    const want = cliReverse(dir, 31000, 10, false);
    sameList(run.bigram.top_sources, want.sources, 'wide model: next 31000');
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

// While a long job runs and nothing happens on the page, the page draws a few
// frames a second (src/app/redraw.h: software WebGL takes 35-60 ms of a core
// per frame): the threaded page leaves that core to its workers, the
// single-threaded page steps the job in the frames it does not draw. Input
// draws at once.
test(`a quiet page draws few frames while jobs run (${mode})`, { timeout: 180000 }, async () => {
  const { tensors, config } = makeModel({ dVocab: 40000, dModel: 128, nHeads: 2, dHead: 16, nCtx: 16, norm: 'LN',
    seed: 9, name: 'wide-vocab' });
  const dir = writeTempFolder({ 'model.safetensors': safetensorsBytes(tensors), 'config.json': JSON.stringify(config) });
  const app = await openPage({ isolated });
  try {
    const { page, errors } = app;
    await expectMode(page, isolated);
    await page.setInputFiles('#file-input', ['model.safetensors', 'config.json'].map((f) => join(dir, f)));
    await waitForState(page, (x) => x.model?.id === 'file:model.safetensors' && !x.loading.active, { what: 'load' });
    await waitIdle(page);
    await openTab(page, 'skip_trigrams');
    const r = await page.evaluate((json) => Module.ccall('cs_set_selections', 'string', ['string'], [json]),
      JSON.stringify({ skip_trigrams: { layer: 0, head: 1, all_heads: false, top_n: 25 } }));
    assert.equal(r, '', `cs_set_selections: ${r}`);
    await waitForState(page, (x) => x.jobs.length > 0, { what: 'the skip-trigram job' });
    const windowMs = 1500;
    const stats = await page.evaluate((ms) => new Promise((resolve) => {
      const job = () => window.circuitscopeShell.state().jobs[0];
      const first = job();
      Module.ccall('cs_frame_stats_reset', null, [], []);
      setTimeout(() => resolve({
        frames: JSON.parse(Module.ccall('cs_frame_stats_json', 'string', [], [])),
        first, last: job(),
      }), ms);
    }), windowMs);
    assert.ok(stats.last && stats.last.label === stats.first.label, 'the job still ran at the end of the window (make it longer)');
    const f = stats.frames;
    assert.ok(f.skipped > 0, `frames were skipped: ${JSON.stringify(f)}`);
    assert.equal(f.drawn + f.skipped, f.frames, `every animation frame counted: ${JSON.stringify(f)}`);
    // at most one frame per 200 ms, plus the first and one for the window's edges
    assert.ok(f.drawn <= windowMs / 200 + 2, `few frames drawn: ${JSON.stringify(f)}`);
    // The job's frames: every animation frame looks at it (the threaded page
    // for its progress, the single-threaded one steps it), drawn or not.
    const seen = stats.last.frames - stats.first.frames;
    assert.ok(seen > f.drawn, `the job was stepped or polled in frames not drawn: ${seen} frames, ${JSON.stringify(f)}`);
    assert.ok(stats.last.progress > stats.first.progress, 'the job went on');
    assertNoErrors(assert, errors);
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
}

// Page-side benchmarks, run by scripts/bench (or alone: node tests/bench/page_bench.mjs).
// Serves the wasm build's dist/ and drives headless Chromium as the browser
// tests do (tests/browser/harness.mjs), then prints on stdout
//   {"benchmarks":[{"name","ms"} | {"name","value","unit"}]}
// (tests/bench/table.mjs puts rows named like a native/wasm benchmark in that
// row's "page" column). Progress goes to stderr. Nothing is asserted.
//
// The model is random, in the public toy models' shape (attn-only-2l: 2 layers,
// d_model 512, 8 heads of 64, n_ctx 1024, d_vocab 48262, LayerNorm), written by
// `circuitscope make-random` (F32 208 MB, F16 104 MB) into a temporary folder.
//
// Measured:
//  - page_gzip_*: circuitscope.js and .wasm compressed with zlib level 9;
//  - page_first_frame: navigation start to the first frame drawn (median of 3 page loads);
//  - load_f32 / load_f16: file input to model shown (reading into wasm memory,
//    converting, TransformerLens processing, first bigram results), one fresh
//    page each, with the longest C++ frame, the longest main-thread task and
//    the longest gap between animation frames during it, and the wasm memory
//    (its buffer only grows, so it is the peak) and JS heap after it;
//  C++ frame times are whole frames and "work" (without the WebGL calls, which
//  wait on the browser's GPU process: SwiftShader in headless Chromium);
//  - bigram_top_next_k10: cs_bigram_top_json through the bridge (50 sources);
//  - page_select_*: a selection changed as the view's widgets do, until its
//    result is on screen, with the longest C++ frame meanwhile (50 tokens);
//  - bigram_top_sources_k10: the reverse lookup at once through the bridge,
//    for comparison with the sliced one the view runs;
//  - page_raw_reload: ticking "raw weights" (a second load from the kept bytes);
//  - page_heads_grid, page_head_view_open, page_skip_trigrams_one_head: a
//    one-layer view's tab opened (its work starts then) until its results are
//    on screen, with the longest C++ frame and job step meanwhile;
//  - page_head_badges: model shown until the head badges (a job of their own
//    after every load: [I]'s experiment and the OV eigenvalues) are computed;
//  - page_composition_view_open, page_virtual_heads_view_open,
//    page_induction_view_open: a two-layer view's tab opened until its
//    results are on screen, with the longest C++ frame and job step meanwhile;
//  - page_prompt_first_result, page_prompt_1024: the Prompt view on n_ctx =
//    1024 tokens of text (a WordLevel tokenizer of the model's 48,262 tokens
//    is written beside it): until the forward pass's result (tokens,
//    patterns, top predictions) is on screen, then until the logit split by
//    path is too; page_prompt_ablate: a head ticked until the ablated run's
//    predictions are on screen; each with the longest job step meanwhile;
//  - ov_row, ov_column, qk_row, qk_column: one lookup of the head view changed
//    (as its token pickers do): its C++ time in the page (the job's steps and
//    its done callback; median of 20 tokens) and, as *_latency_*, the time
//    until the new top-k is on screen (whole frames: SwiftShader draws slowly).
// PAGE_BENCH_ISOLATED=1: the page served cross-origin isolated, so the threaded
// build runs and its jobs compute on worker threads (README, "Worker threads");
// every row's name then ends in _workers (compare with the native *_all_cores
// rows). PAGE_BENCH_ONLY (below) picks a part of the run.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { openPage, distDir, cliPath, waitIdle, getState } from '../browser/harness.mjs';

const ISOLATED = process.env.PAGE_BENCH_ISOLATED === '1';
const log = (...a) => console.error('page_bench:', ...a);
const out = [];
const ms = (name, v) => { out.push({ name, ms: v }); log(`${name}: ${v.toFixed(2)} ms`); };
const val = (name, value, unit) => { out.push({ name, value, unit }); log(`${name}: ${value} ${unit}`); };
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const max = (a) => Math.max(...a);
const MB = (bytes) => Math.round(bytes / 1e5) / 10;
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

const CHROMIUM_EXTRA = ['--enable-precise-memory-info'];
const VIEWPORT = { width: 1400, height: 900 };

// ---- gzip size of the page's code -----------------------------------------------------
function gzipSizes() {
  let total = 0;
  for (const f of ['circuitscope.js', 'circuitscope.wasm']) {
    const bytes = readFileSync(join(distDir, f));
    const gz = gzipSync(bytes, { level: 9 }).length;
    total += gz;
    val(`page_gzip_${f.replace('circuitscope.', '')}`, round(gz / 1e6, 3), `MB (${round(bytes.length / 1e6, 2)} MB raw)`);
  }
  val('page_gzip_js_plus_wasm', round(total / 1e6, 3), 'MB');
}

// ---- page load --------------------------------------------------------------------------
async function firstFrame() {
  const first = [], shown = [];
  for (let i = 0; i < 3; i++) {
    const app = await openPage({ viewport: VIEWPORT, extraArgs: CHROMIUM_EXTRA, isolated: ISOLATED });
    try {
      const { page } = app;
      // Resolves on the animation frame where the default (bundled) model is on screen.
      const modelAt = await page.waitForFunction(() => {
        const sh = window.circuitscopeShell;
        const s = sh && sh.state();
        return s && s.model && !s.loading.active && s.jobs.length === 0 ? performance.now() : false;
      }, null, { polling: 'raf', timeout: 120000 });
      shown.push(await modelAt.jsonValue());
      const f = JSON.parse(await page.evaluate(() => Module.ccall('cs_frame_stats_json', 'string', [], [])));
      first.push(f.first_frame_at_ms);
    } finally {
      await app.close();
    }
  }
  ms('page_first_frame', median(first));
  ms('page_bundled_model_shown', median(shown));
}

// ---- loading the toy model through the file input --------------------------------------
// Installs observers for main-thread tasks over 50 ms and for the gaps between
// animation frames (what a user sees as a stutter).
async function watchMainThread(page) {
  await page.evaluate(() => {
    window.__bench = { longtasks: [], maxGap: 0, last: 0 };
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__bench.longtasks.push(e.duration);
    }).observe({ type: 'longtask' });
    const tick = (t) => {
      const b = window.__bench;
      if (b.last) b.maxGap = Math.max(b.maxGap, t - b.last);
      b.last = t;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
}

async function mainThreadSince(page) {
  return page.evaluate(() => {
    const b = window.__bench;
    const r = { longtasks: b.longtasks.length, maxTask: b.longtasks.length ? Math.max(...b.longtasks) : 0, maxGap: b.maxGap };
    b.longtasks = [];
    b.maxGap = 0;
    b.last = 0;
    return r;
  });
}

// The longest single step of a job (one unit of work, or the first of several): what to slice next.
function longestStep(prefix, f) {
  const st = f.longest_job_step;
  if (st && st.ms > 0) val(`${prefix}_longest_job_step`, round(st.ms), `ms (${st.label}: ${st.stage})`);
}

const frameStats = (page) => page.evaluate(() => JSON.parse(Module.ccall('cs_frame_stats_json', 'string', [], [])));
const resetFrameStats = (page) => page.evaluate(() => Module.ccall('cs_frame_stats_reset', null, [], []));

function memory(page) {
  return page.evaluate(() => ({
    wasm: Module.HEAPU8.buffer.byteLength,
    jsUsed: performance.memory ? performance.memory.usedJSHeapSize : 0,
    jsTotal: performance.memory ? performance.memory.totalJSHeapSize : 0,
  }));
}

// Changes a selection through the bridge (as the widgets do) and waits, frame by
// frame, until its result is on screen; returns per-selection latency and the
// longest C++ frame meanwhile.
async function selections(page, fn, ids, doneKey, pendingKey) {
  return page.evaluate(async ({ fn, ids, doneKey, pendingKey }) => {
    const raf = () => new Promise((r) => requestAnimationFrame(r));
    const stats = () => JSON.parse(Module.ccall('cs_frame_stats_json', 'string', [], []));
    const results = [];
    for (const id of ids) {
      await raf();
      Module.ccall('cs_frame_stats_reset', null, [], []);
      const t0 = performance.now();
      Module.ccall(fn, null, ['number'], [id]);
      let frames = 0;
      for (;;) {
        await raf();
        frames++;
        const b = window.circuitscopeShell.state().bigram;
        if (b[doneKey] === id && !b[pendingKey]) break;
        if (frames > 2000) throw new Error(`${fn}(${id}) did not finish`);
      }
      const s = stats();
      results.push({ latency: performance.now() - t0, frames, maxFrame: s.max_ms, maxWork: s.max_work_ms,
        maxJobs: s.max_jobs_ms,
        step: s.longest_job_step });
    }
    return results;
  }, { fn, ids, doneKey, pendingKey });
}

async function loadToy(kind, dir) {
  const files = ['model.safetensors', 'config.json', ...(existsSync(join(dir, 'tokenizer.json')) ? ['tokenizer.json'] : [])]
    .map((f) => join(dir, f));
  const app = await openPage({ query: '?model=none', viewport: VIEWPORT, extraArgs: CHROMIUM_EXTRA, isolated: ISOLATED });
  try {
    const { page } = app;
    await waitIdle(page, { timeout: 120000 });
    const threads = (await getState(page)).threads;
    log(`page computes on ${threads} thread(s)${ISOLATED ? ' (served cross-origin isolated)' : ''}`);
    if (ISOLATED && !(threads > 1)) throw new Error(`PAGE_BENCH_ISOLATED=1 but the page runs on ${threads} thread(s)`);
    const before = await memory(page);
    await watchMainThread(page);
    await page.waitForTimeout(300);
    await mainThreadSince(page);
    await resetFrameStats(page);
    const t0 = await page.evaluate(() => performance.now());
    const tStart = Date.now();
    await page.setInputFiles('#file-input', files);
    // Polled from here (50 ms): when the bytes are in wasm memory and the C++ load starts.
    let readEnd = null;
    const poll = setInterval(() => {
      if (readEnd !== null) return;
      getState(page).then((s) => { if (s && s.loading.active && readEnd === null) readEnd = Date.now(); }).catch(() => {});
    }, 50);
    const shownAt = await page.waitForFunction(() => {
      const s = window.circuitscopeShell.state();
      // The head badges' job (after every load) is timed on its own (page_head_badges).
      return s.model && s.model.id === 'file:model.safetensors' && !s.loading.active &&
        s.jobs.every((j) => j.slot === 'badges') ? performance.now() : false;
    }, null, { polling: 'raf', timeout: 600000 });
    clearInterval(poll);
    const t1 = await shownAt.jsonValue();
    const st = await getState(page);
    if (st.error) throw new Error(`load_${kind}: ${st.error}`);
    const f = await frameStats(page);
    const main = await mainThreadSince(page);
    const mem = await memory(page);
    ms(`load_${kind}`, t1 - t0);
    if (readEnd) ms(`page_load_${kind}_reading_files`, readEnd - tStart);
    ms(`page_load_${kind}_max_cpp_frame`, f.max_ms);
    ms(`page_load_${kind}_max_cpp_work`, f.max_work_ms);
    ms(`page_load_${kind}_max_jobs_in_frame`, f.max_jobs_ms);
    longestStep(`page_load_${kind}`, f);
    val(`page_load_${kind}_frames`, f.frames, `frames (p95 ${round(f.p95_ms)} ms, ${f.over_50ms} over 50 ms)`);
    ms(`page_load_${kind}_max_main_thread_task`, main.maxTask);
    val(`page_load_${kind}_long_tasks`, main.longtasks, 'tasks over 50 ms');
    ms(`page_load_${kind}_max_frame_gap`, main.maxGap);
    val(`page_load_${kind}_wasm_memory`, MB(mem.wasm), `MB (peak; ${MB(before.wasm)} MB before)`);
    val(`page_load_${kind}_js_heap`, MB(mem.jsUsed), `MB used (${MB(mem.jsTotal)} MB total)`);
    return app;
  } catch (e) {
    await app.close();
    throw e;
  }
}

async function queries(app) {
  const { page } = app;
  const st = await getState(page);
  const V = st.model.config.d_vocab;
  const ids = Array.from({ length: 50 }, (_, i) => (i * 9973 + 17) % V);

  // Through the bridge, at once (JSON included).
  const bridge = await page.evaluate((ids) => {
    const t = [];
    Module.ccall('cs_bigram_top_json', 'string', ['number', 'number'], [ids[0], 10]);  // warm-up
    for (const id of ids) {
      const t0 = performance.now();
      Module.ccall('cs_bigram_top_json', 'string', ['number', 'number'], [id, 10]);
      t.push(performance.now() - t0);
    }
    return t;
  }, ids);
  ms('bigram_top_next_k10', median(bridge));
  ms('page_bigram_top_next_bridge_max', max(bridge));

  await watchMainThread(page);
  await page.waitForTimeout(200);
  await mainThreadSince(page);
  const next = await selections(page, 'cs_select_token', ids, 'top_next_source', 'top_next_pending');
  ms('page_select_source_latency_median', median(next.map((r) => r.latency)));
  ms('page_select_source_latency_max', max(next.map((r) => r.latency)));
  ms('page_select_source_max_cpp_frame', max(next.map((r) => r.maxFrame)));
  ms('page_select_source_max_cpp_work', max(next.map((r) => r.maxWork)));
  longestStep('page_select_source', { longest_job_step: next.map((r) => r.step).sort((a, b) => b.ms - a.ms)[0] });

  const rev = ids.slice(0, 20);
  const bridgeRev = await page.evaluate((ids) => {
    const t = [];
    for (const id of ids) {
      const t0 = performance.now();
      Module.ccall('cs_bigram_sources_json', 'string', ['number', 'number'], [id, 10]);
      t.push(performance.now() - t0);
    }
    return t;
  }, rev);
  ms('bigram_top_sources_k10', median(bridgeRev));
  await mainThreadSince(page);
  const sources = await selections(page, 'cs_select_next', rev, 'top_sources_next', 'top_sources_pending');
  ms('page_select_next_reverse_latency_median', median(sources.map((r) => r.latency)));
  ms('page_select_next_reverse_latency_max', max(sources.map((r) => r.latency)));
  val('page_select_next_reverse_frames', median(sources.map((r) => r.frames)), 'frames (median)');
  ms('page_select_next_reverse_max_cpp_frame', max(sources.map((r) => r.maxFrame)));
  ms('page_select_next_reverse_max_cpp_work', max(sources.map((r) => r.maxWork)));
  longestStep('page_select_next_reverse', { longest_job_step: sources.map((r) => r.step).sort((a, b) => b.ms - a.ms)[0] });
  const main = await mainThreadSince(page);
  ms('page_selections_max_main_thread_task', main.maxTask);
  ms('page_selections_max_frame_gap', main.maxGap);

  // Idle frames: what drawing the page costs in C++.
  await resetFrameStats(page);
  await page.waitForTimeout(1000);
  const idle = await frameStats(page);
  ms('page_idle_frame_p50', idle.p50_ms);
  ms('page_idle_work_p50', idle.work_p50_ms);

  // Raw weights: a second load from the bytes the page kept.
  await resetFrameStats(page);
  await mainThreadSince(page);
  const t0 = await page.evaluate(() => { Module.ccall('cs_set_raw', null, ['number'], [1]); return performance.now(); });
  const doneAt = await page.waitForFunction(() => {
    const s = window.circuitscopeShell.state();
    return s.model && s.model.weights === 'raw' && !s.raw_pending && s.jobs.length === 0 ? performance.now() : false;
  }, null, { polling: 'raf', timeout: 300000 });
  ms('page_raw_reload', (await doneAt.jsonValue()) - t0);
  const rf = await frameStats(page);
  ms('page_raw_reload_max_cpp_frame', rf.max_ms);
  ms('page_raw_reload_max_cpp_work', rf.max_work_ms);
  longestStep('page_raw_reload', rf);
  ms('page_raw_reload_max_main_thread_task', (await mainThreadSince(page)).maxTask);
  val('page_raw_reload_wasm_memory', MB((await memory(page)).wasm), 'MB (peak)');
}

// ---- the one-layer views on the toy-shaped model ---------------------------------------
// Opens a tab (its work starts when it is first shown) and waits, frame by
// frame, until `done(state)`; returns the time and the frame statistics meanwhile.
async function untilDone(page, tab, selection, doneFn, timeoutMs) {
  await resetFrameStats(page);
  await mainThreadSince(page);
  const t0 = await page.evaluate(({ tab, selection }) => {
    const t = performance.now();
    if (selection) {
      const r = Module.ccall('cs_set_selections', 'string', ['string'], [JSON.stringify(selection)]);
      if (r) throw new Error(`cs_set_selections: ${r}`);
    }
    if (tab) Module.ccall('cs_open_view', null, ['string'], [tab]);
    return t;
  }, { tab, selection });
  const at = await page.waitForFunction(doneFn, null, { polling: 'raf', timeout: timeoutMs });
  const t1 = await at.jsonValue();
  return { ms: t1 - t0, f: await frameStats(page), main: await mainThreadSince(page) };
}

function jobRecords(prefix, f) {
  const j = f.longest_job, d = f.slowest_done;
  if (j && j.ms > 0) val(`${prefix}_longest_job`, round(j.ms), `ms of steps over ${j.frames} frames (${j.label})`);
  if (d && d.done_ms > 0) val(`${prefix}_slowest_done_callback`, round(d.done_ms), `ms (${d.label})`);
}

function report(prefix, r) {
  ms(prefix, r.ms);
  jobRecords(prefix, r.f);
  ms(`${prefix}_max_cpp_frame`, r.f.max_ms);
  ms(`${prefix}_max_cpp_work`, r.f.max_work_ms);
  ms(`${prefix}_max_jobs_in_frame`, r.f.max_jobs_ms);
  longestStep(prefix, r.f);
  val(`${prefix}_frames`, r.f.frames, `frames (p95 ${round(r.f.p95_ms)} ms, ${r.f.over_50ms} over 50 ms)`);
  ms(`${prefix}_max_main_thread_task`, r.main.maxTask);
}

async function oneLayerViews(app) {
  const { page } = app;
  await watchMainThread(page);
  // Heads grid: every head's eigenvalues (one vocabulary pass), positional share, attention (diagonal off at this size).
  report('page_heads_grid', await untilDone(page, 'heads', null, () => {
    const s = window.circuitscopeShell.state();
    return s.open_view === 'heads' && s.views.heads.results.summary.freshness === 'current' ? performance.now() : false;
  }, 600000));
  // Head view: four ranked lookups, eigenvalues, positional QK.
  const lists = ['ov_outs', 'ov_sources', 'qk_sources', 'qk_destinations'];
  report('page_head_view_open', await untilDone(page, 'head', null, () => {
    const s = window.circuitscopeShell.state();
    const r = s.views.head.results;
    return s.open_view === 'head' && ['ov_outs', 'ov_sources', 'qk_sources', 'qk_destinations', 'eigen']
      .every((k) => r[k].freshness === 'current') ? performance.now() : false;
  }, 600000));
  // One lookup at a time, as the token pickers change one selection field.
  const V = (await getState(page)).model.config.d_vocab;
  const fields = { ov_source: ['ov_outs', 'ov_row'], ov_out: ['ov_sources', 'ov_column'],
    qk_destination: ['qk_sources', 'qk_row'], qk_source: ['qk_destinations', 'qk_column'] };
  for (const [field, [result, name]] of Object.entries(fields)) {
    const ids = Array.from({ length: 20 }, (_, i) => (i * 7919 + 101 + name.length) % V);
    const r = await page.evaluate(async ({ field, result, ids }) => {
      const raf = () => new Promise((res) => requestAnimationFrame(res));
      const stats = () => JSON.parse(Module.ccall('cs_frame_stats_json', 'string', [], []));
      const out = [];
      for (const id of ids) {
        await raf();
        const sel = window.circuitscopeShell.state().views.head.selection;
        sel[field] = id;
        Module.ccall('cs_frame_stats_reset', null, [], []);
        const t0 = performance.now();
        const err = Module.ccall('cs_set_selections', 'string', ['string'], [JSON.stringify({ head: sel })]);
        if (err) throw new Error(err);
        let frames = 0;
        for (;;) {
          await raf();
          frames++;
          const x = window.circuitscopeShell.state().views.head.results[result];
          if (x.freshness === 'current' && x.key && x.key.id === id) break;
          if (frames > 2000) throw new Error(`${field} ${id} did not finish`);
        }
        const s = stats();
        out.push({ latency: performance.now() - t0, frames, maxFrame: s.max_ms, maxWork: s.max_work_ms,
          step: s.longest_job_step, job: s.longest_job.ms, done: s.longest_job.done_ms });
      }
      return out;
    }, { field, result, ids });
    // The lookup's C++ time in the page: its job's steps plus its done callback.
    ms(`${name}`, median(r.map((x) => x.job + x.done)));
    ms(`page_head_${name}_compute_max`, max(r.map((x) => x.job + x.done)));
    ms(`page_head_${name}_latency_median`, median(r.map((x) => x.latency)));
    ms(`page_head_${name}_latency_max`, max(r.map((x) => x.latency)));
    val(`page_head_${name}_frames`, median(r.map((x) => x.frames)), 'frames (median)');
    ms(`page_head_${name}_max_cpp_frame`, max(r.map((x) => x.maxFrame)));
    ms(`page_head_${name}_max_cpp_work`, max(r.map((x) => x.maxWork)));
    longestStep(`page_head_${name}`, { longest_job_step: r.map((x) => x.step).sort((a, b) => b.ms - a.ms)[0] });
  }
  // Skip-trigram table of one head: full-vocabulary scans of its QK and OV circuits (minutes; PAGE_BENCH_SKIP_TRIGRAMS=0 leaves it out).
  if (process.env.PAGE_BENCH_SKIP_TRIGRAMS === '0') return;
  report('page_skip_trigrams_one_head', await untilDone(page, 'skip_trigrams',
    { skip_trigrams: { layer: 0, head: 0, all_heads: false, top_n: 100 } }, () => {
      const s = window.circuitscopeShell.state();
      const t = s.views.skip_trigrams.results.table;
      return s.open_view === 'skip_trigrams' && t.freshness === 'current' ? performance.now() : false;
    }, 600000));
}

// ---- the two-layer views on the toy-shaped model -----------------------------------------
async function twoLayerViews(app) {
  const { page } = app;
  await watchMainThread(page);
  // Composition: every Q/K/V score and the baseline, then [F]'s scatter (the detector, the K-terms).
  report('page_composition_view_open', await untilDone(page, 'composition', null, () => {
    const s = window.circuitscopeShell.state();
    const r = s.views.composition.results;
    return s.open_view === 'composition' && r.scores.freshness === 'current' && r.scatter.freshness === 'current'
      ? performance.now() : false;
  }, 900000));
  // Virtual heads: the ranking, then the largest one's two lookups and eigenvalues.
  report('page_virtual_heads_view_open', await untilDone(page, 'virtual', null, () => {
    const s = window.circuitscopeShell.state();
    const r = s.views.virtual.results;
    return s.open_view === 'virtual' && r.head && ['ranking', 'ov_outs', 'ov_sources', 'eigen']
      .every((k) => r[k].freshness === 'current') ? performance.now() : false;
  }, 900000));
  // Induction: [I]'s experiment with its defaults (or the badges' when they match).
  report('page_induction_view_open', await untilDone(page, 'induction', null, () => {
    const s = window.circuitscopeShell.state();
    return s.open_view === 'induction' && s.views.induction.results.experiment.freshness === 'current'
      ? performance.now() : false;
  }, 900000));
}

// ---- the Prompt view on n_ctx tokens of the toy-shaped model ----------------------------
// A WordLevel tokenizer.json of d_vocab tokens "t0".."t{n-1}" (no BOS), so text reads as ids.
function wordLevelTokenizer(n) {
  const vocab = {};
  for (let i = 0; i < n; i++) vocab[`t${i}`] = i;
  return JSON.stringify({ version: '1.0', added_tokens: [], normalizer: null, pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: null, decoder: null, model: { type: 'WordLevel', vocab, unk_token: 't0' } });
}

async function badges(app) {
  const { page } = app;
  await resetFrameStats(page);
  const t0 = await page.evaluate(() => performance.now());
  const at = await page.waitForFunction(() => {
    const s = window.circuitscopeShell.state();
    return s.badges && s.badges.value ? performance.now() : false;
  }, null, { polling: 'raf', timeout: 900000 });
  const t1 = await at.jsonValue();
  ms('page_head_badges', t1 - t0);
  const f = await frameStats(page);
  ms('page_head_badges_max_cpp_work', f.max_work_ms);
  longestStep('page_head_badges', f);
}

async function promptView(app, nCtx, vocab) {
  const { page } = app;
  await watchMainThread(page);
  // 1024 tokens of text: a repeated stretch of random-looking ids (so induction has something to do).
  const ids = Array.from({ length: nCtx }, (_, i) => ((i % 300) * 7919 + 13) % vocab);
  const text = ids.map((i) => `t${i}`).join(' ');
  await resetFrameStats(page);
  await mainThreadSince(page);
  const t0 = await page.evaluate((text) => {
    const t = performance.now();
    const r = Module.ccall('cs_set_selections', 'string', ['string'], [JSON.stringify({ prompt: { text } })]);
    if (r) throw new Error(`cs_set_selections: ${r}`);
    Module.ccall('cs_open_view', null, ['string'], ['prompt']);
    return t;
  }, text);
  const first = await page.waitForFunction(() => {
    const s = window.circuitscopeShell.state();
    return s.open_view === 'prompt' && s.views.prompt.results.run.freshness === 'current' ? performance.now() : false;
  }, null, { polling: 'raf', timeout: 900000 });
  ms('page_prompt_first_result', (await first.jsonValue()) - t0);
  const all = await page.waitForFunction(() => {
    const s = window.circuitscopeShell.state();
    return s.views.prompt.results.split.freshness === 'current' ? performance.now() : false;
  }, null, { polling: 'raf', timeout: 900000 });
  const st = await getState(page);
  if (st.error) throw new Error(`prompt: ${st.error}`);
  if (st.views.prompt.results.run.value.ids.length !== nCtx) throw new Error('prompt: not n_ctx tokens');
  report('page_prompt_1024', { ms: (await all.jsonValue()) - t0, f: await frameStats(page), main: await mainThreadSince(page) });
  report('page_prompt_ablate', await untilDone(page, null, { prompt: { text, ablate: ['1.3'] } }, () => {
    const s = window.circuitscopeShell.state();
    const a = s.views.prompt.results.ablated;
    return a.freshness === 'current' && a.value ? performance.now() : false;
  }, 900000));
}

async function main() {
  if (!existsSync(join(distDir, 'circuitscope.wasm'))) throw new Error(`${distDir}/circuitscope.wasm not found: build the page first`);
  if (!existsSync(cliPath)) throw new Error(`CLI not found at ${cliPath} (set CIRCUITSCOPE_CLI)`);
  // PAGE_BENCH_ONLY=one_layer: the f32 load and the one-layer views only;
  // PAGE_BENCH_ONLY=prompt: the f32 load, the head badges and the Prompt view only;
  // PAGE_BENCH_ONLY=two_layer: the f32 load, the head badges and the two-layer views only.
  const onlyOneLayer = process.env.PAGE_BENCH_ONLY === 'one_layer';
  const onlyPrompt = process.env.PAGE_BENCH_ONLY === 'prompt';
  const onlyTwoLayer = process.env.PAGE_BENCH_ONLY === 'two_layer';
  if (!onlyOneLayer && !onlyPrompt && !onlyTwoLayer) {
    gzipSizes();
    await firstFrame();
  }

  const tmp = mkdtempSync(join(tmpdir(), 'circuitscope-page-bench-'));
  try {
    const shape = ['--layers', '2', '--d-model', '512', '--heads', '8', '--d-head', '64', '--ctx', '1024',
      '--vocab', '48262', '--norm', 'LN', '--pos', 'standard', '--seed', '1234', '--std', '0.05'];
    for (const kind of onlyOneLayer || onlyPrompt || onlyTwoLayer ? ['f32'] : ['f32', 'f16']) {
      const dir = join(tmp, kind);
      execFileSync(cliPath, ['make-random', dir, ...shape, ...(kind === 'f16' ? ['--f16'] : [])], { stdio: ['ignore', 'ignore', 'inherit'] });
      if (kind === 'f32') writeFileSync(join(dir, 'tokenizer.json'), wordLevelTokenizer(48262));
      log(`${kind}: ${round(statSync(join(dir, 'model.safetensors')).size / 1e6)} MB`);
      const app = await loadToy(kind, dir);
      try {
        if (kind === 'f32' && (onlyPrompt || onlyTwoLayer)) {
          await badges(app);
          if (onlyPrompt) await promptView(app, 1024, 48262);
          else await twoLayerViews(app);
        } else if (kind === 'f32') {
          await badges(app);
          if (!onlyOneLayer) {
            await queries(app);
            await app.page.evaluate(() => Module.ccall('cs_set_raw', null, ['number'], [0]));
            await waitIdle(app.page, { timeout: 300000 });
          }
          await oneLayerViews(app);
          if (!onlyOneLayer) {
            await twoLayerViews(app);
            await promptView(app, 1024, 48262);
          }
        }
      } finally {
        await app.close();
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  console.log(JSON.stringify({ benchmarks: ISOLATED ? out.map((b) => ({ ...b, name: `${b.name}_workers` })) : out }));
}

main().catch((e) => {
  console.error(`page_bench: ${e.stack || e}`);
  process.exit(1);
});

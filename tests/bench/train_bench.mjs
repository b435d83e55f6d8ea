// Training speed side by side, one run (node tests/bench/train_bench.mjs;
// scripts/bench runs it too): the Train view's repeated-tokens preset
// (src/app/train_run.cpp: 2 layers, d_model 64, 4 heads, n_ctx 128, batch 8
// in 8 groups of one sequence, 256 token ids) trained
//   - natively by `circuitscope train` on one core (taskset -c 0) with the
//     preset's 8 groups (its arithmetic), with 1 thread (one group of 8: the
//     fastest single-thread setting), and with every core;
//   - in wasm under Node by the Node build of the CLI (circuitscope-node.js),
//     8 groups one after the other as in the page, and 1 group of 8 (the
//     arithmetic of native's 1 thread: single thread against single thread);
//   - in the page (headless Chromium, the Train tab's own job),
// reporting tokens per second of update time (the page's "tokens/s while
// updating"; the CLI's log over a run with no evaluation until the end; the
// best of 3 runs for the CLI, the machine being shared), and in the page the
// time from pressing Train to the phase change (best prefix-matching score
// above 0.5) of the whole preset.
// Environment: CIRCUITSCOPE_CLI (native binary), CIRCUITSCOPE_WASM_JS (Node
// build), CIRCUITSCOPE_DIST (the page). Prints a markdown table on stdout
// (scripts/bench prints it under its own); nothing is asserted.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { center, cliPath, openPage, openTab, waitForState, waitFrames } from '../browser/harness.mjs';

const UPDATES = 300;
const work = mkdtempSync(join(tmpdir(), 'cs-train-bench-'));
const wasmJs = process.env.CIRCUITSCOPE_WASM_JS || join(process.env.CIRCUITSCOPE_DIST || 'build-wasm/dist', '..', 'circuitscope-node.js');
const rows = [];
const log = (...a) => console.error(...a);

function cliRun(label, cmd, argv, threads) {
  let best = 0;
  for (let rep = 0; rep < 3; rep++) {
    const out = join(work, `${label}-${rep}`);
    const args = [...argv, 'train', '--out', out, '--vocab', '256', '--bos', '0', '--layers', '2', '--d-model', '64',
      '--heads', '4', '--d-head', '16', '--ctx', '128', '--batch', '8', '--lr', '2e-3', '--warmup', '100',
      '--schedule', 'constant', '--curriculum', `repeat:${UPDATES}:8-40`, '--steps', String(UPDATES), '--seed', '1',
      '--threads', String(threads), '--eval-every', '0', '--save-every', '0', '--log-every', String(UPDATES),
      '--no-progress'];
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${label}: ${r.stderr}`);
    const lines = readFileSync(join(out, 'train_log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    best = Math.max(best, lines.filter((l) => 'tokens_per_s' in l).at(-1).tokens_per_s);
  }
  log(`${label}: ${best} tokens/s (best of 3)`);
  rows.push({ name: `train_preset_tokens_per_s_${label}`, value: best, unit: 'tokens/s' });
}

try {
  cliRun('native_one_core_8_groups', 'taskset', ['-c', '0', cliPath], 8);
  cliRun('native_1_thread_1_group', cliPath, [], 1);
  cliRun(`native_${cpus().length}_cores_8_groups`, cliPath, [], 8);
  cliRun('wasm_node_8_groups', process.execPath, ['--no-experimental-fetch', wasmJs], 8);
  cliRun('wasm_node_1_group', process.execPath, ['--no-experimental-fetch', wasmJs], 1);

  const app = await openPage();
  try {
    const { page } = app;
    await waitForState(page, (x) => x.model && !x.loading.active, { what: 'the default model' });
    await openTab(page, 'train');
    await waitFrames(page, 3);
    const s0 = await waitForState(page, (x) => x.rects && x.rects.train_start, { what: 'Train' });
    await page.evaluate(() => Module.ccall('cs_frame_stats_reset', null, [], []));
    const c = center(s0.rects.train_start);
    const t0 = Date.now();
    await page.mouse.click(c.x, c.y);
    const train = (x) => x.views.train.results;
    const best = (x) => train(x).run?.evals.at(-1)?.best_prefix_matching ?? 0;
    const s = await waitForState(page, (x) => best(x) > 0.5 || train(x).status === 'finished',
      { what: 'the phase change', timeout: 900000 });
    const secs = (Date.now() - t0) / 1000;
    const run = train(s).run;
    const f = JSON.parse(await page.evaluate(() => Module.ccall('cs_frame_stats_json', 'string', [], [])));
    log(`page: ${Math.round(run.tokens_per_s)} tokens/s while updating; ${secs.toFixed(1)} s from Train to best ` +
      `prefix matching ${best(s).toFixed(2)} at update ${run.evals.at(-1).step}; ${run.step} updates, ` +
      `${(run.step / secs).toFixed(1)} updates/s of wall time; longest frame work ${f.max_work_ms.toFixed(1)} ms`);
    rows.push({ name: 'train_preset_tokens_per_s_page', value: Math.round(run.tokens_per_s), unit: 'tokens/s' });
    rows.push({ name: 'train_preset_page_updates_per_s_wall', value: +(run.step / secs).toFixed(2), unit: 'updates/s' });
    rows.push({ name: 'train_preset_page_train_to_induction_head', value: +secs.toFixed(1), unit: 's' });
    rows.push({ name: 'train_preset_page_induction_head_at_update', value: run.evals.at(-1).step, unit: 'updates' });
    rows.push({ name: 'train_preset_page_max_frame_work', value: +f.max_work_ms.toFixed(1), unit: 'ms' });
  } finally {
    await app.close();
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
const native1 = rows.find((r) => r.name === 'train_preset_tokens_per_s_native_one_core_8_groups').value;
console.log('| training, the Train tab\'s preset (2 layers, d_model 64, 8 x 128 tokens per update) | value | / native one core |');
console.log('|---|---|---|');
for (const r of rows) {
  const ratio = r.unit === 'tokens/s' ? (r.value / native1).toFixed(2) : '';
  console.log(`| ${r.name} | ${r.value} ${r.unit} | ${ratio} |`);
}

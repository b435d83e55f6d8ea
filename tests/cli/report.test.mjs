// `circuitscope report` (core/report.h, docs/exports.md): the whole analysis
// of a model in one JSON, each section what its own command prints with the
// arguments the report names ("commands"), for every bundled model; options
// carry through; the text summary lists the heads the numbers say; bad input
// exits non-zero with one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import { assertDeepNear, cli, cliJson, SOURCE_DIR } from './helpers.mjs';

const MODELS = path.join(SOURCE_DIR, 'assets/models');
const SECTIONS = ['info', 'heads', 'composition', 'virtual', 'induction'];

// Each section against its command, run in its own process with the report's arguments.
function checkSections(model, report) {
  assert.equal(report.report, 'circuitscope analysis report');
  assert.equal(report.version, 1);
  assert.deepEqual(Object.keys(report), ['report', 'version', 'commands', ...SECTIONS]);
  for (const s of SECTIONS) {
    const args = report.commands[s].split(' ');
    assert.ok(args.includes('--json'), `${s}: ${report.commands[s]}`);
    const alone = cliJson([s, model, ...args]);
    // Two processes hold the weights at different addresses; float sums may
    // round differently in the last digits (tests/cli/pth.test.mjs).
    assertDeepNear(report[s], alone, 1e-5, `${path.basename(model)} ${s}`);
  }
}

for (const id of ['attn-only-0l', 'attn-only-1l', 'attn-only-2l', 'demo']) {
  test(`${id}: each section of the report is what its command prints`, { timeout: 240000 }, () => {
    const model = path.join(MODELS, id);
    const report = cliJson(['report', model, '--json']);
    checkSections(model, report);
    const info = cliJson(['info', model, '--json']);
    const L = info.config.n_layers, H = info.config.n_heads;
    // The defaults: processed weights, W_E normalized, the diagonal test, 20 virtual heads.
    assert.equal(report.commands.heads, '--json');
    assert.equal(report.heads.heads.length, L * H);
    assert.equal(report.virtual.count, L < 2 ? 0 : (L * (L - 1) / 2) * H * H);
    assert.equal(report.virtual.virtual_heads.length, Math.min(20, report.virtual.count));
    assert.equal(report.induction.k_term === null, L < 2);
    // [I]'s experiment with the CLI's own defaults when n_ctx has room (every bundled model has).
    assert.equal(report.commands.induction, '--json --tokens 25 --repeats 4 --examples 10 --seed 0');
  });
}

test('options carry through to every section', { timeout: 240000 }, () => {
  const model = path.join(MODELS, 'attn-only-2l');
  const report = cliJson(['report', model, '--json', '--raw', '--no-embed-norm', '--no-diagonal', '--top', '3']);
  assert.equal(report.commands.heads, '--json --raw --no-embed-norm --no-diagonal');
  assert.equal(report.commands.virtual, '--json --raw --no-embed-norm --top 3');
  assert.equal(report.info.weights, 'raw');
  assert.equal(report.heads.embed_norm, false);
  assert.ok(report.heads.heads.every((h) => h.ov_diagonal_top1 === null), 'no diagonal test');
  assert.equal(report.virtual.virtual_heads.length, 3);
  checkSections(model, report);
});

test('the text summary lists the heads the numbers single out', { timeout: 240000 }, () => {
  const model = path.join(MODELS, 'attn-only-2l');
  const r = cli(['report', model]);
  assert.equal(r.code, 0, r.stderr);
  const report = cliJson(['report', model, '--json']);
  // Heads at or above a threshold, highest first, by a loop here.
  const over = (m, at) => m.flatMap((row, l) => row.map((v, h) => [v, `${l}.${h}`]))
    .filter(([v]) => v !== null && v >= at).sort((a, b) => b[0] - a[0]).map(([, n]) => n);
  const line = (start) => r.stdout.split('\n').find((x) => x.startsWith(start)) || '';
  const named = (text) => [...text.matchAll(/(\d+\.\d+) \(/g)].map((m) => m[1]);
  const induction = over(report.induction.prefix_matching, 0.4);
  assert.ok(induction.length > 0, 'the bundled 2-layer model has induction heads');
  assert.deepEqual(named(line('induction heads')), induction);
  assert.deepEqual(named(line('previous-token heads')), over(report.induction.previous_token, 0.4));
  const ov = [[], []];
  for (const h of report.heads.heads) ov[h.layer][h.head] = h.ov_copying_score;
  assert.deepEqual(named(line('copying heads')), over(ov, 0.7));
  assert.match(r.stdout, /strongest K-composition: 0\.\d+ -> 1\.\d+/);
});

test('bad input exits non-zero with one line', () => {
  for (const [args, code, text] of [
    [['report', path.join(MODELS, 'no-such-model'), '--json'], 1, /no-such-model/],
    [['report', path.join(MODELS, 'attn-only-1l'), '--top', '-1'], 2, /--top/],
    [['report'], 2, /MODEL/],
  ]) {
    const r = cli(args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, text);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  }
});

// `--threads N` (src/cli/main.cpp; core/sliced.h analysis_threads): any
// analysis command takes it, the numbers printed do not depend on it (the
// same text to the last digit), and a bad value exits 2 with one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import { cli, SOURCE_DIR } from './helpers.mjs';

const MODEL = path.join(SOURCE_DIR, 'assets/models/attn-only-2l');

function out(args) {
  const r = cli(args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('the output is the same on one thread and on several', { timeout: 300000 }, () => {
  const ids = Array.from({ length: 128 }, (_, i) => (i * 37) % 2048).join(',');
  for (const args of [
    ['run', MODEL, '--ids', ids, '--json', '--logits', '--patterns'],
    ['report', MODEL, '--json'],
    ['bigrams', MODEL, '--id', '276', '--reverse', '--json'],
  ]) {
    const one = out([...args, '--threads', '1']);
    assert.ok(one.length > 1000);
    assert.equal(out([...args, '--threads', '3']), one, `${args[0]}: --threads 3`);
    assert.equal(out([...args, '--threads=2']), one, `${args[0]}: --threads=2`);
  }
});

test('a bad thread count exits 2 with one line', () => {
  for (const args of [['heads', MODEL, '--threads', '0'], ['heads', MODEL, '--threads', 'many'], ['info', MODEL, '--threads']]) {
    const r = cli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /--threads/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  }
});

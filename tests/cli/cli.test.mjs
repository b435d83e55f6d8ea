// CLI tests (node --test): info / run / bigrams / make-random / make-demo and
// error handling of the native `circuitscope`, with numbers checked against
// computations done here (reference forward pass, softmax, sorting).
// Environment: CIRCUITSCOPE_BIN (the binary), CIRCUITSCOPE_SOURCE_DIR.
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';

import {
  cli, cliJson, DEMO, logSoftmax, maxRelDiff, readSafetensors, referenceForward, tempDir,
} from './helpers.mjs';

const work = tempDir();

// Small random models written by make-random (cs::randomize weights).
const MODELS = {
  ln: { dir: path.join(work, 'ln'), args: ['--layers', '2', '--d-model', '24', '--heads', '3', '--d-head', '8', '--ctx', '16', '--vocab', '40', '--pos', 'standard', '--norm', 'LN', '--seed', '7'] },
  short: { dir: path.join(work, 'short'), args: ['--layers', '2', '--d-model', '16', '--heads', '2', '--d-head', '8', '--ctx', '12', '--vocab', '30', '--pos', 'shortformer', '--norm', 'LN', '--seed', '11'] },
  plain: { dir: path.join(work, 'plain'), args: ['--layers', '1', '--d-model', '16', '--heads', '4', '--d-head', '4', '--ctx', '10', '--vocab', '20', '--pos', 'none', '--norm', 'none', '--seed', '5', '--std', '0.3'] },
  // Zero layers, no positions: the forward pass of one token IS the direct path.
  zero: { dir: path.join(work, 'zero'), args: ['--layers', '0', '--d-model', '16', '--heads', '2', '--d-head', '8', '--ctx', '64', '--vocab', '37', '--pos', 'none', '--norm', 'LN', '--seed', '3', '--std', '0.5'] },
};

before(() => {
  for (const m of Object.values(MODELS)) {
    const r = cli(['make-random', m.dir, ...m.args]);
    assert.equal(r.code, 0, r.stderr);
  }
});

const argVal = (args, name) => args[args.indexOf(name) + 1];
const range = (n) => Array.from({ length: n }, (_, i) => i);

describe('info', () => {
  test('config, parameter count and processing of a random LN model', () => {
    const m = MODELS.ln;
    const j = cliJson(['info', m.dir, '--json']);
    assert.deepEqual(Object.keys(j).slice(0, 6), ['config', 'parameters', 'weights', 'processing', 'tokenizer', 'warnings']);
    const c = j.config;
    assert.equal(c.n_layers, 2);
    assert.equal(c.d_model, 24);
    assert.equal(c.n_heads, 3);
    assert.equal(c.d_head, 8);
    assert.equal(c.n_ctx, 16);
    assert.equal(c.d_vocab, 40);
    assert.equal(c.d_vocab_out, 40);
    assert.ok(Math.abs(c.attn_scale - Math.sqrt(8)) < 1e-6);
    assert.equal(c.positional_embedding_type, 'standard');
    // fold_ln turns LN into LNPre when processing.
    assert.equal(c.normalization_type, 'LNPre');
    assert.ok(Math.abs(c.eps - 1e-5) < 1e-10);
    // Parameters counted from the TransformerLens shapes (docs/model.md).
    const [L, D, H, Dh, C, V] = [2, 24, 3, 8, 16, 40];
    const perLayer = 4 * H * D * Dh + 3 * H * Dh + D + 2 * D;  // W_QKVO, b_QKV, b_O, ln1.w/b
    // fold_ln leaves LNPre, which has no ln1/ln_final weights to count.
    assert.equal(j.parameters, V * D + C * D + L * (perLayer - 2 * D) + D * V + V);
    assert.equal(j.weights, 'processed');
    assert.match(j.processing, /fold_ln/);
    assert.match(j.processing, /center_unembed/);
    assert.equal(j.tokenizer, null);
    assert.deepEqual(j.warnings, []);
  });

  test('--raw keeps the weights as stored', () => {
    const j = cliJson(['info', MODELS.ln.dir, '--json', '--raw']);
    assert.equal(j.weights, 'raw');
    const [L, D, H, Dh, C, V] = [2, 24, 3, 8, 16, 40];
    const perLayer = 4 * H * D * Dh + 3 * H * Dh + D + 2 * D;  // W_QKVO, b_QKV, b_O, ln1.w/b
    assert.equal(j.parameters, V * D + C * D + L * perLayer + 2 * D + D * V + V);
    assert.equal(j.config.normalization_type, 'LN');
    assert.doesNotMatch(j.processing, /fold_ln/);
  });

  test('demo model: byte-level tokenizer with BOS 256', () => {
    const j = cliJson(['info', DEMO, '--json']);
    assert.equal(j.config.n_layers, 2);
    assert.equal(j.config.d_model, 64);
    assert.equal(j.config.n_heads, 4);
    assert.equal(j.config.d_head, 16);
    assert.equal(j.config.n_ctx, 256);
    assert.equal(j.config.d_vocab, 257);
    assert.equal(j.config.normalization_type, null);
    assert.equal(j.tokenizer.vocab_size, 257);
    assert.equal(j.tokenizer.bos_id, 256);
    assert.equal(typeof j.tokenizer.kind, 'string');
  });

  test('a single .safetensors file is a model too (config from __metadata__)', () => {
    const j = cliJson(['info', path.join(MODELS.ln.dir, 'model.safetensors'), '--json']);
    assert.equal(j.config.d_model, 24);
    assert.equal(j.config.n_layers, 2);
  });

  test('text card', () => {
    const r = cli(['info', MODELS.ln.dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /parameters/);
    assert.match(r.stdout, /3 heads of 8/);
  });
});

describe('run', () => {
  for (const key of ['ln', 'short', 'plain']) {
    test(`--raw logits and patterns equal a reference forward pass (${key})`, () => {
      const m = MODELS[key];
      const T = Math.min(9, Number(argVal(m.args, '--ctx')));
      const V = Number(argVal(m.args, '--vocab'));
      const ids = range(T).map((i) => (i * 7 + 3) % V);
      const j = cliJson(['run', m.dir, '--ids', ids.join(','), '--json', '--logits', '--patterns', '--raw']);
      const cfg = cliJson(['info', m.dir, '--json', '--raw']).config;
      const { tensors } = readSafetensors(path.join(m.dir, 'model.safetensors'));
      const ref = referenceForward(tensors, cfg, ids);
      assert.deepEqual(j.ids, ids);
      assert.equal(j.weights, 'raw');
      assert.ok(maxRelDiff(j.logits, ref.logits, 1e-2) < 1e-4, 'logits differ from the reference');
      assert.ok(maxRelDiff(j.patterns, ref.patterns, 1e-2) < 1e-4, 'patterns differ from the reference');
    });
  }

  test('loss is the mean next-token loss of the returned logits', () => {
    const ids = [3, 1, 4, 1, 5, 9, 2, 6];
    const j = cliJson(['run', MODELS.ln.dir, '--ids', ids.join(','), '--json', '--logits']);
    assert.equal(j.logits.length, ids.length);
    assert.equal(j.logits[0].length, 40);
    let sum = 0;
    for (let t = 0; t + 1 < ids.length; t++) sum -= logSoftmax(j.logits[t])[ids[t + 1]];
    const loss = sum / (ids.length - 1);
    assert.ok(Math.abs(j.loss - loss) < 1e-5 * Math.max(1, loss), `${j.loss} vs ${loss}`);
    assert.deepEqual(j.tokens, ids.map((i) => `#${i}`));
    assert.equal(j.patterns, undefined);
  });

  test('patterns: [layer][head][query][key], causal, rows sum to 1', () => {
    const ids = [0, 5, 10, 15, 20, 25];
    const j = cliJson(['run', MODELS.ln.dir, '--ids', ids.join(','), '--json', '--patterns']);
    assert.equal(j.patterns.length, 2);
    assert.equal(j.patterns[0].length, 3);
    for (const layer of j.patterns) for (const A of layer) {
      assert.equal(A.length, ids.length);
      A.forEach((row, i) => {
        assert.equal(row.length, ids.length);
        row.forEach((v, k) => { if (k > i) assert.equal(v, 0); else assert.ok(v >= 0); });
        assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5);
      });
    }
  });

  for (const key of ['ln', 'short', 'plain']) {
    test(`processing changes the logits but not log-softmax or loss (--raw differs from processed, ${key})`, () => {
      const ids = [1, 2, 3, 4, 5, 6, 7];
      const p = cliJson(['run', MODELS[key].dir, '--ids', ids.join(','), '--json', '--logits']);
      const r = cliJson(['run', MODELS[key].dir, '--ids', ids.join(','), '--json', '--logits', '--raw']);
      assert.equal(p.weights, 'processed');
      assert.equal(r.weights, 'raw');
      assert.ok(maxRelDiff(p.logits, r.logits) > 1e-3, 'processed and raw logits should differ');
      assert.ok(maxRelDiff(p.logits.map(logSoftmax), r.logits.map(logSoftmax), 1) < 1e-4);
      assert.ok(Math.abs(p.loss - r.loss) < 1e-4);
    });
  }

  test('one token: loss is null', () => {
    const j = cliJson(['run', MODELS.ln.dir, '--ids', '4', '--json']);
    assert.equal(j.loss, null);
    assert.deepEqual(j.losses, []);
  });

  test('--text on the demo model: byte ids with BOS prepended, --no-bos without', () => {
    const text = 'Hello, world\n';
    const bytes = [...Buffer.from(text, 'utf8')];
    const j = cliJson(['run', DEMO, '--text', text, '--json']);
    assert.deepEqual(j.ids, [256, ...bytes]);
    assert.equal(j.tokens.length, bytes.length + 1);
    assert.equal(j.tokens[1], 'H');
    assert.equal(j.tokens[7], '␣');
    assert.equal(j.tokens[bytes.length], '↵');
    assert.ok(j.loss > 0 && j.loss < Math.log(257), `loss ${j.loss} should beat uniform`);
    const n = cliJson(['run', DEMO, '--text', text, '--json', '--no-bos']);
    assert.deepEqual(n.ids, bytes);
  });

  test('text output', () => {
    const r = cli(['run', DEMO, '--text', 'the']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /mean loss/);
  });
});

describe('bigrams', () => {
  // The zero-layer model's whole bigram table, from one forward pass over
  // every token (no positions, no layers: row t = direct path of token t).
  const V = 37;
  let table;
  before(() => {
    table = cliJson(['run', MODELS.zero.dir, '--ids', range(V).join(','), '--json', '--logits']).logits;
  });

  test('top-k next tokens: the k largest of the row, sorted, softmax probabilities', () => {
    for (const src of [0, 5, 36]) {
      const j = cliJson(['bigrams', MODELS.zero.dir, '--id', String(src), '--top', '6', '--json']);
      assert.deepEqual(j.source, { id: src, token: `#${src}` });
      assert.equal(j.weights, 'processed');
      const row = table[src];
      const expected = range(V).sort((a, b) => row[b] - row[a]).slice(0, 6);
      assert.deepEqual(j.next.map((e) => e.id), expected);
      const lp = logSoftmax(row);
      for (const e of j.next) {
        assert.ok(Math.abs(e.logit - row[e.id]) < 1e-4 * Math.max(1, Math.abs(row[e.id])));
        assert.ok(Math.abs(e.prob - Math.exp(lp[e.id])) < 1e-5);
        assert.equal(e.token, `#${e.id}`);
      }
      for (let i = 1; i < j.next.length; i++) assert.ok(j.next[i - 1].logit >= j.next[i].logit);
      assert.ok(j.next.reduce((s, e) => s + e.prob, 0) <= 1 + 1e-6);
    }
  });

  test('--top larger than the vocabulary: all tokens, probabilities sum to 1', () => {
    const j = cliJson(['bigrams', MODELS.zero.dir, '--id', '2', '--top', '1000', '--json']);
    assert.equal(j.next.length, V);
    assert.ok(Math.abs(j.next.reduce((s, e) => s + e.prob, 0) - 1) < 1e-4);
  });

  test('--reverse: the sources giving the next token the highest logit', () => {
    for (const next of [0, 11, 30]) {
      const j = cliJson(['bigrams', MODELS.zero.dir, '--id', String(next), '--top', '5', '--reverse', '--json']);
      assert.deepEqual(j.next_token, { id: next, token: `#${next}` });
      assert.equal(j.next, undefined);
      const expected = range(V).sort((a, b) => table[b][next] - table[a][next]).slice(0, 5);
      assert.deepEqual(j.sources.map((e) => e.id), expected);
      for (const e of j.sources) {
        assert.ok(Math.abs(e.logit - table[e.id][next]) < 1e-4 * Math.max(1, Math.abs(e.logit)));
        assert.ok(Math.abs(e.prob - Math.exp(logSoftmax(table[e.id])[next])) < 1e-5);
      }
    }
  });

  test('--raw direct path differs from processed (center_unembed), same softmax', () => {
    const p = cliJson(['bigrams', MODELS.ln.dir, '--id', '3', '--top', '40', '--json']);
    const r = cliJson(['bigrams', MODELS.ln.dir, '--id', '3', '--top', '40', '--json', '--raw']);
    assert.equal(r.weights, 'raw');
    const byId = (list) => Object.fromEntries(list.map((e) => [e.id, e]));
    const P = byId(p.next), R = byId(r.next);
    let maxLogitDiff = 0;
    for (let i = 0; i < 40; i++) {
      maxLogitDiff = Math.max(maxLogitDiff, Math.abs(P[i].logit - R[i].logit));
      assert.ok(Math.abs(P[i].prob - R[i].prob) < 1e-5);
    }
    assert.ok(maxLogitDiff > 1e-3);
  });

  test('demo model: --token by text, by vocabulary string, and reverse', () => {
    const q = cliJson(['bigrams', DEMO, '--token', 'q', '--top', '3', '--json']);
    assert.deepEqual(q.source, { id: 113, token: 'q' });
    assert.equal(q.next[0].id, 'u'.charCodeAt(0), 'in English license texts q is followed by u');
    // GPT-2 byte-level vocabulary string for the space byte.
    const sp = cliJson(['bigrams', DEMO, '--token', 'Ġ', '--top', '1', '--json']);
    assert.equal(sp.source.id, 32);
    const rev = cliJson(['bigrams', DEMO, '--token', 'u', '--top', '3', '--reverse', '--json']);
    assert.equal(rev.next_token.id, 117);
    // Each listed source's prob is p(u | source) of the forward query.
    for (const s of rev.sources) {
      const fwd = cliJson(['bigrams', DEMO, '--id', String(s.id), '--top', '257', '--json']);
      const u = fwd.next.find((e) => e.id === 117);
      assert.ok(Math.abs(u.prob - s.prob) < 1e-6 && Math.abs(u.logit - s.logit) < 1e-4);
    }
  });

  test('--token of several tokens is an error naming the count', () => {
    const r = cli(['bigrams', DEMO, '--token', 'abc', '--json']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^circuitscope: --token 'abc' is 3 tokens/);
  });
});

describe('demo model', () => {
  test('the direct path predicts the most frequent next byte of the license texts', () => {
    // Byte bigram counts of the same corpus, counted here.
    const dir = '/usr/share/common-licenses';
    const counts = Array.from({ length: 257 }, () => new Float64Array(257));
    for (const name of readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      if (!lstatSync(p).isFile()) continue;
      let prev = 256;
      for (const b of readFileSync(p)) { counts[prev][b]++; prev = b; }
    }
    let agree = 0, total = 0;
    for (let a = 0; a < 256; a++) {
      const n = counts[a].reduce((s, v) => s + v, 0);
      if (n < 500) continue;
      const best = counts[a].indexOf(Math.max(...counts[a]));
      const j = cliJson(['bigrams', DEMO, '--id', String(a), '--top', '1', '--json']);
      total++;
      if (j.next[0].id === best) agree++;
    }
    assert.ok(total > 30);
    assert.ok(agree / total > 0.9, `top-1 agreement ${agree}/${total}`);
  });

  test('make-demo on a small corpus learns its bigrams', (t) => {
    const d = tempDir(t);
    const corpus = path.join(d, 'corpus');
    mkdirSync(corpus);
    writeFileSync(path.join(corpus, 'a.txt'), 'xy'.repeat(200) + 'xz');
    writeFileSync(path.join(corpus, 'b.txt'), 'qqqqqqqqqqqqqqqqqqqqqk');
    const out = path.join(d, 'demo');
    const r = cli(['make-demo', out, '--corpus', corpus]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(cliJson(['bigrams', out, '--token', 'x', '--top', '1', '--json']).next[0].id, 'y'.charCodeAt(0));
    assert.equal(cliJson(['bigrams', out, '--token', 'y', '--top', '1', '--json']).next[0].id, 'x'.charCodeAt(0));
    assert.equal(cliJson(['bigrams', out, '--token', 'q', '--top', '1', '--json']).next[0].id, 'q'.charCodeAt(0));
    const info = cliJson(['info', out, '--json']);
    assert.equal(info.tokenizer.bos_id, 256);
    const cfg = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
    assert.match(cfg.description, /bigram/);
  });
});

describe('bad input: exit code, one stderr line, nothing on stdout', () => {
  const expectFail = (args, code, pattern) => {
    const r = cli(args);
    assert.equal(r.code, code, `exit code of ${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, `stderr: ${r.stderr}`);
    assert.match(lines[0], /^circuitscope: /);
    assert.match(lines[0], pattern);
  };

  test('missing model file', () => expectFail(['info', path.join(work, 'nope.safetensors'), '--json'], 1, /nope\.safetensors/));
  test('truncated safetensors', (t) => {
    const d = tempDir(t);
    const bytes = readFileSync(path.join(MODELS.ln.dir, 'model.safetensors'));
    const f = path.join(d, 'cut.safetensors');
    writeFileSync(f, bytes.subarray(0, bytes.length - 100));
    expectFail(['info', f, '--json'], 1, /safetensors/);
    writeFileSync(f, bytes.subarray(0, 5));
    expectFail(['run', f, '--ids', '1', '--json'], 1, /safetensors/);
  });
  test('bad --ids', () => expectFail(['run', MODELS.ln.dir, '--ids', '1,x,3', '--json'], 2, /--ids/));
  test('empty --ids item', () => expectFail(['run', MODELS.ln.dir, '--ids', '1,,3', '--json'], 2, /--ids/));
  test('--ids out of the vocabulary', () => expectFail(['run', MODELS.ln.dir, '--ids', '1,40', '--json'], 1, /40/));
  test('more tokens than n_ctx', () => expectFail(['run', MODELS.ln.dir, '--ids', range(17).join(','), '--json'], 1, /n_ctx|16|17/));
  test('unknown subcommand', () => expectFail(['frobnicate', MODELS.ln.dir], 2, /frobnicate/));
  test('no subcommand', () => expectFail([], 2, /command/));
  test('unknown option', () => expectFail(['info', MODELS.ln.dir, '--jsn'], 2, /--jsn/));
  test('missing MODEL', () => expectFail(['info', '--json'], 2, /MODEL/));
  test('--text without a tokenizer', () => expectFail(['run', MODELS.ln.dir, '--text', 'hi', '--json'], 1, /tokenizer/));
  test('--text and --ids together', () => expectFail(['run', DEMO, '--text', 'hi', '--ids', '1', '--json'], 2, /--text|--ids/));
  test('bigrams --id out of range', () => expectFail(['bigrams', MODELS.ln.dir, '--id', '40', '--json'], 1, /--id 40/));
  test('bigrams --top 0', () => expectFail(['bigrams', MODELS.ln.dir, '--id', '1', '--top', '0', '--json'], 2, /--top/));
  test('folder without a model', (t) => {
    const d = tempDir(t);
    writeFileSync(path.join(d, 'notes.txt'), 'hello');
    expectFail(['info', d, '--json'], 1, /.+/);
  });
  test('make-random with a bad --pos', () => expectFail(['make-random', path.join(work, 'x'), '--pos', 'rotary'], 2, /--pos/));
});

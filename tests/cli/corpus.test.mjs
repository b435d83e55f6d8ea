// CLI tests of `circuitscope tokenizer-train` and `circuitscope encode` on a
// tiny corpus: the merges against a naive byte-level BPE written here (with
// JavaScript's own regex engine for the GPT-2 pre-tokenizer), the id file
// decoded here with the written vocabulary, and the bad-input messages.
// Environment: CIRCUITSCOPE_BIN (the binary), CIRCUITSCOPE_SOURCE_DIR.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';

import { cli, cliJson, tempDir } from './helpers.mjs';

const EOT = '<|endoftext|>';
const work = tempDir();
const DOCS = [
  'def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n',
  'The head attends to the previous token. The head copies the token.\n',
  "It's the token's successor; they'll see it, we're sure.\n  indented line\n\n\nend\n",
  'caf\u00e9 na\u00efve r\u00e9sum\u00e9 caf\u00e9 \u00e0 la carte\n',
  'x = x + 1\nx = x + 1\nx = x + 1\ny = x * 2\n',
];
const CORPUS_TEXT = DOCS.map((d) => EOT + d).join('').repeat(3);
const corpus = path.join(work, 'corpus.txt');
writeFileSync(corpus, CORPUS_TEXT);

// ---- an independent byte-level BPE -------------------------------------------
const GPT2 = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

function words(text) {
  const counts = new Map();
  for (const seg of text.split(EOT)) {
    for (const m of seg.match(GPT2) || []) counts.set(m, (counts.get(m) || 0) + 1);
  }
  return counts;
}

// Merges as [leftId, rightId, resultId]; ties -> the smaller (left, right).
function naiveBpe(text, vocabSize) {
  const bytes = [];
  for (let b = 0; b < 256; b++) bytes.push(Buffer.from([b]).toString('latin1'));
  bytes.push(null);  // 256: <|endoftext|>
  const ws = [...words(text)].map(([w, c]) => [[...Buffer.from(w, 'utf8')], c]);
  const merges = [];
  while (bytes.length < vocabSize) {
    const pairs = new Map();
    for (const [s, c] of ws) for (let i = 0; i + 1 < s.length; i++) {
      const k = s[i] * 65536 + s[i + 1];
      pairs.set(k, (pairs.get(k) || 0) + c);
    }
    let best = -1, bestCount = 0;
    for (const [k, c] of pairs) if (c > bestCount || (c === bestCount && k < best)) [best, bestCount] = [k, c];
    if (bestCount < 2) throw new Error('test corpus too small');
    const [a, b] = [Math.floor(best / 65536), best % 65536];
    const id = bytes.length;
    bytes.push(bytes[a] + bytes[b]);
    merges.push([a, b, id]);
    for (const w of ws) {
      const out = [];
      for (let i = 0; i < w[0].length;) {
        if (i + 1 < w[0].length && w[0][i] === a && w[0][i + 1] === b) { out.push(id); i += 2; } else out.push(w[0][i++]);
      }
      w[0] = out;
    }
  }
  return merges;
}

// GPT-2 byte <-> unicode alphabet, written out from its rule.
const printable = (b) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
const BYTE_CHAR = [];
for (let b = 0, n = 0; b < 256; b++) BYTE_CHAR.push(String.fromCodePoint(printable(b) ? b : 256 + n++));
const CHAR_BYTE = new Map(BYTE_CHAR.map((c, b) => [c, b]));
const tokenBytes = (s) => [...s].map((c) => CHAR_BYTE.get(c));

function readIds(file) {
  const side = JSON.parse(readFileSync(file + '.json', 'utf8'));
  const buf = readFileSync(file);
  assert.equal(side.dtype, 'uint16');
  assert.equal(buf.length, 2 * side.n_tokens);
  const ids = [];
  for (let i = 0; i < buf.length; i += 2) ids.push(buf.readUInt16LE(i));
  return { side, ids };
}

function expectError(args, code, pattern) {
  const r = cli(args);
  assert.equal(r.code, code, `exit code of ${args.join(' ')}: ${r.stderr}`);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one stderr line: ${r.stderr}`);
  assert.match(lines[0], /^circuitscope: /);
  assert.match(lines[0], pattern);
  return lines[0];
}

describe('tokenizer-train', () => {
  const tok = path.join(work, 'tokenizer.json');
  const VOCAB = 300;

  test('learns the merges of a naive BPE and writes a Hugging Face tokenizer.json', () => {
    const j = cliJson(['tokenizer-train', corpus, '--vocab', String(VOCAB), '--out', tok, '--json']);
    assert.equal(j.vocab_size, VOCAB);
    assert.equal(j.merges, VOCAB - 257);
    assert.equal(j.bos_id, 256);
    assert.equal(j.corpus_bytes, Buffer.byteLength(CORPUS_TEXT));
    assert.equal(j.special_tokens_in_corpus, DOCS.length * 3);
    assert.equal(j.distinct_words, words(CORPUS_TEXT).size);

    const t = JSON.parse(readFileSync(tok, 'utf8'));
    assert.equal(t.model.type, 'BPE');
    assert.equal(t.pre_tokenizer.type, 'ByteLevel');
    assert.equal(t.pre_tokenizer.add_prefix_space, false);
    assert.equal(t.decoder.type, 'ByteLevel');
    assert.deepEqual(t.added_tokens.map((a) => [a.id, a.content, a.special]), [[256, EOT, true]]);
    const byId = [];
    for (const [s, id] of Object.entries(t.model.vocab)) byId[id] = s;
    assert.equal(byId.length, VOCAB);
    for (let b = 0; b < 256; b++) assert.equal(byId[b], BYTE_CHAR[b]);
    // The merges, one by one, against the naive BPE.
    const want = naiveBpe(CORPUS_TEXT, VOCAB);
    assert.equal(t.model.merges.length, want.length);
    want.forEach(([a, b, id], k) => {
      assert.equal(t.model.merges[k], `${byId[a]} ${byId[b]}`, `merge ${k}`);
      assert.equal(byId[id], byId[a] + byId[b], `token ${id}`);
    });
  });

  test('text summary', () => {
    const r = cli(['tokenizer-train', corpus, '--vocab', '280', '--out', path.join(work, 't2.json')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /vocabulary 280: 256 bytes \+ 1 special \(BOS id 256\) \+ 23 merges/);
    assert.match(r.stdout, /bytes\/token/);
  });

  test('bad input: one clear line each', () => {
    const out = path.join(work, 'bad.json');
    expectError(['tokenizer-train', path.join(work, 'missing.txt'), '--vocab', '300', '--out', out], 1, /missing\.txt': no such file/);
    const empty = path.join(work, 'empty.txt');
    writeFileSync(empty, '');
    expectError(['tokenizer-train', empty, '--vocab', '300', '--out', out], 1, /empty\.txt': the file is empty/);
    expectError(['tokenizer-train', work, '--vocab', '300', '--out', out], 1, /is a folder/);
    const bad = path.join(work, 'latin1.txt');
    writeFileSync(bad, Buffer.concat([Buffer.from('plain text, then caf'), Buffer.from([0xe9]), Buffer.from(' au lait\n')]));
    expectError(['tokenizer-train', bad, '--vocab', '258', '--out', out], 1,
      /latin1\.txt': invalid UTF-8 at byte offset 20 \(byte 0xE9\).*--allow-invalid/);
    // --allow-invalid learns from the raw bytes.
    writeFileSync(bad, Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9]), Buffer.from(' caf'), Buffer.from([0xe9]), Buffer.from('\n')]));
    const ok = cliJson(['tokenizer-train', bad, '--vocab', '258', '--out', out, '--allow-invalid', '--json']);
    assert.equal(ok.vocab_size, 258);
    // More merges than the corpus supports.
    const msg = expectError(['tokenizer-train', corpus, '--vocab', '5000', '--out', out], 1,
      /vocab_size 5000 is more than the corpus supports: after \d+ merges no pair of tokens occurs 2 or more times, so the vocabulary stops at \d+; ask for at most \d+/);
    const most = Number(msg.match(/ask for at most (\d+)/)[1]);
    assert.equal(cliJson(['tokenizer-train', corpus, '--vocab', String(most), '--out', out, '--json']).vocab_size, most);
    expectError(['tokenizer-train', corpus, '--out', out], 2, /--vocab N is required/);
    expectError(['tokenizer-train', corpus, '--vocab', '100', '--out', out], 2, /--vocab/);
    expectError(['tokenizer-train', corpus, '--vocab', '300'], 2, /--out tokenizer\.json is required/);
    expectError(['tokenizer-train', corpus, '--vocab', '300', '--out', path.join(work, 'no', 'such', 'dir', 't.json')], 1,
      /cannot open for writing/);
  });
});

describe('encode', () => {
  const tok = path.join(work, 'enc-tokenizer.json');
  const ids = path.join(work, 'ids.bin');

  test('ids decode back to the corpus, fewer tokens than bytes, BOS per document', () => {
    cliJson(['tokenizer-train', corpus, '--vocab', '320', '--out', tok, '--json']);
    const j = cliJson(['encode', corpus, '--tokenizer', tok, '--out', ids, '--json']);
    const { side, ids: got } = readIds(ids);
    assert.equal(j.tokens, got.length);
    assert.equal(side.vocab_size, 320);
    assert.equal(side.bos_id, 256);
    assert.equal(side.source_bytes, Buffer.byteLength(CORPUS_TEXT));
    assert.ok(got.length < Buffer.byteLength(CORPUS_TEXT) / 2, `${got.length} tokens`);
    const t = JSON.parse(readFileSync(tok, 'utf8'));
    const byId = [];
    for (const [s, id] of Object.entries(t.model.vocab)) byId[id] = s;
    assert.equal(got.filter((x) => x === 256).length, DOCS.length * 3);
    const bytes = [];
    for (const id of got) {
      if (id === 256) bytes.push(...Buffer.from(EOT));
      else bytes.push(...tokenBytes(byId[id]));
    }
    assert.equal(Buffer.from(bytes).toString('utf8'), CORPUS_TEXT);
    // The same ids as `run` shows for a document (the reader's encode), model folder as --tokenizer.
    const dir = path.join(work, 'tokdir');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'tokenizer.json'), readFileSync(tok));
    const ids2 = path.join(work, 'ids2.bin');
    cliJson(['encode', corpus, '--tokenizer', dir, '--out', ids2, '--json', '--threads', '1']);
    assert.deepEqual(readIds(ids2).ids, got);
  });

  test('agrees with Hugging Face tokenizers (when @huggingface/tokenizers is installed)', async (t) => {
    let Tokenizer;
    try {
      ({ Tokenizer } = await import('@huggingface/tokenizers'));
    } catch {
      t.skip('@huggingface/tokenizers is not installed');
      return;
    }
    cliJson(['tokenizer-train', corpus, '--vocab', '320', '--out', tok, '--json']);
    cliJson(['encode', corpus, '--tokenizer', tok, '--out', ids, '--json']);
    const hf = new Tokenizer(JSON.parse(readFileSync(tok, 'utf8')), {});
    assert.deepEqual(hf.encode(CORPUS_TEXT, { add_special_tokens: false }).ids, readIds(ids).ids);
  });

  test('bad input: one clear line each', () => {
    cliJson(['tokenizer-train', corpus, '--vocab', '300', '--out', tok, '--json']);
    const out = path.join(work, 'bad.bin');
    expectError(['encode', path.join(work, 'missing.txt'), '--tokenizer', tok, '--out', out], 1, /missing\.txt': no such file/);
    const empty = path.join(work, 'empty2.txt');
    writeFileSync(empty, '');
    expectError(['encode', empty, '--tokenizer', tok, '--out', out], 1, /empty2\.txt': the file is empty/);
    const bad = path.join(work, 'bad2.txt');
    writeFileSync(bad, Buffer.concat([Buffer.from('line one\nline two\n'), Buffer.from([0xff, 0xfe]), Buffer.from('\n')]));
    expectError(['encode', bad, '--tokenizer', tok, '--out', out], 1, /bad2\.txt': invalid UTF-8 at byte offset 18 \(byte 0xFF\)/);
    const j = cliJson(['encode', bad, '--tokenizer', tok, '--out', out, '--allow-invalid', '--json']);
    assert.equal(j.corpus_bytes, 21);
    expectError(['encode', corpus, '--tokenizer', path.join(work, 'nope.json'), '--out', out], 1, /nope\.json': no such file/);
    const broken = path.join(work, 'broken.json');
    writeFileSync(broken, '{"model": {"type": "BPE"}}');
    expectError(['encode', corpus, '--tokenizer', broken, '--out', out], 1, /broken\.json': tokenizer\.json: model\.vocab is missing/);
    expectError(['encode', corpus, '--out', out], 2, /--tokenizer tokenizer\.json is required/);
    expectError(['encode', corpus, '--tokenizer', tok], 2, /--out ids\.bin is required/);
  });
});

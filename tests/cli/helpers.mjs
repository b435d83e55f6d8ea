// Shared helpers of the CLI tests: running the binary, reading safetensors,
// and an independent reference forward pass written here from docs/model.md
// (double precision, plain loops) to check the CLI's numbers against.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SOURCE_DIR = process.env.CIRCUITSCOPE_SOURCE_DIR ||
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = process.env.CIRCUITSCOPE_BIN || path.join(SOURCE_DIR, 'build/circuitscope');
export const WASM_JS = process.env.CIRCUITSCOPE_WASM_JS || '';
export const DEMO = path.join(SOURCE_DIR, 'assets/models/demo');

// Runs the native binary (or, with wasm = true, the Node build) with args.
export function cli(args, { wasm = false } = {}) {
  const [cmd, argv] = wasm
    ? [process.execPath, ['--no-experimental-fetch', WASM_JS, ...args]]
    : [BIN, args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// Runs and parses JSON output; fails loudly with stderr on a non-zero exit.
export function cliJson(args, opts) {
  const r = cli(args, opts);
  if (r.code !== 0) throw new Error(`circuitscope ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

export function tempDir(t) {
  const dir = mkdtempSync(path.join(tmpdir(), 'cs-cli-'));
  const clean = () => rmSync(dir, { recursive: true, force: true });
  if (t) t.after(clean);
  else process.on('exit', clean);
  return dir;
}

// safetensors: u64 LE header length, JSON header, raw little-endian data.
export function readSafetensors(file) {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const data = buf.subarray(8 + n);
  const tensors = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [b, e] = t.data_offsets;
    const bytes = data.subarray(b, e);
    let values;
    if (t.dtype === 'F32') {
      values = new Float64Array((e - b) / 4);
      for (let i = 0; i < values.length; i++) values[i] = bytes.readFloatLE(4 * i);
    } else if (t.dtype === 'F16') {
      values = new Float64Array((e - b) / 2);
      for (let i = 0; i < values.length; i++) values[i] = halfToFloat(bytes.readUInt16LE(2 * i));
    } else {
      throw new Error(`test reader: dtype ${t.dtype} of ${name} not handled`);
    }
    tensors[name] = { shape: t.shape, values };
  }
  return { tensors, metadata: header.__metadata__ || {} };
}

export function halfToFloat(h) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

// Reference forward pass of an attention-only transformer (docs/model.md),
// row vectors, TransformerLens key names. cfg: the "config" object of
// `circuitscope info --json`. Returns { logits: [T][V], patterns: [L][H][T][T] }.
// opts.forced: patterns [layer][head][query][key] to use instead of computing
// them; opts.ablate: a Set of "L.H" whose outputs are left out (pattern-
// preserving ablation when given with opts.forced).
export function referenceForward(tensors, cfg, ids, opts = {}) {
  const T = ids.length, D = cfg.d_model, H = cfg.n_heads, Dh = cfg.d_head, V = cfg.d_vocab_out;
  const get = (name) => {
    const t = tensors[name];
    if (!t) throw new Error(`reference forward: missing tensor ${name}`);
    return t.values;
  };
  const WE = get('embed.W_E');
  const pos = cfg.positional_embedding_type;
  const WP = pos === 'none' ? null : get('pos_embed.W_pos');
  const norm = cfg.normalization_type;  // null | "LN" | "LNPre"
  const layerNorm = (x, w, b) => {
    const mean = x.reduce((s, v) => s + v, 0) / x.length;
    const c = x.map((v) => v - mean);
    const scale = Math.sqrt(c.reduce((s, v) => s + v * v, 0) / x.length + cfg.eps);
    return c.map((v, i) => (w ? v / scale * w[i] + b[i] : v / scale));
  };
  const normRow = (x, prefix) => {
    if (norm === null || norm === 'none') return x.slice();
    if (norm === 'LN') return layerNorm(x, get(prefix + '.w'), get(prefix + '.b'));
    return layerNorm(x, null, null);
  };
  let resid = ids.map((tok, p) => {
    const row = [];
    for (let d = 0; d < D; d++) row.push(WE[tok * D + d] + (pos === 'standard' ? WP[p * D + d] : 0));
    return row;
  });
  const patterns = [];
  for (let l = 0; l < cfg.n_layers; l++) {
    const pre = `blocks.${l}.attn.`;
    const [WQ, WK, WV, WO] = ['W_Q', 'W_K', 'W_V', 'W_O'].map((n) => get(pre + n));
    const [bQ, bK, bV, bO] = ['b_Q', 'b_K', 'b_V', 'b_O'].map((n) => get(pre + n));
    const y = resid.map((x) => normRow(x, `blocks.${l}.ln1`));
    const qkIn = y.map((row, p) => row.map((v, d) => v + (pos === 'shortformer' ? WP[p * D + d] : 0)));
    const next = resid.map((row) => row.map((v, d) => v + bO[d]));
    const layerPatterns = [];
    for (let h = 0; h < H; h++) {
      const proj = (inp, W, b) => inp.map((row) => {
        const out = [];
        for (let e = 0; e < Dh; e++) {
          let s = b[h * Dh + e];
          for (let d = 0; d < D; d++) s += row[d] * W[(h * D + d) * Dh + e];
          out.push(s);
        }
        return out;
      });
      const q = proj(qkIn, WQ, bQ), k = proj(qkIn, WK, bK), v = proj(y, WV, bV);
      const A = [];
      for (let i = 0; i < T; i++) {
        const scores = [];
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let e = 0; e < Dh; e++) s += q[i][e] * k[j][e];
          scores.push(s / cfg.attn_scale);
        }
        const mx = Math.max(...scores);
        const ex = scores.map((s) => Math.exp(s - mx));
        const sum = ex.reduce((a, b) => a + b, 0);
        const row = new Array(T).fill(0);
        for (let j = 0; j <= i; j++) row[j] = ex[j] / sum;
        A.push(row);
      }
      if (opts.forced) A.splice(0, T, ...opts.forced[l][h]);
      layerPatterns.push(A);
      if (opts.ablate && opts.ablate.has(`${l}.${h}`)) continue;
      for (let i = 0; i < T; i++) {
        const z = new Array(Dh).fill(0);
        for (let j = 0; j <= i; j++) for (let e = 0; e < Dh; e++) z[e] += A[i][j] * v[j][e];
        for (let d = 0; d < D; d++) {
          let s = 0;
          for (let e = 0; e < Dh; e++) s += z[e] * WO[(h * Dh + e) * D + d];
          next[i][d] += s;
        }
      }
    }
    patterns.push(layerPatterns);
    resid = next;
  }
  const WU = get('unembed.W_U'), bU = get('unembed.b_U');
  const logits = resid.map((x) => {
    const y = normRow(x, 'ln_final');
    const out = [];
    for (let o = 0; o < V; o++) {
      let s = bU[o];
      for (let d = 0; d < D; d++) s += y[d] * WU[d * V + o];
      out.push(s);
    }
    return out;
  });
  return { logits, patterns };
}

export function logSoftmax(row) {
  const mx = Math.max(...row);
  const lse = mx + Math.log(row.reduce((s, v) => s + Math.exp(v - mx), 0));
  return row.map((v) => v - lse);
}

// Largest |a - b| / max(|a|, |b|, floor) over two nested arrays of numbers
// (null stands for NaN on both sides); throws on a shape mismatch.
export function maxRelDiff(a, b, floor = 1e-3, where = '') {
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length)
      throw new Error(`shape mismatch at ${where}: ${JSON.stringify(a)?.slice(0, 40)} vs ${JSON.stringify(b)?.slice(0, 40)}`);
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, maxRelDiff(a[i], b[i], floor, `${where}[${i}]`));
    return m;
  }
  if (a === null || b === null) {
    if (a !== b) throw new Error(`null vs number at ${where}`);
    return 0;
  }
  return Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), floor);
}

// a and b (parsed JSON) have the same shape, keys, strings and booleans, and
// numbers within `rel` relative to max(1, |b|); throws naming the first path
// that differs. For the same numbers from two runs (two processes, native and
// wasm) whose float sums may round differently in the last digits.
export function assertDeepNear(a, b, rel = 1e-5, where = '$') {
  if (typeof b === 'number' && typeof a === 'number') {
    if (!(Math.abs(a - b) <= rel * Math.max(1, Math.abs(b))))
      throw new Error(`${where}: ${a} vs ${b}`);
    return;
  }
  if (Array.isArray(b)) {
    if (!Array.isArray(a) || a.length !== b.length)
      throw new Error(`${where}: ${JSON.stringify(a)?.slice(0, 60)} vs an array of ${b.length}`);
    b.forEach((x, i) => assertDeepNear(a[i], x, rel, `${where}[${i}]`));
    return;
  }
  if (b !== null && typeof b === 'object') {
    if (a === null || typeof a !== 'object' || Array.isArray(a))
      throw new Error(`${where}: ${JSON.stringify(a)?.slice(0, 60)} vs an object`);
    const ka = Object.keys(a), kb = Object.keys(b);
    if (ka.join(',') !== kb.join(',')) throw new Error(`${where}: keys ${ka.join(',')} vs ${kb.join(',')}`);
    for (const k of kb) assertDeepNear(a[k], b[k], rel, `${where}.${k}`);
    return;
  }
  if (a !== b) throw new Error(`${where}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
}

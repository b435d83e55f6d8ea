// Prints ONE markdown table of benchmark results:
//   benchmark | native | wasm-node | wasm/native [| page] [| torch | native/torch]
// Usage: node table.mjs NATIVE.json WASM.json [PAGE.json] [--wasm-mt WASM_MT.json] [--torch TORCH.json]
//   NATIVE.json  Google Benchmark --benchmark_out JSON (bench_native)
//   WASM.json    bench_wasm output {"benchmarks":[{"name","ms",...}]}
//   WASM_MT.json optional, bench_wasm built with threads: its *_all_cores rows
//                go in the wasm column beside native's *_all_cores rows
//   PAGE.json    optional, from tests/bench/page_bench.mjs (the page's hook):
//                {"benchmarks":[{"name", "ms"} | {"name", "value", "unit"}]}
//   TORCH.json   optional, from tests/bench/torch_baselines.py (PyTorch CPU):
//                {"benchmarks":[{"name", "native", "ms", "threads", ...}], "torch",
//                 "default_threads"}; each number goes on the row named by its
//                "native" (the native row it is compared with: the *_all_cores one
//                where there are both), and native/torch is native time / torch time
//                (under 1: native is faster). A note under the table says so.
// A missing or unreadable file leaves its column empty ("-").
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
// Takes `--flag FILE` or `--flag=FILE` out of args.
function option(flag) {
  const i = args.findIndex((a) => a === flag || a.startsWith(`${flag}=`));
  if (i < 0) return null;
  const v = args[i] === flag ? args[i + 1] : args[i].slice(flag.length + 1);
  args.splice(i, args[i] === flag ? 2 : 1);
  return v;
}
const torchFile = option('--torch');
const wasmMtFile = option('--wasm-mt');
const [nativeFile, wasmFile, pageFile] = args;
const read = (f) => {
  if (!f) return null;
  try { return JSON.parse(readFileSync(f, 'utf8')); } catch (e) {
    console.error(`table: cannot read ${f}: ${e.message}`);
    return null;
  }
};
const toMs = { ns: 1e-6, us: 1e-3, ms: 1, s: 1e3 };

const rows = new Map();  // name -> {native, wasm, page} in ms, or {value, unit} for page
const row = (name) => { if (!rows.has(name)) rows.set(name, {}); return rows.get(name); };

for (const b of read(nativeFile)?.benchmarks ?? []) {
  if (b.run_type === 'aggregate' && b.aggregate_name !== 'mean') continue;
  // Names as registered: drop Google Benchmark's "/min_time:2.000",
  // "/iterations:2" and "/real_time" suffixes, so native, wasm and torch rows
  // share a name (the table's times are wall-clock times anyway).
  const name = (b.run_type === 'aggregate' ? b.run_name : b.name)
    .replace(/\/min_time:[^/]*/, '')
    .replace(/\/iterations:[^/]*/, '')
    .replace(/\/real_time$/, '');
  row(name).native = b.real_time * toMs[b.time_unit ?? 'ns'];
}
for (const b of read(wasmFile)?.benchmarks ?? []) row(b.name).wasm = b.ms;
for (const b of read(wasmMtFile)?.benchmarks ?? []) row(b.name).wasm = b.ms;
const page = read(pageFile);
for (const b of page?.benchmarks ?? []) row(b.name).page = 'ms' in b ? fmtMs(b.ms) : `${b.value} ${b.unit ?? ''}`.trim();

const torch = read(torchFile);
for (const b of torch?.benchmarks ?? []) row(b.native ?? b.name).torch = b;

function fmtMs(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return '-';
  if (ms < 1) return `${(ms * 1e3).toPrecision(3)} µs`;
  if (ms < 1e3) return `${ms.toPrecision(3)} ms`;
  return `${(ms / 1e3).toPrecision(3)} s`;
}

const header = ['benchmark', 'native', 'wasm-node', 'wasm/native'];
if (page) header.push('page');
if (torch) header.push('torch', 'native/torch');
const lines = [header];
for (const [name, r] of rows) {
  const ratio = r.native && r.wasm ? `${(r.wasm / r.native).toFixed(1)}x` : '-';
  const line = [name, fmtMs(r.native), fmtMs(r.wasm), ratio];
  if (page) line.push(r.page ?? '-');
  if (torch) {
    const t = r.torch;
    line.push(t ? `${fmtMs(t.ms)} (${t.threads} thr)` : '-');
    const q = t && r.native ? r.native / t.ms : null;
    line.push(q ? `${q >= 0.1 ? q.toFixed(2) : q.toPrecision(2)}x` : '-');
  }
  lines.push(line);
}
const widths = header.map((_, i) => Math.max(...lines.map((l) => [...l[i]].length)));
const fmt = (l) => '| ' + l.map((c, i) => c + ' '.repeat(widths[i] - [...c].length)).join(' | ') + ' |';
console.log(fmt(lines[0]));
console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
for (const l of lines.slice(1)) console.log(fmt(l));
const mt = read(wasmMtFile);
if (mt?.benchmarks?.length) {
  console.log();
  console.log('wasm-node on the *_all_cores rows: bench_wasm built with threads (as the page\'s threaded variant), ' +
    'on as many threads as native\'s all-cores rows.');
}
if (torch) {
  const names = (torch.benchmarks ?? []).filter((b) => b.native && b.native !== b.name).map((b) => `${b.name} -> ${b.native}`);
  console.log();
  console.log(`torch: PyTorch ${torch.torch ?? '?'} CPU, float32 (tests/bench/torch_baselines.py), "thr": its threads ` +
    `(torch's default here: ${torch.default_threads ?? '?'}); native/torch under 1x: native is faster.` +
    (names.length ? ` Compared with the all-cores rows: ${names.join(', ')}.` : ''));
}

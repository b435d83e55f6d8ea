// Prints ONE markdown table of benchmark results:
//   benchmark | native | wasm-node | wasm/native [| page]
// Usage: node table.mjs NATIVE.json WASM.json [PAGE.json]
//   NATIVE.json  Google Benchmark --benchmark_out JSON (bench_native)
//   WASM.json    bench_wasm output {"benchmarks":[{"name","ms",...}]}
//   PAGE.json    optional, from tests/bench/page_bench.mjs (the page's hook):
//                {"benchmarks":[{"name", "ms"} | {"name", "value", "unit"}]}
// A missing or unreadable file leaves its column empty ("-").
import { readFileSync } from 'node:fs';

const [nativeFile, wasmFile, pageFile] = process.argv.slice(2);
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
  // Names as registered: drop Google Benchmark's "/min_time:2.000" and
  // "/iterations:2" suffixes, so native and wasm rows share a name.
  const name = (b.run_type === 'aggregate' ? b.run_name : b.name)
    .replace(/\/min_time:[^/]*/, '')
    .replace(/\/iterations:[^/]*/, '');
  row(name).native = b.real_time * toMs[b.time_unit ?? 'ns'];
}
for (const b of read(wasmFile)?.benchmarks ?? []) row(b.name).wasm = b.ms;
const page = read(pageFile);
for (const b of page?.benchmarks ?? []) row(b.name).page = 'ms' in b ? fmtMs(b.ms) : `${b.value} ${b.unit ?? ''}`.trim();

function fmtMs(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return '-';
  if (ms < 1) return `${(ms * 1e3).toPrecision(3)} µs`;
  if (ms < 1e3) return `${ms.toPrecision(3)} ms`;
  return `${(ms / 1e3).toPrecision(3)} s`;
}

const header = ['benchmark', 'native', 'wasm-node', 'wasm/native'];
if (page) header.push('page');
const lines = [header];
for (const [name, r] of rows) {
  const ratio = r.native && r.wasm ? `${(r.wasm / r.native).toFixed(1)}x` : '-';
  const line = [name, fmtMs(r.native), fmtMs(r.wasm), ratio];
  if (page) line.push(r.page ?? '-');
  lines.push(line);
}
const widths = header.map((_, i) => Math.max(...lines.map((l) => [...l[i]].length)));
const fmt = (l) => '| ' + l.map((c, i) => c + ' '.repeat(widths[i] - [...c].length)).join(' | ') + ' |';
console.log(fmt(lines[0]));
console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
for (const l of lines.slice(1)) console.log(fmt(l));

// Native processes: keep freed memory for reuse instead of handing it back to
// the system at once. glibc returns every freed block of 128 KB or more (and
// the heap's free top) to the kernel, so a loop that allocates and frees a
// few hundred KB per step (Eigen's products, a head's factors) pays page
// faults on every step: on this project's machines that made the composition
// scores of a 4-layer model 3x slower (tests/bench/RESULTS.md). The CLI and
// the benchmarks call this first thing. No effect in wasm, where memory only
// grows, or outside glibc.
#pragma once

namespace cs {

void keep_freed_memory();

}  // namespace cs

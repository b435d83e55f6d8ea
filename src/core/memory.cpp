// keep_freed_memory (memory.h).
#include "core/memory.h"

#include <cstdlib>  // defines __GLIBC__ with glibc

#if defined(__GLIBC__) && !defined(__EMSCRIPTEN__)
#include <malloc.h>
#endif

namespace cs {

void keep_freed_memory() {
#if defined(__GLIBC__) && !defined(__EMSCRIPTEN__)
  // Blocks up to 32 MB (glibc's largest setting) come from the heap, not
  // fresh mappings; the heap grows 64 MB at a time and keeps up to 256 MB of
  // free top mapped.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TOP_PAD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

}  // namespace cs

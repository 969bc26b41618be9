// The heap settings of a long-running engine process: glibc keeps memory it freed instead of
// returning it to the kernel. The engine frees and reallocates large buffers (batches, Bundles,
// SQLite pages, a general-engine mapping's ~250 KB of small blocks) at a high rate; glibc's
// default of handing them back (munmap, heap trim) makes the kernel fault the pages in again and
// shoot down TLB entries on every core each time. Memory stays bounded by the working set
// (backpressure bounds that); no page is returned. `switchboard serve` calls this first, and the
// benchmarks that measure the engine's work do too, so they measure the same process.
// Thread-safety: call once, at start-up, before other threads run.
#pragma once

#include <malloc.h>

namespace switchboard::core {

inline void keepFreedMemory() {
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

}  // namespace switchboard::core

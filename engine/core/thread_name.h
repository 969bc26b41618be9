// Names the calling thread (first 15 bytes), so `top -H`, `perf report --sort comm` and gdb show
// which part of the engine a thread is: sb-io-N, sb-commit, sb-pipeline, sb-deliver, ...
// Thread-safety: names only the calling thread.
#pragma once

#include <pthread.h>

#include <algorithm>
#include <string_view>

namespace switchboard::core {

inline void nameThisThread(std::string_view name) {
  char buf[16] = {};
  std::copy_n(name.data(), std::min<std::size_t>(name.size(), sizeof buf - 1), buf);
  pthread_setname_np(pthread_self(), buf);
}

}  // namespace switchboard::core

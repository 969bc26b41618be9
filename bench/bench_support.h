// Helpers shared by the benchmarks under bench/: rates of a repeated operation per second of wall
// time and per second of the calling thread's CPU time (the figure that other work on a shared
// machine disturbs least), their medians over a few runs, and reading an input file whole.
// Thread-safety: each rate measures the calling thread only; the rest are pure functions.
#pragma once

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace switchboard::benchmarks {

inline double threadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Rate {
  double wall = 0;  // per second of wall time
  double cpu = 0;   // per second of this thread's CPU time
};

// Calls `once` in rounds of 64 for about `seconds` of wall time.
template <typename F>
Rate runFor(double seconds, F&& once) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const double cpu0 = threadCpuSeconds();
  const auto stop = start + std::chrono::duration<double>(seconds);
  std::uint64_t count = 0;
  while (Clock::now() < stop) {
    for (int i = 0; i < 64; ++i) once();
    count += 64;
  }
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  return {static_cast<double>(count) / wall, static_cast<double>(count) / (threadCpuSeconds() - cpu0)};
}

// The file's bytes; empty when it cannot be read.
inline std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The medians of `runs` runs of runFor(seconds, once).
template <typename F>
Rate medianRate(double seconds, int runs, F&& once) {
  std::vector<double> wall, cpu;
  for (int r = 0; r < runs; ++r) {
    Rate rate = runFor(seconds, once);
    wall.push_back(rate.wall);
    cpu.push_back(rate.cpu);
  }
  return {median(wall), median(cpu)};
}

}  // namespace switchboard::benchmarks

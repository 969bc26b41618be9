// The p-th quantile (0..1) of benchmark samples: the sample at index p x n of the sorted values
// (clipped to the last), 0 when there are none. Shared by the benchmarks under bench/.
// Thread-safety: a pure function.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace switchboard::benchmarks {

inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace switchboard::benchmarks

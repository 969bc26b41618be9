// Per-endpoint circuit breakers: after `threshold` consecutive transient failures an endpoint is
// open for `openMs`; then one probe is let through (half-open); its success closes the circuit,
// its failure reopens it.
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/core/message.h"

namespace switchboard::runtime {

class CircuitBreakers {
 public:
  CircuitBreakers(int threshold, core::Millis openMs) : threshold_(threshold), openMs_(openMs) {}

  // True when a request to `endpoint` may go out now. In half-open state only one caller gets
  // true until record() is called.
  bool allow(const std::string& endpoint, core::Millis nowMs);
  // Records the outcome of a request that allow() let through. `failure` means transient failure.
  void record(const std::string& endpoint, bool failure, core::Millis nowMs);
  // Endpoints refusing requests at `nowMs` (open and not yet due for a probe, or probing).
  std::vector<std::string> blocked(core::Millis nowMs) const;
  // 0 closed, 1 open, 2 half-open; for metrics.
  std::map<std::string, int> states(core::Millis nowMs) const;

 private:
  struct State {
    int failures = 0;
    bool open = false;
    bool probing = false;
    core::Millis openUntil = 0;
  };
  const int threshold_;
  const core::Millis openMs_;
  mutable std::mutex mutex_;
  std::map<std::string, State> states_;
};

}  // namespace switchboard::runtime

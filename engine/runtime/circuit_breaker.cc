#include "engine/runtime/circuit_breaker.h"

namespace switchboard::runtime {

bool CircuitBreakers::allow(const std::string& endpoint, core::Millis nowMs) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = states_.find(endpoint);
  if (it == states_.end() || !it->second.open) return true;
  State& s = it->second;
  if (nowMs < s.openUntil || s.probing) return false;
  s.probing = true;  // half-open: this caller is the probe
  return true;
}

void CircuitBreakers::record(const std::string& endpoint, bool failure, core::Millis nowMs) {
  std::lock_guard<std::mutex> lock(mutex_);
  State& s = states_[endpoint];
  if (!failure) {
    s = State{};
    return;
  }
  ++s.failures;
  if (s.probing || s.failures >= threshold_) {
    s.open = true;
    s.probing = false;
    s.openUntil = nowMs + openMs_;
  }
}

std::vector<std::string> CircuitBreakers::blocked(core::Millis nowMs) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [endpoint, s] : states_) {
    if (s.open && (nowMs < s.openUntil || s.probing)) out.push_back(endpoint);
  }
  return out;
}

std::map<std::string, int> CircuitBreakers::states(core::Millis nowMs) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::map<std::string, int> out;
  for (const auto& [endpoint, s] : states_) {
    out[endpoint] = !s.open ? 0 : (nowMs < s.openUntil && !s.probing ? 1 : 2);
  }
  return out;
}

}  // namespace switchboard::runtime

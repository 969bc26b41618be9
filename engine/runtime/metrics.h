// In-process counters and the delivery latency histogram, rendered with the store's counts in
// Prometheus text exposition format (version 0.0.4).
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "engine/store/store.h"

namespace switchboard::runtime {

class Metrics {
 public:
  // outcome: accepted, duplicate, rejected, refused, throttled, too_large, error
  void countIntake(const std::string& channel, const std::string& outcome, std::int64_t n = 1);
  // outcome: ok, retry, fail
  void countAttempt(const std::string& channel, const std::string& destination,
                    const std::string& outcome, double seconds);
  void countPipeline(const std::string& channel, const std::string& outcome);
  // Deliveries the pipeline handed to a delivery worker in memory (no claim).
  void countDeliveriesHandedOver(std::int64_t n) { deliveriesHandedOver_.fetch_add(n, std::memory_order_relaxed); }

  // Prometheus text: in-process counters plus `stats` from the store and breaker states.
  // `handedOver`: messages intake handed to the pipeline in memory, waiting for a worker.
  std::string render(const store::StoreStats& stats, const std::map<std::string, int>& breakers,
                     std::int64_t intakePending, std::int64_t handedOver) const;

  static constexpr std::array<double, 12> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,   0.25,   0.5,   1.0,  2.5,   10.0};

 private:
  struct Histogram {
    std::array<std::uint64_t, kBuckets.size()> buckets{};
    std::uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mutex_;
  std::atomic<std::int64_t> deliveriesHandedOver_{0};
  std::map<std::pair<std::string, std::string>, std::int64_t> intake_;
  std::map<std::pair<std::string, std::string>, std::int64_t> pipeline_;
  std::map<std::tuple<std::string, std::string, std::string>, std::int64_t> attempts_;
  std::map<std::pair<std::string, std::string>, Histogram> latency_;
};

// Escapes a Prometheus label value.
std::string promLabel(const std::string& value);

}  // namespace switchboard::runtime

#include "engine/runtime/metrics.h"

#include <cstdio>
#include <sstream>

namespace switchboard::runtime {

std::string promLabel(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void Metrics::countIntake(const std::string& channel, const std::string& outcome, std::int64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  intake_[{channel, outcome}] += n;
}

void Metrics::countPipeline(const std::string& channel, const std::string& outcome) {
  std::lock_guard<std::mutex> lock(mutex_);
  pipeline_[{channel, outcome}] += 1;
}

void Metrics::countAttempt(const std::string& channel, const std::string& destination,
                           const std::string& outcome, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  attempts_[{channel, destination, outcome}] += 1;
  Histogram& h = latency_[{channel, destination}];
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += seconds;
}

std::string Metrics::render(const store::StoreStats& stats, const std::map<std::string, int>& breakers,
                            std::int64_t intakePending, std::int64_t handedOver) const {
  std::ostringstream out;
  std::lock_guard<std::mutex> lock(mutex_);
  out << "# HELP switchboard_intake_requests_total Messages offered to intake, by outcome.\n"
      << "# TYPE switchboard_intake_requests_total counter\n";
  for (const auto& [key, n] : intake_) {
    out << "switchboard_intake_requests_total{channel=\"" << promLabel(key.first) << "\",outcome=\""
        << promLabel(key.second) << "\"} " << n << "\n";
  }
  out << "# HELP switchboard_pipeline_runs_total Pipeline runs, by outcome.\n"
      << "# TYPE switchboard_pipeline_runs_total counter\n";
  for (const auto& [key, n] : pipeline_) {
    out << "switchboard_pipeline_runs_total{channel=\"" << promLabel(key.first) << "\",outcome=\""
        << promLabel(key.second) << "\"} " << n << "\n";
  }
  out << "# HELP switchboard_messages Stored messages, by channel and status.\n"
      << "# TYPE switchboard_messages gauge\n";
  for (const auto& m : stats.messages) {
    out << "switchboard_messages{channel=\"" << promLabel(m.channelId) << "\",status=\""
        << promLabel(m.status) << "\"} " << m.count << "\n";
  }
  out << "# HELP switchboard_queue_depth Pending deliveries, by destination.\n"
      << "# TYPE switchboard_queue_depth gauge\n";
  // Due ("pending") and parked behind a sibling ("waiting") alike: one sample per destination.
  std::map<std::pair<std::string, std::string>, std::int64_t> queued;
  for (const auto& d : stats.deliveries) {
    if (d.status == "pending" || d.status == "waiting")
      queued[{d.channelId, d.destination}] += d.count;
  }
  for (const auto& [key, count] : queued) {
    out << "switchboard_queue_depth{channel=\"" << promLabel(key.first) << "\",destination=\""
        << promLabel(key.second) << "\"} " << count << "\n";
  }
  out << "# HELP switchboard_dead_letters Dead deliveries awaiting inspection or replay.\n"
      << "# TYPE switchboard_dead_letters gauge\n";
  for (const auto& d : stats.deliveries) {
    if (d.status != "dead") continue;
    out << "switchboard_dead_letters{channel=\"" << promLabel(d.channelId) << "\",destination=\""
        << promLabel(d.destination) << "\"} " << d.count << "\n";
  }
  out << "# HELP switchboard_delivery_attempts_total Delivery attempts, by outcome.\n"
      << "# TYPE switchboard_delivery_attempts_total counter\n";
  for (const auto& [key, n] : attempts_) {
    out << "switchboard_delivery_attempts_total{channel=\"" << promLabel(std::get<0>(key))
        << "\",destination=\"" << promLabel(std::get<1>(key)) << "\",outcome=\""
        << promLabel(std::get<2>(key)) << "\"} " << n << "\n";
  }
  out << "# HELP switchboard_delivery_retries_total Attempts that ended in a scheduled retry.\n"
      << "# TYPE switchboard_delivery_retries_total counter\n";
  for (const auto& [key, n] : attempts_) {
    if (std::get<2>(key) != "retry") continue;
    out << "switchboard_delivery_retries_total{channel=\"" << promLabel(std::get<0>(key))
        << "\",destination=\"" << promLabel(std::get<1>(key)) << "\"} " << n << "\n";
  }
  out << "# HELP switchboard_delivery_latency_seconds Duration of delivery attempts.\n"
      << "# TYPE switchboard_delivery_latency_seconds histogram\n";
  for (const auto& [key, h] : latency_) {
    std::string labels = "channel=\"" + promLabel(key.first) + "\",destination=\"" + promLabel(key.second) + "\"";
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
      char le[32];
      std::snprintf(le, sizeof(le), "%g", kBuckets[i]);
      out << "switchboard_delivery_latency_seconds_bucket{" << labels << ",le=\"" << le << "\"} "
          << h.buckets[i] << "\n";
    }
    out << "switchboard_delivery_latency_seconds_bucket{" << labels << ",le=\"+Inf\"} " << h.count << "\n";
    out << "switchboard_delivery_latency_seconds_sum{" << labels << "} " << h.sum << "\n";
    out << "switchboard_delivery_latency_seconds_count{" << labels << "} " << h.count << "\n";
  }
  out << "# HELP switchboard_circuit_state Circuit breaker per endpoint: 0 closed, 1 open, 2 half-open.\n"
      << "# TYPE switchboard_circuit_state gauge\n";
  for (const auto& [endpoint, state] : breakers) {
    out << "switchboard_circuit_state{endpoint=\"" << promLabel(endpoint) << "\"} " << state << "\n";
  }
  if (stats.logFlushes) {
    out << "# HELP switchboard_store_log_flushes_total Flushes (fdatasync) of the SQLite write-ahead log.\n"
        << "# TYPE switchboard_store_log_flushes_total counter\n"
        << "switchboard_store_log_flushes_total " << *stats.logFlushes << "\n";
  }
  out << "# HELP switchboard_intake_pending Messages waiting for a group commit.\n"
      << "# TYPE switchboard_intake_pending gauge\n"
      << "switchboard_intake_pending " << intakePending << "\n";
  out << "# HELP switchboard_pipeline_handed_over Messages intake handed to the pipeline in memory, "
         "waiting for a worker.\n"
      << "# TYPE switchboard_pipeline_handed_over gauge\n"
      << "switchboard_pipeline_handed_over " << handedOver << "\n";
  out << "# HELP switchboard_deliveries_handed_over_total Deliveries the pipeline stored leased to an idle "
         "delivery worker and handed to it in memory (sent without a claim).\n"
      << "# TYPE switchboard_deliveries_handed_over_total counter\n"
      << "switchboard_deliveries_handed_over_total " << deliveriesHandedOver_.load(std::memory_order_relaxed) << "\n";
  return out.str();
}

}  // namespace switchboard::runtime

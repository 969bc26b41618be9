// bench_store: raw store throughput without HTTP: group-committed ingest batches, then the
// pipeline and delivery cycles (claim, finish, claim deliveries, record attempts).
//   bench_store [sqlite:PATH | postgresql://...] [MESSAGES=50000] [BATCH=64]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/percentile.h"
#include "engine/store/store.h"

using namespace switchboard;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  std::string url = argc > 1 ? argv[1] : "sqlite:/tmp/bench_store/sb.db";
  const int total = argc > 2 ? std::atoi(argv[2]) : 50000;
  const int batch = argc > 3 ? std::atoi(argv[3]) : 64;
  if (url.starts_with("sqlite:")) std::filesystem::remove_all(std::filesystem::path(url.substr(7)).parent_path());
  auto s = store::openStore(url, 4);
  if (!s) {
    std::fprintf(stderr, "%s\n", s.error().message.c_str());
    return 1;
  }
  auto& st = **s;
  auto t0 = Clock::now();
  std::vector<double> commitMs;  // each ingest batch's call, as a client waiting for its 200 sees it
  for (int i = 0; i < total; i += batch) {
    std::vector<store::NewMessage> rows;
    for (int j = i; j < std::min(total, i + batch); ++j) {
      store::NewMessage m;
      m.channelId = "bench";
      m.idempotencyKey = "k" + std::to_string(j);
      m.receivedAtMs = 1;
      m.contentType = "application/json";
      m.body = R"({"id":"k)" + std::to_string(j) + R"(","patient":{"name":"Emily Chen","dob":"1992-08-22"},"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})";
      m.metadata = {{"sender", "+15551234567"}, {"kind", "text"}};
      rows.push_back(std::move(m));
    }
    const auto b0 = Clock::now();
    if (!st.ingest(rows)) return 1;
    commitMs.push_back(std::chrono::duration<double, std::milli>(Clock::now() - b0).count());
  }
  double ingestS = std::chrono::duration<double>(Clock::now() - t0).count();
  t0 = Clock::now();
  int processed = 0;
  for (;;) {
    auto claimed = st.claimMessages("w", batch, 10, 60000);
    if (!claimed || claimed->empty()) break;
    std::vector<store::Store::FinishItem> items;
    for (auto& m : *claimed) {
      store::ProcessOutcome o;
      o.status = "processed";
      o.events.emplace_back("transformed", "passthrough");
      o.deliveries.push_back({"out", m.body, m.contentType, 0});
      items.push_back({m.id, std::move(o)});
    }
    if (!st.finishMessages("w", items, 10)) return 1;
    processed += static_cast<int>(items.size());
  }
  double pipelineS = std::chrono::duration<double>(Clock::now() - t0).count();
  t0 = Clock::now();
  int delivered = 0;
  for (;;) {
    auto claimed = st.claimDeliveries("w", batch, 20, 60000, {});
    if (!claimed || claimed->empty()) break;
    std::vector<store::Store::AttemptItem> items;
    for (auto& d : *claimed) {
      store::AttemptRecord a;
      a.startedAtMs = 20;
      a.outcome = "ok";
      a.newStatus = "succeeded";
      a.statusCode = 200;
      items.push_back({d.id, a});
    }
    if (!st.recordAttempts("w", items, true)) return 1;
    delivered += static_cast<int>(items.size());
  }
  double deliveryS = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("backend %s, %d messages, batch %d\n", st.backend().c_str(), total, batch);
  std::printf("ingest:   %8.0f msg/s (%.2f s)\n", total / ingestS, ingestS);
  std::printf("ingest batch commit: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%zu batches)\n",
              benchmarks::percentile(commitMs, 0.5), benchmarks::percentile(commitMs, 0.99),
              benchmarks::percentile(commitMs, 1.0), commitMs.size());
  std::printf("pipeline: %8.0f msg/s (claim + finish, %d)\n", processed / pipelineS, processed);
  std::printf("delivery: %8.0f msg/s (claim + record, %d)\n", delivered / deliveryS, delivered);
  std::printf("all three stages: %8.0f msg/s\n", total / (ingestS + pipelineS + deliveryS));
  return 0;
}

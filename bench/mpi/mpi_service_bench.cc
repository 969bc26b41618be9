// MpiService benchmark: submits N synthetic patients one by one through the service (store
// transaction per submission), then reopens the store (index rebuild) and times $match-style
// queries. Usage: bench_mpi_service --patients 20000 [--store sqlite3://db=/tmp/mpi.db]
// [--queries 2000] [--config conf/mpi.json]. The store's database is replaced.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/percentile.h"
#include "engine/mpi/mpi_service.h"
#include "synthetic.h"

using namespace switchboard::mpi;
using switchboard::benchmarks::percentile;
using Clock = std::chrono::steady_clock;

namespace {
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}
}  // namespace

int main(int argc, char** argv) {
  size_t n = 20000, queries = 2000;
  std::string store = "sqlite3://db=/tmp/switchboard-mpi-bench/mpi.db",
              configPath = "conf/mpi.json";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--patients")
      n = std::stoul(v);
    else if (k == "--queries")
      queries = std::stoul(v);
    else if (k == "--store")
      store = v;
    else if (k == "--config")
      configPath = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  auto config = MatchConfig::load(configPath);
  if (!config) {
    std::fprintf(stderr, "config: %s\n", config.error().message.c_str());
    return 1;
  }
  auto open = [&](bool reset) -> std::unique_ptr<MpiService> {
    auto s = MpiStore::open(store);
    if (!s) {
      std::fprintf(stderr, "store: %s\n", s.error().message.c_str());
      std::exit(1);
    }
    if (reset) (void)(*s)->resetForTests();
    auto m = MpiService::open(*config, std::move(*s));
    if (!m) {
      std::fprintf(stderr, "service: %s\n", m.error().message.c_str());
      std::exit(1);
    }
    return std::move(*m);
  };
  auto data = bench::generatePatients(n, 7);
  std::vector<std::string> json;
  json.reserve(n);
  for (const auto& p : data.records) json.push_back(bench::toFhirJson(p));
  auto mpi = open(true);
  std::vector<double> lat;
  lat.reserve(n);
  size_t matched = 0, review = 0, created = 0;
  auto t0 = Clock::now();
  for (const auto& j : json) {
    auto t = Clock::now();
    auto d = mpi->submit(j, "bench");
    lat.push_back(since(t) * 1e6);
    if (!d) {
      std::fprintf(stderr, "submit: %s\n", d.error().message.c_str());
      return 1;
    }
    if (d->result == Decision::kMatch)
      ++matched;
    else if (d->result == Decision::kPossibleMatch)
      ++review;
    else
      ++created;
  }
  double total = since(t0);
  std::printf(
      "submit %zu patients via MpiService (%s): %.1f s, %.0f/s; linked %zu, review %zu, "
      "new %zu; latency p50 %.0f us, p99 %.0f us\n",
      n, store.substr(0, store.find(':')).c_str(), total, double(n) / total, matched, review,
      created, percentile(lat, 0.5), percentile(lat, 0.99));
  mpi.reset();
  auto t1 = Clock::now();
  mpi = open(false);
  std::printf("restart: index rebuilt from the store in %.2f s (%zu sources)\n", since(t1),
              mpi->sourceCount());
  lat.clear();
  for (size_t q = 0; q < queries; ++q) {
    const auto& r = data.records[(q * 7919) % n];
    std::string j = bench::toFhirJson(bench::perturb(r, q));
    auto t = Clock::now();
    auto m = mpi->match(j, false, 5);
    lat.push_back(since(t) * 1e6);
    if (!m) return 1;
  }
  std::printf(
      "service match (%zu queries, parse + normalise + block + score + read goldens): "
      "p50 %.0f us, p99 %.0f us\n",
      queries, percentile(lat, 0.5), percentile(lat, 0.99));
  return 0;
}

// MPI benchmark: generates N synthetic patients (deterministic), bulk-links them, and reports
// wall time per phase, automatic-link quality against the synthetic truth, single-record match
// latency (p50/p99) and index memory per patient. Usage: bench_mpi --patients 1000000
// [--seed 7] [--threads 0] [--queries 20000] [--config conf/mpi.json] [--ndjson DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <unordered_map>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "bench/percentile.h"
#include "engine/mpi/link.h"
#include "synthetic.h"

using namespace switchboard::mpi;
using switchboard::benchmarks::percentile;
using Clock = std::chrono::steady_clock;
using switchboard::mpi::bench::toFhirJson;

namespace {

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

long rssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  size_t n = 100000, queries = 20000;
  uint64_t seed = 7;
  unsigned threads = 0;
  std::string configPath = "conf/mpi.json", ndjsonDir;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--patients")
      n = std::stoull(v);
    else if (k == "--seed")
      seed = std::stoull(v);
    else if (k == "--threads")
      threads = static_cast<unsigned>(std::stoul(v));
    else if (k == "--queries")
      queries = std::stoull(v);
    else if (k == "--config")
      configPath = v;
    else if (k == "--ndjson")
      ndjsonDir = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  auto config = MatchConfig::load(configPath);
  if (!config) {
    std::fprintf(stderr, "config: %s (%s)\n", config.error().message.c_str(),
                 config.error().location.c_str());
    return 1;
  }
  auto t = Clock::now();
  bench::SyntheticPatients data = bench::generatePatients(n, seed);
  std::printf("generated %zu synthetic patients (seed %llu) in %.1f s, %u threads\n", n,
              (unsigned long long)seed, since(t), threads);

  long rss0 = rssKiB();
  auto tLink = Clock::now();
  // Phase 1: normalise in parallel.
  std::vector<NormalizedRecord> norm(n);
  {
    std::vector<std::thread> pool;
    for (unsigned k = 0; k < threads; ++k)
      pool.emplace_back([&, k] {
        for (size_t i = k; i < n; i += threads) norm[i] = normalizeRecord(data.records[i], *config);
      });
    for (auto& th : pool) th.join();
  }
  double tNorm = since(tLink);
  // Phase 2: index.
  auto t2 = Clock::now();
  MpiIndex index(*config);
  index.reserve(n);
  for (size_t i = 0; i < n; ++i) index.add(norm[i]);
  std::vector<NormalizedRecord>().swap(norm);
  double tIndex = since(t2);
  long rssIndex = rssKiB();
  // Phase 3: score blocked pairs and cluster.
  auto t3 = Clock::now();
  LinkOptions opts;
  opts.threads = threads;
  LinkOutcome lo = linkIndex(index, opts);
  double tScore = since(t3);
  double tTotal = since(tLink);

  // Quality against the synthetic truth.
  std::unordered_map<uint32_t, uint64_t> perPerson;
  for (uint32_t p : data.person) ++perPerson[p];
  uint64_t truePairs = 0;
  for (auto& [p, c] : perPerson) truePairs += c * (c - 1) / 2;
  uint64_t autoPred = 0, autoTp = 0, reviewPred = 0, reviewTp = 0;
  for (const auto& p : lo.pairs) {
    bool truth = data.person[p.a] == data.person[p.b];
    if (p.decision == Decision::kMatch) {
      ++autoPred;
      autoTp += truth;
    } else {
      ++reviewPred;
      reviewTp += truth;
    }
  }
  size_t enterprises = 0;
  for (uint32_t i = 0; i < n; ++i) enterprises += lo.enterprise[i] == i;

  IndexMemory mem = index.memory();
  std::printf(
      "bulk link: %.2f s total (normalise %.2f s, index %.2f s, score+cluster %.2f s), "
      "%llu comparisons (%.1f per patient)\n",
      tTotal, tNorm, tIndex, tScore, (unsigned long long)lo.comparisons,
      double(lo.comparisons) / double(n));
  std::printf(
      "enterprises %zu; auto-link pairs %llu (precision %.4f, recall %.4f of %llu true pairs); "
      "review pairs %llu (%.1f%% true)\n",
      enterprises, (unsigned long long)autoPred, autoPred ? double(autoTp) / autoPred : 1.0,
      truePairs ? double(autoTp) / truePairs : 1.0, (unsigned long long)truePairs,
      (unsigned long long)reviewPred, reviewPred ? 100.0 * reviewTp / reviewPred : 0.0);
  std::printf(
      "index memory: %.0f bytes/patient (store %.0f, blocking %.0f, frequencies %.0f); "
      "RSS growth while indexing %.0f bytes/patient\n",
      mem.bytesPerRecord(), double(mem.storeBytes) / n, double(mem.blockingBytes) / n,
      double(mem.frequencyBytes) / n, double(rssIndex - rss0) * 1024.0 / n);

  // Single-record matching against the full index: perturbed copies of random patients.
  std::vector<double> lat;
  lat.reserve(queries);
  uint64_t found = 0;
  for (size_t q = 0; q < queries; ++q) {
    size_t src = static_cast<size_t>((q * 2654435761ULL + seed) % n);
    PersonRecord query = bench::perturb(data.records[src], seed * 1000003 + q);
    auto tq = Clock::now();
    auto res = index.match(index.normalize(query), 10);
    lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - tq).count());
    for (const auto& c : res)
      if (data.person[c.record] == data.person[src]) {
        ++found;
        break;
      }
  }
  std::printf(
      "single match (%zu queries, normalise + block + score): p50 %.0f us, p99 %.0f us, "
      "max %.0f us; true person among candidates %.1f%%\n",
      queries, percentile(lat, 0.5),
      percentile(lat, 0.99), percentile(lat, 1.0),
      100.0 * found / std::max<size_t>(1, queries));

  if (!ndjsonDir.empty()) {
    std::filesystem::create_directories(ndjsonDir);
    std::string in = ndjsonDir + "/patients.ndjson", out = ndjsonDir + "/links.ndjson";
    {
      std::ofstream f(in, std::ios::trunc);
      for (const auto& p : data.records) f << toFhirJson(p) << '\n';
    }
    std::ifstream fin(in);
    std::ofstream fout(out, std::ios::trunc);
    auto st = linkNdjson(fin, fout, *config, opts);
    if (!st) {
      std::fprintf(stderr, "ndjson link failed: %s\n", st.error().message.c_str());
      return 1;
    }
    std::printf(
        "ndjson link (parse + normalise + index + score + write): %.2f s, %zu enterprises, "
        "%zu review pairs\n",
        st->seconds, st->enterprises, st->reviewPairs);
  }
  return 0;
}

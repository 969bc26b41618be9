// Bulk linking and NDJSON link. Thread-safety: see link.h.
#include "engine/mpi/link.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <istream>
#include <ostream>
#include <thread>
#include <unordered_set>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace switchboard::mpi {

uint64_t forEachCandidatePair(const MpiIndex& index, const LinkOptions& options,
                              const std::function<void(unsigned, uint32_t, uint32_t)>& visit) {
  const uint32_t n = index.sizeUnlocked();
  unsigned threads = options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  std::atomic<uint32_t> next{options.crossSourceSplit};
  std::atomic<uint64_t> pairs{0};
  auto work = [&](unsigned t) {
    std::vector<uint64_t> keys;
    std::vector<uint32_t> cands;
    uint64_t local = 0;
    const uint32_t kBatch = 256;
    while (true) {
      uint32_t start = next.fetch_add(kBatch);
      if (start >= n) break;
      uint32_t end = std::min(n, start + kBatch);
      for (uint32_t a = start; a < end; ++a) {
        uint32_t below = options.crossSourceSplit ? options.crossSourceSplit : a;
        index.candidatesUnlocked(index.viewUnlocked(a), below, keys, cands);
        for (uint32_t b : cands) visit(t, a, b);
        local += cands.size();
      }
    }
    pairs += local;
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  return pairs.load();
}

namespace {

struct UnionFind {
  std::vector<uint32_t> parent;
  std::vector<std::vector<uint32_t>> members;  // only at roots
  explicit UnionFind(uint32_t n) : parent(n), members(n) {
    for (uint32_t i = 0; i < n; ++i) {
      parent[i] = i;
      members[i] = {i};
    }
  }
  uint32_t find(uint32_t x) {
    while (parent[x] != x) {
      parent[x] = parent[parent[x]];
      x = parent[x];
    }
    return x;
  }
};

uint64_t pairKey(uint32_t a, uint32_t b) {
  return a > b ? (uint64_t(a) << 32) | b : (uint64_t(b) << 32) | a;
}

}  // namespace

LinkOutcome linkIndex(const MpiIndex& index, const LinkOptions& options) {
  const uint32_t n = index.sizeUnlocked();
  unsigned threads = options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::vector<ScoredPair>> perThread(threads);
  Scorer scorer = index.scorerUnlocked();
  LinkOutcome out;
  out.comparisons = forEachCandidatePair(index, options, [&](unsigned t, uint32_t a, uint32_t b) {
    PairScore s = scorer.score(index.viewUnlocked(a), index.viewUnlocked(b));
    const uint8_t blocking = s.hardNegatives & kHardNegativeBlocking;
    if (s.decision == Decision::kNoMatch && blocking == 0) return;
    if (s.decision == Decision::kNoMatch && s.weight < index.config().possibleThreshold) {
      // Keep hard-negative pairs (below review) only as union blockers.
      perThread[t].push_back({a, b, float(s.weight), float(s.probability), Decision::kNoMatch, blocking});
      return;
    }
    perThread[t].push_back({a, b, float(s.weight), float(s.probability), s.decision, s.hardNegatives});
  });
  std::vector<ScoredPair> all;
  std::unordered_set<uint64_t> blockers;
  for (auto& v : perThread) {
    for (auto& p : v) {
      if (p.hardNegatives & kHardNegativeBlocking) blockers.insert(pairKey(p.a, p.b));
      if (p.decision != Decision::kNoMatch) all.push_back(p);
    }
  }
  std::sort(all.begin(), all.end(), [](const ScoredPair& x, const ScoredPair& y) {
    return x.a != y.a ? x.a < y.a : x.b < y.b;
  });
  // Cluster automatic links, strongest first (ties by index for determinism).
  std::vector<uint32_t> order;
  for (uint32_t i = 0; i < all.size(); ++i)
    if (all[i].decision == Decision::kMatch) order.push_back(i);
  std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) {
    if (all[x].weight != all[y].weight) return all[x].weight > all[y].weight;
    return x < y;
  });
  UnionFind uf(n);
  out.refused.assign(all.size(), 0);
  for (uint32_t i : order) {
    uint32_t ra = uf.find(all[i].a), rb = uf.find(all[i].b);
    if (ra == rb) continue;
    bool conflict = false;
    if (!blockers.empty()) {
      for (uint32_t x : uf.members[ra]) {
        for (uint32_t y : uf.members[rb]) {
          if (blockers.count(pairKey(x, y))) {
            conflict = true;
            break;
          }
        }
        if (conflict) break;
      }
    }
    if (conflict) {
      out.refused[i] = 1;
      continue;
    }
    if (uf.members[ra].size() < uf.members[rb].size()) std::swap(ra, rb);
    uf.parent[rb] = ra;
    auto& ma = uf.members[ra];
    ma.insert(ma.end(), uf.members[rb].begin(), uf.members[rb].end());
    std::vector<uint32_t>().swap(uf.members[rb]);
  }
  out.enterprise.resize(n);
  std::vector<uint32_t> firstOfRoot(n, UINT32_MAX);
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t r = uf.find(i);
    if (firstOfRoot[r] == UINT32_MAX) firstOfRoot[r] = i;
    out.enterprise[i] = firstOfRoot[r];
  }
  out.pairs = std::move(all);
  return out;
}

Result<LinkStats> linkNdjson(std::istream& in, std::ostream& out, const MatchConfig& config,
                             const LinkOptions& options) {
  auto t0 = std::chrono::steady_clock::now();
  MpiIndex index(config);
  std::string line;
  size_t lineNo = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto p = personFromFhirPatientJson(line);
    if (!p) {
      Error e = p.error();
      e.location = "line " + std::to_string(lineNo) + (e.location.empty() ? "" : " " + e.location);
      return std::unexpected(e);
    }
    if (p->id.empty()) p->id = "line-" + std::to_string(lineNo);
    index.add(index.normalize(*p));
  }
  LinkOptions opts = options;
  opts.crossSourceSplit = 0;
  LinkOutcome lo = linkIndex(index, opts);
  const uint32_t n = index.sizeUnlocked();
  // Possible matches per record: review pairs plus refused automatic links, not already in
  // the same enterprise.
  std::vector<std::vector<std::pair<uint32_t, float>>> possible(n);
  LinkStats st;
  for (size_t i = 0; i < lo.pairs.size(); ++i) {
    const auto& p = lo.pairs[i];
    if (lo.enterprise[p.a] == lo.enterprise[p.b]) {
      if (p.decision == Decision::kMatch) ++st.autoLinks;
      continue;
    }
    if (p.decision == Decision::kPossibleMatch || lo.refused[i]) {
      possible[p.a].push_back({p.b, p.probability});
      possible[p.b].push_back({p.a, p.probability});
      ++st.reviewPairs;
    }
  }
  char eid[32];
  for (uint32_t i = 0; i < n; ++i) {
    RecordView v = index.viewUnlocked(i);
    RecordView ev = index.viewUnlocked(lo.enterprise[i]);
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("id");
    w.String(v.id.data(), static_cast<rapidjson::SizeType>(v.id.size()));
    // The enterprise (golden) record is named after its first source record.
    std::snprintf(eid, sizeof eid, "%016llx",
                  static_cast<unsigned long long>(hash64(ev.id) ^ 0x5eedULL));
    w.Key("enterpriseId");
    w.String(eid);
    w.Key("possibleMatches");
    w.StartArray();
    auto& pm = possible[i];
    std::sort(pm.begin(), pm.end(), [](auto& x, auto& y) {
      return x.second != y.second ? x.second > y.second : x.first < y.first;
    });
    for (const auto& [other, prob] : pm) {
      RecordView ov = index.viewUnlocked(other);
      w.StartObject();
      w.Key("id");
      w.String(ov.id.data(), static_cast<rapidjson::SizeType>(ov.id.size()));
      w.Key("score");
      w.Double(std::round(double(prob) * 10000) / 10000);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    out.write(sb.GetString(), sb.GetSize());
    out.put('\n');
  }
  st.patients = n;
  for (uint32_t i = 0; i < n; ++i)
    if (lo.enterprise[i] == i) ++st.enterprises;
  st.comparisons = lo.comparisons;
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!out) return fail(ErrorCode::kException, "writing the links output failed");
  return st;
}

}  // namespace switchboard::mpi

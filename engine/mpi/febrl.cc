// FEBRL evaluation. Thread-safety: see febrl.h.
#include "engine/mpi/febrl.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>
#include <unordered_map>

#include "engine/mpi/link.h"

namespace switchboard::mpi {

Result<std::vector<PersonRecord>> readFebrlCsv(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail(ErrorCode::kNotFound, "cannot read FEBRL file", path);
  std::vector<PersonRecord> out;
  std::string line;
  size_t lineNo = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    if (lineNo == 1 || line.empty() || line == "\r") continue;
    auto rec = personFromFebrlRow(splitFebrlLine(line));
    if (!rec) return fail(rec.error().code, rec.error().message, path + ":" + std::to_string(lineNo));
    out.push_back(std::move(*rec));
  }
  return out;
}

std::string febrlEntity(std::string_view recId) {
  size_t a = recId.find('-');
  if (a == std::string_view::npos) return std::string(recId);
  size_t b = recId.find('-', a + 1);
  return std::string(recId.substr(a + 1, b == std::string_view::npos ? std::string_view::npos : b - a - 1));
}

namespace {

// Shared core: records [0, split) and [split, n) (split = 0: one source, deduplication).
FebrlEvaluation evaluate(const std::string& name, const std::vector<PersonRecord>& records,
                         uint32_t split, const MatchConfig& config) {
  auto t0 = std::chrono::steady_clock::now();
  FebrlEvaluation e;
  e.name = name;
  e.records = records.size();
  e.matchThreshold = config.matchThreshold;
  e.possibleThreshold = config.possibleThreshold;
  MpiIndex index(config);
  index.reserve(records.size());
  std::vector<uint32_t> entity(records.size());
  std::unordered_map<std::string, uint32_t> entityIds;
  for (size_t i = 0; i < records.size(); ++i) {
    index.add(index.normalize(records[i]));
    entity[i] = entityIds.emplace(febrlEntity(records[i].id), uint32_t(entityIds.size())).first->second;
  }
  // True pairs.
  uint64_t truePairs = 0;
  {
    std::vector<uint64_t> countA(entityIds.size()), countB(entityIds.size());
    for (size_t i = 0; i < records.size(); ++i) {
      if (split == 0 || i < split) ++countA[entity[i]];
      else ++countB[entity[i]];
    }
    for (size_t k = 0; k < countA.size(); ++k)
      truePairs += split == 0 ? countA[k] * (countA[k] - (countA[k] ? 1 : 0)) / 2 : countA[k] * countB[k];
  }
  LinkOptions opts;
  opts.crossSourceSplit = split;
  std::vector<uint64_t> inCandidates(std::max(1u, std::thread::hardware_concurrency()) + 1, 0);
  opts.threads = static_cast<unsigned>(inCandidates.size() - 1);
  e.candidatePairs = forEachCandidatePair(index, opts, [&](unsigned t, uint32_t a, uint32_t b) {
    if (entity[a] == entity[b]) ++inCandidates[t];
  });
  for (auto c : inCandidates) e.trueInCandidates += c;
  LinkOutcome lo = linkIndex(index, opts);
  e.autoLink.truePairs = e.linkOrReview.truePairs = e.enterprise.truePairs = truePairs;
  for (const auto& p : lo.pairs) {
    bool truth = entity[p.a] == entity[p.b];
    ++e.linkOrReview.predicted;
    e.linkOrReview.truePositives += truth;
    if (p.decision == Decision::kMatch) {
      ++e.autoLink.predicted;
      e.autoLink.truePositives += truth;
    } else {
      ++e.reviewPairs;
    }
  }
  // Pairs inside one enterprise record (across sources for linkage).
  std::unordered_map<uint32_t, std::vector<uint32_t>> clusters;
  for (uint32_t i = 0; i < lo.enterprise.size(); ++i) clusters[lo.enterprise[i]].push_back(i);
  for (const auto& [root, members] : clusters) {
    for (size_t x = 0; x < members.size(); ++x) {
      for (size_t y = x + 1; y < members.size(); ++y) {
        uint32_t a = members[x], b = members[y];
        if (split != 0 && ((a < split) == (b < split))) continue;
        ++e.enterprise.predicted;
        e.enterprise.truePositives += entity[a] == entity[b];
      }
    }
  }
  e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return e;
}

}  // namespace

Result<FebrlEvaluation> evaluateFebrlDedup(const std::string& csvPath, const MatchConfig& config) {
  auto recs = readFebrlCsv(csvPath);
  if (!recs) return std::unexpected(recs.error());
  return evaluate("FEBRL3 dedup", *recs, 0, config);
}

Result<FebrlEvaluation> evaluateFebrlLinkage(const std::string& csvA, const std::string& csvB,
                                             const MatchConfig& config) {
  auto a = readFebrlCsv(csvA);
  if (!a) return std::unexpected(a.error());
  auto b = readFebrlCsv(csvB);
  if (!b) return std::unexpected(b.error());
  uint32_t split = static_cast<uint32_t>(a->size());
  std::vector<PersonRecord> all = std::move(*a);
  all.insert(all.end(), std::make_move_iterator(b->begin()), std::make_move_iterator(b->end()));
  return evaluate("FEBRL4 linkage", all, split, config);
}

Result<std::vector<FebrlEvaluation>> evaluateFebrlDir(const std::string& dir, const MatchConfig& config) {
  std::vector<FebrlEvaluation> out;
  auto d = evaluateFebrlDedup(dir + "/dataset3.csv", config);
  if (!d) return std::unexpected(d.error());
  out.push_back(*d);
  auto l = evaluateFebrlLinkage(dir + "/dataset4a.csv", dir + "/dataset4b.csv", config);
  if (!l) return std::unexpected(l.error());
  out.push_back(*l);
  return out;
}

std::string formatEvaluation(const FebrlEvaluation& e) {
  char buf[1024];
  auto line = [](const char* label, const PairMetrics& m) {
    char b[256];
    std::snprintf(b, sizeof b, "  %-14s precision %.4f  recall %.4f  F1 %.4f  (%llu predicted, %llu correct, %llu true)\n",
                  label, m.precision(), m.recall(), m.f1(), (unsigned long long)m.predicted,
                  (unsigned long long)m.truePositives, (unsigned long long)m.truePairs);
    return std::string(b);
  };
  std::snprintf(buf, sizeof buf,
                "%s: %zu records, thresholds match %.2f bits / possible %.2f bits, %llu candidate "
                "pairs, blocking pair completeness %.4f, %llu pairs to review, %.2fs\n",
                e.name.c_str(), e.records, e.matchThreshold, e.possibleThreshold,
                (unsigned long long)e.candidatePairs,
                e.autoLink.truePairs ? double(e.trueInCandidates) / double(e.autoLink.truePairs) : 1.0,
                (unsigned long long)e.reviewPairs, e.seconds);
  return std::string(buf) + line("auto-link", e.autoLink) + line("link+review", e.linkOrReview) +
         line("enterprise", e.enterprise);
}

}  // namespace switchboard::mpi

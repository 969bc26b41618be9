// EM estimation and learning from reviewers' decisions. Thread-safety: see estimate.h.
#include "engine/mpi/estimate.h"

#include <algorithm>
#include <cmath>
#include <thread>

namespace switchboard::mpi {

EmResult estimateParameters(const PatternCounts& patterns, const MatchConfig& initial,
                            int maxIterations, double floor, bool fixU) {
  EmResult r;
  r.config = initial;
  MatchConfig& c = r.config;
  for (const auto& [p, n] : patterns) r.pairs += n;
  if (r.pairs == 0) return r;
  double previous = -INFINITY;
  for (int it = 0; it < maxIterations; ++it) {
    std::array<std::vector<double>, kFieldCount> mSum, uSum;
    for (size_t f = 0; f < kFieldCount; ++f) {
      mSum[f].assign(c.fields[f].m.size(), 0.0);
      uSum[f].assign(c.fields[f].u.size(), 0.0);
    }
    double matchMass = 0, ll = 0;
    for (const auto& [p, n] : patterns) {
      double logM = 0, logU = 0;
      for (size_t f = 0; f < kFieldCount; ++f) {
        if (p[f] == kNullLevel) continue;
        logM += std::log(c.fields[f].m[p[f]]);
        logU += std::log(c.fields[f].u[p[f]]);
      }
      double a = std::log(c.lambda) + logM, b = std::log(1 - c.lambda) + logU;
      double mx = std::max(a, b);
      double logTotal = mx + std::log(std::exp(a - mx) + std::exp(b - mx));
      double g = std::exp(a - logTotal);
      ll += double(n) * logTotal;
      matchMass += double(n) * g;
      for (size_t f = 0; f < kFieldCount; ++f) {
        if (p[f] == kNullLevel) continue;
        mSum[f][p[f]] += double(n) * g;
        uSum[f][p[f]] += double(n) * (1 - g);
      }
    }
    c.lambda = std::clamp(matchMass / double(r.pairs), 1e-9, 1 - 1e-9);
    for (size_t f = 0; f < kFieldCount; ++f) {
      auto normalise = [&](std::vector<double>& sums, std::vector<double>& target) {
        double total = 0;
        for (double s : sums) total += s;
        if (total <= 0) return;
        double renorm = 0;
        for (size_t l = 0; l < sums.size(); ++l) {
          target[l] = std::max(sums[l] / total, floor);
          renorm += target[l];
        }
        for (double& t : target) t /= renorm;
      };
      normalise(mSum[f], c.fields[f].m);
      if (!fixU) normalise(uSum[f], c.fields[f].u);
    }
    r.iterations = it + 1;
    r.logLikelihood = ll;
    if (std::fabs(ll - previous) < 1e-6 * std::max(1.0, std::fabs(ll))) {
      r.converged = true;
      break;
    }
    previous = ll;
  }
  c.deriveWeights();
  return r;
}

EmResult estimateFromIndex(const MpiIndex& index, const LinkOptions& options, int maxIterations) {
  unsigned threads =
      options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  std::vector<PatternCounts> perThread(threads);
  LinkOptions opts = options;
  opts.threads = threads;
  forEachCandidatePair(index, opts, [&](unsigned t, uint32_t a, uint32_t b) {
    ComparisonVector v =
        compareRecords(index.viewUnlocked(a), index.viewUnlocked(b), index.config());
    ++perThread[t][v.level];
  });
  PatternCounts all;
  for (auto& pc : perThread)
    for (auto& [p, n] : pc) all[p] += n;
  MatchConfig start = estimateUFromRandomPairs(index, 2'000'000);
  return estimateParameters(all, start, maxIterations, 1e-6, /*fixU=*/true);
}

MatchConfig estimateUFromRandomPairs(const MpiIndex& index, uint64_t samples, uint64_t seed) {
  MatchConfig c = index.config();
  const uint32_t n = index.sizeUnlocked();
  if (n < 2 || samples == 0) return c;
  std::array<std::vector<double>, kFieldCount> counts;
  for (size_t f = 0; f < kFieldCount; ++f) counts[f].assign(c.fields[f].u.size(), 0.0);
  uint64_t state = seed * 0x9E3779B97F4A7C15ULL + 1;
  auto next = [&]() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
  };
  for (uint64_t s = 0; s < samples; ++s) {
    uint32_t a = static_cast<uint32_t>(next() % n), b = static_cast<uint32_t>(next() % n);
    if (a == b) continue;
    ComparisonVector v = compareRecords(index.viewUnlocked(a), index.viewUnlocked(b), c);
    for (size_t f = 0; f < kFieldCount; ++f)
      if (v.level[f] != kNullLevel) counts[f][v.level[f]] += 1;
  }
  for (size_t f = 0; f < kFieldCount; ++f) {
    double total = 0;
    for (double x : counts[f]) total += x;
    if (total < 1000) continue;  // too little evidence for this field: keep the configured u
    // Add-half smoothing keeps unseen levels finite.
    double denom = total + 0.5 * double(counts[f].size());
    for (size_t l = 0; l < counts[f].size(); ++l) c.fields[f].u[l] = (counts[f][l] + 0.5) / denom;
  }
  c.deriveWeights();
  return c;
}

MatchConfig learnFromDecisions(const MatchConfig& config, const std::vector<LabelledPair>& pairs,
                               bool updateU) {
  MatchConfig c = config;
  const double k = std::max(0.0, config.learningPriorStrength);
  for (size_t f = 0; f < kFieldCount; ++f) {
    auto& fm = c.fields[f];
    std::vector<double> nm(fm.m.size(), 0.0), nu(fm.u.size(), 0.0);
    double totalM = 0, totalU = 0;
    for (const auto& p : pairs) {
      uint8_t l = p.vector.level[f];
      if (l == kNullLevel || l >= fm.m.size()) continue;
      if (p.match) {
        nm[l] += 1;
        totalM += 1;
      } else {
        nu[l] += 1;
        totalU += 1;
      }
    }
    if (totalM > 0) {
      for (size_t l = 0; l < fm.m.size(); ++l)
        fm.m[l] = std::max(1e-6, (k * fm.m[l] + nm[l]) / (k + totalM));
    }
    if (updateU && totalU > 0) {
      for (size_t l = 0; l < fm.u.size(); ++l)
        fm.u[l] = std::max(1e-7, (k * fm.u[l] + nu[l]) / (k + totalU));
    }
  }
  c.deriveWeights();
  return c;
}

}  // namespace switchboard::mpi

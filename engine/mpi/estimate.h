// Estimating m, u and lambda from data (expectation-maximisation over the comparison vectors of
// blocked pairs) and learning from reviewers' decisions (smoothed counts over labelled pairs).
// Thread-safety: pure functions over their inputs; estimateFromIndex runs worker threads over an
// index no one modifies meanwhile.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "engine/mpi/link.h"
#include "engine/mpi/match_config.h"
#include "engine/mpi/scoring.h"

namespace switchboard::mpi {

// Comparison vectors compressed to distinct patterns with their counts.
using PatternCounts = std::map<std::array<uint8_t, kFieldCount>, uint64_t>;

struct EmResult {
  MatchConfig config;  // the initial config with m, u and lambda replaced
  int iterations = 0;
  double logLikelihood = 0;
  uint64_t pairs = 0;
  bool converged = false;
};

// Runs EM from `initial` (its m, u, lambda are the starting point). Probabilities are kept at
// or above `floor` so no level gets an infinite weight.
// With fixU the u probabilities stay as given (e.g. from estimateUFromRandomPairs) and only m
// and lambda are re-estimated: u from blocked pairs is biased towards agreement on the very
// fields used for blocking.
EmResult estimateParameters(const PatternCounts& patterns, const MatchConfig& initial,
                            int maxIterations = 100, double floor = 1e-6, bool fixU = false);

// u per level from `samples` uniformly drawn record pairs (deterministic seed): at scale nearly
// all random pairs are non-matches. Returns the config with u replaced.
MatchConfig estimateUFromRandomPairs(const MpiIndex& index, uint64_t samples, uint64_t seed = 42);

// Estimates u from random pairs, then m and lambda by EM over all blocked pairs.
EmResult estimateFromIndex(const MpiIndex& index, const LinkOptions& options,
                           int maxIterations = 100);

struct LabelledPair {
  ComparisonVector vector;
  bool match = false;  // reviewer's decision: same person (merge) or not duplicate
};

// Bayesian update of m per field from match-labelled pairs: the posterior mean under a
// Dirichlet prior centred on the current m with k = config.learningPriorStrength
// pseudo-observations, m' = (k*m + n(level, match)) / (k + n(non-null, match)). With updateU,
// u is updated the same way from the non-match-labelled pairs (off by default: reviewed pairs
// are the hard ones, far from the random pairs u describes; see docs/mpi.md section 7).
// Weights are re-derived; everything else is copied. No labelled pairs: nothing changes.
MatchConfig learnFromDecisions(const MatchConfig& config, const std::vector<LabelledPair>& pairs,
                               bool updateU = false);

}  // namespace switchboard::mpi

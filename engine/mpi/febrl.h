// Evaluation of the matcher on the FEBRL benchmark files: deduplication (dataset3) and linkage
// (dataset4a + dataset4b), pairwise precision, recall and F1. Thread-safety: runs its own
// worker threads; the inputs are read-only.
#pragma once

#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/mpi/match_config.h"
#include "engine/mpi/person_record.h"

namespace switchboard::mpi {

// Reads a FEBRL CSV file (header line first). Fails on a row without 11 columns.
Result<std::vector<PersonRecord>> readFebrlCsv(const std::string& path);
// "rec-123-dup-0" -> "123": the entity number shared by records of one person.
std::string febrlEntity(std::string_view recId);

struct PairMetrics {
  uint64_t predicted = 0;
  uint64_t truePositives = 0;
  uint64_t truePairs = 0;
  double precision() const { return predicted ? double(truePositives) / double(predicted) : 1.0; }
  double recall() const { return truePairs ? double(truePositives) / double(truePairs) : 1.0; }
  double f1() const {
    double p = precision(), r = recall();
    return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
  }
};

struct FebrlEvaluation {
  std::string name;
  size_t records = 0;
  uint64_t candidatePairs = 0;    // pairs compared after blocking
  uint64_t trueInCandidates = 0;  // true pairs that blocking let through (pair completeness)
  PairMetrics autoLink;           // MATCH pairs (automatic links)
  PairMetrics linkOrReview;       // MATCH or POSSIBLE_MATCH pairs
  PairMetrics enterprise;         // pairs placed in one enterprise record by bulk linking
  uint64_t reviewPairs = 0;       // POSSIBLE_MATCH pairs
  double matchThreshold = 0, possibleThreshold = 0;
  double seconds = 0;
};

Result<FebrlEvaluation> evaluateFebrlDedup(const std::string& csvPath, const MatchConfig& config);
Result<FebrlEvaluation> evaluateFebrlLinkage(const std::string& csvA, const std::string& csvB,
                                             const MatchConfig& config);
// Both evaluations over a folder holding dataset3.csv, dataset4a.csv and dataset4b.csv.
Result<std::vector<FebrlEvaluation>> evaluateFebrlDir(const std::string& dir, const MatchConfig& config);

// Human-readable report lines for one evaluation.
std::string formatEvaluation(const FebrlEvaluation& e);

}  // namespace switchboard::mpi

// Bulk linking: score every blocked pair of an index (in parallel), cluster automatic links into
// enterprise records without joining hard negatives, and the NDJSON form of
// `switchboard mpi link`. Thread-safety: functions run their own worker threads over an index
// that no one modifies meanwhile.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/mpi/mpi_index.h"

namespace switchboard::mpi {

struct LinkOptions {
  unsigned threads = 0;  // 0: hardware concurrency
  // 0: deduplicate all records against each other. Otherwise records [0, split) are one source
  // and [split, n) the other, and only pairs across the two are compared (linkage).
  uint32_t crossSourceSplit = 0;
};

struct ScoredPair {
  uint32_t a = 0, b = 0;  // a > b (a is the later record)
  float weight = 0;
  float probability = 0;
  Decision decision = Decision::kNoMatch;
  uint8_t hardNegatives = 0;
};

struct LinkOutcome {
  std::vector<ScoredPair> pairs;     // pairs at POSSIBLE_MATCH or MATCH, sorted by (a, b)
  std::vector<uint32_t> enterprise;  // per record: index of its enterprise's first record
  std::vector<uint8_t> refused;      // per pair in `pairs`: MATCH not merged (hard negative)
  uint64_t comparisons = 0;
};

// Calls visit(thread, a, b) for each distinct blocked pair (a > b), from `threads` threads.
uint64_t forEachCandidatePair(const MpiIndex& index, const LinkOptions& options,
                              const std::function<void(unsigned, uint32_t, uint32_t)>& visit);

// Scores all blocked pairs and clusters MATCH pairs (strongest first) with union-find; a union
// is refused when it would put two records of a hard-negative pair into one enterprise.
LinkOutcome linkIndex(const MpiIndex& index, const LinkOptions& options);

struct LinkStats {
  size_t patients = 0;
  size_t enterprises = 0;
  size_t autoLinks = 0;      // MATCH pairs merged
  size_t reviewPairs = 0;    // pairs sent to review
  uint64_t comparisons = 0;
  double seconds = 0;
};

// Reads FHIR Patient NDJSON (one resource per line; blank lines skipped) and writes one line per
// Patient: {"id", "enterpriseId", "possibleMatches": [{"id", "score"}]}. A line that is not a
// Patient fails with its line number; nothing is written then.
Result<LinkStats> linkNdjson(std::istream& in, std::ostream& out, const MatchConfig& config,
                             const LinkOptions& options = {});

}  // namespace switchboard::mpi

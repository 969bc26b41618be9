// Fellegi-Sunter scoring of a pair of normalised records: comparison levels per field, weights
// with term-frequency adjustment, hard-negative rules, decision and explanation (docs/mpi.md).
// Thread-safety: Scorer is const after construction; FrequencyTable must not be modified while
// a Scorer reads it (callers hold the index lock or build the table first).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "engine/mpi/match_config.h"
#include "engine/mpi/person_record.h"

namespace switchboard::mpi {

// Value frequencies of the term-frequency fields (given, family, city, postcode), counted over
// the indexed records.
class FrequencyTable {
 public:
  void add(const RecordView& r);
  void remove(const RecordView& r);
  // Fraction of indexed records holding this value of the field; 0 when unknown.
  double frequency(Field f, std::string_view value) const;
  uint64_t total() const { return total_; }
  size_t distinctValues() const { return counts_.size(); }
  size_t memoryBytes() const;
  void reserve(size_t n) { counts_.reserve(n); }

 private:
  static uint64_t key(Field f, std::string_view value);
  std::unordered_map<uint64_t, uint32_t> counts_;
  uint64_t total_ = 0;
};

// Levels of one pair, one per field (kNullLevel where either side is missing).
struct ComparisonVector {
  std::array<uint8_t, kFieldCount> level{};
  bool swappedNames = false;
};
ComparisonVector compareRecords(const RecordView& a, const RecordView& b, const MatchConfig& c);

enum HardNegative : uint8_t {
  kHardNegativeNone = 0,
  kHardNegativeTwins = 1,
  kHardNegativeParentChild = 2,
  kHardNegativeSpouses = 4,
  kHardNegativeHouseholdOnly = 8,  // no agreement on both given name and birth date
};
// Rules that also keep two records out of one enterprise record during clustering.
inline constexpr uint8_t kHardNegativeBlocking =
    kHardNegativeTwins | kHardNegativeParentChild | kHardNegativeSpouses;

struct FieldContribution {
  uint8_t level = kNullLevel;
  bool termFrequencyAdjusted = false;
  float weight = 0;
};

struct PairScore {
  std::array<FieldContribution, kFieldCount> fields;
  double weight = 0;       // total match weight in bits
  double probability = 0;  // calibrated P(match) in [0,1]
  Decision decision = Decision::kNoMatch;
  bool swappedNames = false;
  uint8_t hardNegatives = kHardNegativeNone;
};

class Scorer {
 public:
  // frequencies may be null (no term-frequency adjustment).
  Scorer(const MatchConfig& config, const FrequencyTable* frequencies)
      : config_(config), tf_(frequencies) {}

  PairScore score(const RecordView& a, const RecordView& b) const;
  // Scores an already computed comparison vector (tf needs the values of a).
  PairScore scoreVector(const ComparisonVector& v, const RecordView& a) const;
  // The explanation stored with every decision: per-field level and bits, rules, decision.
  std::string explainJson(const PairScore& s) const;
  const MatchConfig& config() const { return config_; }

 private:
  const MatchConfig& config_;
  const FrequencyTable* tf_;
};

// Probability from a match weight and the config's prior.
double weightToProbability(double weight, const MatchConfig& c);
uint8_t hardNegativeRules(const ComparisonVector& v, const RecordView& a, const RecordView& b,
                          const MatchConfig& c);

}  // namespace switchboard::mpi

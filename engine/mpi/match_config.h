// The MPI matching model: comparison fields and levels, m/u per level, thresholds, blocking and
// normalisation settings, loaded from conf/mpi.json. See docs/mpi.md.
// Thread-safety: immutable after loading; share by const reference.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/error.h"
#include "engine/mpi/normalize.h"

namespace switchboard::mpi {

enum class Field : uint8_t {
  kGiven,
  kFamily,
  kBirthDate,
  kSex,
  kPhone,
  kEmail,
  kAddress,
  kCity,
  kPostcode,
  kState,
  kIdentifier,
};
inline constexpr size_t kFieldCount = 11;
inline constexpr uint8_t kNullLevel = 255;  // either side missing: contributes 0

// Field names as used in conf/mpi.json and explanations ("given", "birthDate", ...).
const char* fieldName(Field f);
// Level names per field, best first; the last level is always "disagree".
const std::vector<std::string>& levelNames(Field f);

struct FieldModel {
  std::vector<double> m;  // P(level | match), one per level
  std::vector<double> u;  // P(level | non-match)
  bool termFrequency = false;  // adjust u of the "exact" level by value frequency
  std::vector<double> weights;  // log2(m/u), derived
};

enum class Decision : uint8_t { kNoMatch, kPossibleMatch, kMatch };
const char* decisionName(Decision d);  // "NO_MATCH", "POSSIBLE_MATCH", "MATCH"

struct MatchConfig {
  std::array<FieldModel, kFieldCount> fields;
  double lambda = 0.01;              // prior P(match) for a blocked candidate pair
  double matchThreshold = 20.0;      // bits; at or above: MATCH (auto-link)
  double possibleThreshold = 8.0;    // bits; at or above: POSSIBLE_MATCH (review)
  double tfFloor = 1e-4;             // smallest frequency used by the TF adjustment
  // Term frequencies apply only once this many records are indexed: in a small population
  // (a fresh MPI) a value's share says nothing about how common it is.
  uint64_t tfMinRecords = 1000;
  double locationCap = 16.0;         // bits: cap on the summed positive address evidence
  int parentChildYears = 12;         // birth years at least this far apart: parent/child rule
  uint32_t maxBlockSize = 1000;      // a blocking key with more records yields no candidates
  std::string defaultCallingCode = "1";
  bool gmailDotsOptional = true;
  double learningPriorStrength = 50.0;
  // Identifier systems (or type codes) that family members may share, such as insurance member
  // ids: agreeing on them does not override a hard-negative rule.
  std::vector<std::string> familySharedIdentifierSystems = {"MB"};
  NicknameTable nicknames;

  // Built-in defaults (the values shipped in conf/mpi.json).
  static MatchConfig defaults();
  // Parses JSON text; unknown top-level keys, unknown fields or levels, wrong sizes and
  // probabilities outside (0,1] fail with the offending path.
  static Result<MatchConfig> fromJson(std::string_view json);
  static Result<MatchConfig> load(const std::string& path);
  // Serialises m/u/lambda/thresholds/settings (nicknames: only those not built in are lost;
  // the extension list given at load is kept in extraNicknames).
  std::string toJson() const;

  // Recomputes FieldModel::weights from m and u. Called by the loaders and after estimation.
  void deriveWeights();
  double weight(Field f, uint8_t level) const {
    return level == kNullLevel ? 0.0 : fields[static_cast<size_t>(f)].weights[level];
  }
  double priorLogOdds() const;  // log2(lambda / (1 - lambda))

  std::vector<std::pair<std::string, std::vector<std::string>>> extraNicknames;
};

}  // namespace switchboard::mpi

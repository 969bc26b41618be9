// Reviewers' decisions as labelled pairs for `switchboard mpi learn`: every decided review item
// in the MPI store (merged: the same person; not-duplicate: different people), compared on the
// two source Patients as stored now. Undone items are open again and do not count. Reading
// labels never changes the store, so no MANUAL link is touched by learning.
// Thread-safety: labelsFromStore runs one read transaction on the store (MpiStore serialises
// its transactions); describeWeightChanges is a pure function.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/mpi/estimate.h"
#include "engine/mpi/match_config.h"
#include "engine/mpi/mpi_store.h"

namespace switchboard::mpi {

struct ReviewerLabels {
  std::vector<LabelledPair> pairs;
  size_t merges = 0;         // pairs labelled match
  size_t notDuplicates = 0;  // pairs labelled non-match
  size_t skipped = 0;        // decided items whose source Patient is missing or unreadable
};

// Compares the pairs with `config` (its levels; term frequencies do not apply to levels).
Result<ReviewerLabels> labelsFromStore(MpiStore& store, const MatchConfig& config);

// One line per field level whose weight moved by at least `minBits`:
// "<field> <level>: m a -> b, u c -> d, weight e -> f bits".
std::string describeWeightChanges(const MatchConfig& before, const MatchConfig& after,
                                  double minBits = 0.005);

}  // namespace switchboard::mpi

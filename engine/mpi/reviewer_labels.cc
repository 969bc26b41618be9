// Labelled pairs from the review queue. Thread-safety: see reviewer_labels.h.
#include "engine/mpi/reviewer_labels.h"

#include <cmath>
#include <cstdio>
#include <optional>

#include "engine/mpi/person_record.h"
#include "engine/mpi/scoring.h"

namespace switchboard::mpi {
namespace {

std::optional<NormalizedRecord> normalizedSource(MpiTx& tx, const std::string& id,
                                                 const MatchConfig& config) {
  auto s = tx.source(id);
  if (!s) return std::nullopt;
  auto p = personFromFhirPatientJson(s->resource);
  if (!p) return std::nullopt;
  return normalizeRecord(*p, config);
}

}  // namespace

Result<ReviewerLabels> labelsFromStore(MpiStore& store, const MatchConfig& config) {
  ReviewerLabels out;
  auto r = store.transaction([&](MpiTx& tx) -> Result<void> {
    out = ReviewerLabels{};
    for (ReviewStatus status : {ReviewStatus::kMerged, ReviewStatus::kNotDuplicate}) {
      ReviewFilter f;
      f.status = status;
      f.limit = 1000;
      for (;;) {
        auto page = tx.reviews(f);
        for (const auto& item : page) {
          auto a = normalizedSource(tx, item.sourceId, config);
          auto b = normalizedSource(tx, item.candidateId, config);
          if (!a || !b) {
            ++out.skipped;
            continue;
          }
          const bool match = status == ReviewStatus::kMerged;
          out.pairs.push_back({compareRecords(viewOf(*a), viewOf(*b), config), match});
          ++(match ? out.merges : out.notDuplicates);
        }
        if (page.size() < static_cast<size_t>(f.limit)) break;
        f.afterId = page.back().id;
      }
    }
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return out;
}

std::string describeWeightChanges(const MatchConfig& before, const MatchConfig& after,
                                  double minBits) {
  std::string out;
  for (size_t f = 0; f < kFieldCount; ++f) {
    const auto& names = levelNames(static_cast<Field>(f));
    const auto& b = before.fields[f];
    const auto& a = after.fields[f];
    for (size_t l = 0; l < names.size() && l < b.weights.size() && l < a.weights.size(); ++l) {
      if (std::fabs(a.weights[l] - b.weights[l]) < minBits) continue;
      char line[256];
      std::snprintf(line, sizeof line,
                    "%s %s: m %.4g -> %.4g, u %.4g -> %.4g, weight %.2f -> %.2f bits\n",
                    fieldName(static_cast<Field>(f)), names[l].c_str(), b.m[l], a.m[l], b.u[l],
                    a.u[l], b.weights[l], a.weights[l]);
      out += line;
    }
  }
  return out;
}

}  // namespace switchboard::mpi

// MpiService: the MPI as the engine uses it. Owns the in-memory index (rebuilt from the MpiStore
// at start), links every submitted source Patient to one golden record, queues undecided pairs
// for review, applies reviewers' decisions (merge with undo, not-duplicate) and answers $match.
// The machine never changes a MANUAL link. See docs/mpi.md section 9.
// Thread-safety: all methods may be called from any thread; reads share a lock, changes take
// it exclusively and commit to the store before the in-memory state changes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <rapidjson/document.h>

#include "engine/core/clock.h"
#include "engine/core/error.h"
#include "engine/mpi/mpi_index.h"
#include "engine/mpi/mpi_store.h"

namespace switchboard::mpi {

// The identifier system carrying the MPI's enterprise (golden record) id on every Patient sent
// to the EHR: the stage's conditional create and the merge Bundle's conditional updates key on it.
inline constexpr const char* kEnterpriseIdSystem = "urn:switchboard:mpi:enterprise-id";

// What submit() decided for one source Patient.
struct SubmitDecision {
  std::string sourceId;      // "<sourceSystem>/<Patient.id or first identifier>"
  std::string enterpriseId;  // the golden record the source now belongs to
  // MATCH: linked to an existing golden record; POSSIBLE_MATCH: a new provisional golden record
  // was created and review items opened; NO_MATCH: a new golden record, nothing similar.
  Decision result = Decision::kNoMatch;
  LinkOrigin origin = LinkOrigin::kAuto;
  bool createdGolden = false;
  bool updatedSource = false;  // the source was known; its record was replaced
  double score = 0;            // probability of the deciding pair (0 when none)
  double weight = 0;
  std::string contributions = "{}";  // Scorer::explainJson of the deciding pair
  std::vector<int64_t> reviewItemIds;
  // kDeferred on SQLite: the number of the store batch the submission joined (MpiStore), to
  // hand to settle(); 0 otherwise.
  std::uint64_t batch = 0;
};

// One golden record a $match query resembles.
struct GoldenMatch {
  std::string goldenId;
  std::string viaSourceId;  // the source record of that golden that scored best
  PairScore score;
  std::string grade;     // certain | probable | possible
  std::string resource;  // the golden Patient JSON
  std::string contributions;
};

struct SourceSide {
  std::string sourceId;
  std::string goldenId;
  std::string resource;
};

struct ReviewDetail {
  ReviewItem item;
  SourceSide left;   // the submitted record
  SourceSide right;  // the existing record
  // Per field: {"field","left","right","level","weight"}, a JSON array.
  std::string comparison;
};

enum class ReviewVerdict { kMerge, kNotDuplicate };

struct DecisionOutcome {
  ReviewItem item;
  std::optional<MergeEvent> merge;
  // FHIR transaction Bundle for the EHR: the survivor (active, link replaces) and the retired
  // record (active false, link replaced-by); for an undo, both records restored. Empty when
  // nothing is to be sent (not-duplicate, or both sources already shared a golden record).
  // The EHR knows golden records only by their enterprise identifier, so every entry is a
  // conditional update (PUT Patient?identifier=<kEnterpriseIdSystem>|<golden id>) with a
  // urn:uuid fullUrl, and Patient.link points at those fullUrls; every golden record a link
  // names is in the Bundle too, so each reference resolves inside the transaction.
  // See ehrBundle() and docs/mpi.md section 10.
  std::string bundle;
};

struct GoldenDetail {
  GoldenRecord record;
  std::vector<MpiLink> links;
};

class MpiService {
 public:
  // Rebuilds the index from the store. clock may be null (system clock); it must outlive the
  // service.
  static Result<std::unique_ptr<MpiService>> open(MatchConfig config,
                                                  std::unique_ptr<MpiStore> store,
                                                  const core::Clock* clock = nullptr);

  // Links one source Patient (JSON). A known source (same system and id) is updated: MANUAL
  // links stay as they are, AUTO ones are matched again (rematch). Errors: kStructure (not
  // JSON), kInvalid (not a Patient), kRequired (no id and no identifier), store errors.
  // durability kDeferred (the pipeline stage): the submission joins the store's open batch
  // (MpiStore::Durability) and is committed and flushed at the next settle() (or earlier, by
  // another caller's durable change), which the caller must await, passing the decision's
  // batch, before anything outside the MPI (the EHR) learns the decision; until then a crash
  // may lose it.
  // See docs/mpi.md section 9.
  Result<SubmitDecision> submit(std::string_view patientJson,
                                std::string_view sourceSystem = "default",
                                std::string_view actor = "system",
                                MpiStore::Durability durability = MpiStore::Durability::kFlushed);
  // The same for a Patient already parsed: `patient` must be the parse of `patientJson` (the
  // text kept in the store), which then is not parsed again (the mpi stage has it in hand).
  Result<SubmitDecision> submit(const rapidjson::Value& patient, std::string_view patientJson,
                                std::string_view sourceSystem, std::string_view actor,
                                MpiStore::Durability durability);

  // Commits the store's open batch (every kDeferred submission since the last commit, of any
  // caller) and puts every change made so far on disk (one commit and one flush for them all).
  // first..last: the batches (SubmitDecision::batch) of the caller's kDeferred submissions since
  // its last settle (0: none). kTransient when the commit or the flush fails, or when one of
  // those batches was lost: the caller must then treat its submissions as never made (the
  // in-memory index has been rebuilt from the store).
  Result<void> settle(std::uint64_t first = 0, std::uint64_t last = 0);

  // The automatic pass for one known source: MANUAL links are returned unchanged; an AUTO link
  // may move to a golden record that now matches (only when the source is alone in its own).
  Result<SubmitDecision> rematch(const std::string& sourceId, std::string_view actor = "system");

  // Golden records resembling a Patient, best first. onlyCertain keeps grade "certain" only.
  Result<std::vector<GoldenMatch>> match(std::string_view patientJson, bool onlyCertain,
                                         size_t count) const;

  Result<std::vector<ReviewItem>> reviews(const ReviewFilter& filter) const;
  Result<ReviewDetail> review(int64_t id) const;  // kNotFound
  // kNotFound; kConflict when the item is not open. reviewer must not be empty (kRequired).
  Result<DecisionOutcome> decide(int64_t id, ReviewVerdict verdict, const std::string& reviewer,
                                 const std::string& reason);
  // Reverts a decided item to open. kConflict when it is open, already undone, or the
  // survivor of its merge has since been merged away itself.
  Result<DecisionOutcome> undo(int64_t id, const std::string& reviewer, const std::string& reason);

  Result<GoldenDetail> golden(const std::string& id) const;  // kNotFound
  // The owner link of a source (its golden record), kNotFound when unknown.
  Result<MpiLink> linkOf(const std::string& sourceId) const;
  Result<std::vector<AuditEntry>> audit(const std::string& subject) const;

  size_t sourceCount() const;
  const MatchConfig& config() const { return index_.config(); }

 private:
  struct Owner {
    std::string goldenId;
    Decision result = Decision::kMatch;
    LinkOrigin origin = LinkOrigin::kAuto;
  };
  struct Candidate {  // best source of one golden record
    std::string goldenId;
    std::string sourceId;
    PairScore score;
  };

  MpiService(MatchConfig config, std::unique_ptr<MpiStore> store, const core::Clock* clock);
  // Fills the (empty) in-memory state from the store. mutex_ held exclusively.
  Result<void> loadLocked();
  // mutex_ held exclusively. commitBatch: first commits the store's open batch (for a change
  // that must build on committed state). Then, when a batch was lost since the in-memory state
  // was last built (or a rebuild failed), rebuilds it from the store, so memory never holds
  // what the store lost.
  Result<void> syncLocked(bool commitBatch);
  int64_t now() const;
  std::string newGoldenId();
  std::vector<Candidate> candidatesLocked(const NormalizedRecord& q, const std::string& self,
                                          size_t limit) const;
  Result<SubmitDecision> rematchLocked(const std::string& sourceId, std::string_view actor);
  // Survivorship over the members of a golden record; fills resource and provenance.
  // replaces: ids of the retired golden records this one replaces (Patient.link replaces).
  void rebuildGolden(MpiTx& tx, GoldenRecord& g, const std::set<std::string>& replaces);
  // The same from members already in hand (no store reads).
  void rebuildGolden(GoldenRecord& g, std::vector<SourcePatient> members,
                     const std::set<std::string>& replaces);
  // replaces_ of a golden record without adding an entry for it.
  const std::set<std::string>& replacesOf(const std::string& goldenId) const;
  Result<SubmitDecision> currentDecision(const std::string& sourceId);
  // currentDecision inside a transaction, for the given owner link.
  void decisionInTx(MpiTx& tx, const std::string& sourceId, const Owner& owner,
                    SubmitDecision& d) const;
  // The automatic pass for a known AUTO source whose current record is in the index: candidates
  // (other golden records, best first), then its store changes inside tx (move to a golden
  // record it now matches when alone in its own; review items), then applyRematch after the
  // commit for the in-memory state.
  struct RematchOutcome {
    bool move = false;
    std::set<std::string> newReplaces;  // of the golden record moved into
  };
  std::vector<Candidate> rematchCandidatesLocked(const NormalizedRecord& norm,
                                                 const std::string& sourceId,
                                                 const Owner& owner) const;
  Result<void> rematchInTx(MpiTx& tx, const std::string& sourceId, const Owner& owner,
                           const std::vector<Candidate>& cands, int64_t t, std::string_view actor,
                           SubmitDecision& d, RematchOutcome& out);
  void applyRematch(const std::string& sourceId, const std::vector<Candidate>& cands,
                    RematchOutcome& out);
  std::string explain(const PairScore& s) const;

  MpiIndex index_;
  std::unique_ptr<MpiStore> store_;
  const core::Clock* clock_;
  core::SystemClock systemClock_;
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, uint32_t> recordOf_;     // source id -> index record
  std::unordered_map<std::string, Owner> owner_;           // source id -> owner link
  std::set<std::pair<std::string, std::string>> noMatch_;  // MANUAL NO_MATCH (source, golden)
  std::map<std::string, std::set<std::string>> replaces_;  // survivor -> retired golden ids
  std::mt19937_64 rng_;
  std::uint64_t seenLost_ = 0;  // store_->lostBatches() when the in-memory state was built
  bool stale_ = false;          // a rebuild failed: the in-memory state is incomplete
};

// The fullUrl of a golden record in an EHR Bundle: "urn:uuid:" + a UUID made from the 128-bit
// golden id (version and variant bits set), stable for the same id.
std::string enterpriseFullUrl(const std::string& goldenId);

// The match-grade code for a score: certain (MATCH), probable (POSSIBLE_MATCH in the upper half
// between the thresholds), possible.
const char* matchGrade(const PairScore& s, const MatchConfig& c);

}  // namespace switchboard::mpi

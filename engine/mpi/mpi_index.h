// The in-memory MPI index: compact record store, blocking multimap and value frequencies, with
// single-record matching (Fellegi-Sunter over the union of blocks).
// Thread-safety: add/remove take an exclusive lock, match a shared one; the *Unlocked methods
// are for bulk phases in which no writer runs.
#pragma once

#include <cstdint>
#include <shared_mutex>
#include <string>
#include <vector>

#include "engine/mpi/blocking_index.h"
#include "engine/mpi/match_config.h"
#include "engine/mpi/person_record.h"
#include "engine/mpi/record_store.h"
#include "engine/mpi/scoring.h"

namespace switchboard::mpi {

struct MatchCandidate {
  uint32_t record = 0;
  std::string id;  // the candidate's source id (Patient.id)
  PairScore score;
};

struct IndexMemory {
  size_t records = 0;
  size_t storeBytes = 0;
  size_t blockingBytes = 0;
  size_t frequencyBytes = 0;
  size_t totalBytes() const { return storeBytes + blockingBytes + frequencyBytes; }
  double bytesPerRecord() const { return records ? double(totalBytes()) / double(records) : 0; }
};

class MpiIndex {
 public:
  explicit MpiIndex(MatchConfig config);

  const MatchConfig& config() const { return config_; }
  NormalizedRecord normalize(const PersonRecord& p) const { return normalizeRecord(p, config_); }

  // Files a record under its blocking keys and counts its values. Returns its index.
  uint32_t add(const NormalizedRecord& r);
  // Tombstones a record: it is no longer returned as a candidate.
  void remove(uint32_t record);
  // Undoes remove(record): the record is a candidate again and its values count again.
  void restore(uint32_t record);
  void reserve(size_t records);
  // Forgets every record (the config stays): for a rebuild from the store.
  void clear();

  // Candidates at or above `minimum`, best weight first, at most `limit`.
  std::vector<MatchCandidate> match(const NormalizedRecord& query, size_t limit = 10,
                                    Decision minimum = Decision::kPossibleMatch) const;

  // Distinct live records sharing a usable blocking key with q and whose index is below
  // `below`, in ascending order. `keys` is scratch space.
  void candidatesUnlocked(const RecordView& q, uint32_t below, std::vector<uint64_t>& keys,
                          std::vector<uint32_t>& out) const;
  RecordView viewUnlocked(uint32_t record) const { return store_.view(record); }
  uint32_t sizeUnlocked() const { return store_.size(); }
  const FrequencyTable& frequenciesUnlocked() const { return tf_; }
  Scorer scorerUnlocked() const { return Scorer(config_, &tf_); }

  IndexMemory memory() const;

 private:
  MatchConfig config_;
  mutable std::shared_mutex mutex_;
  RecordStore store_;
  BlockingIndex blocks_;
  FrequencyTable tf_;
};

}  // namespace switchboard::mpi

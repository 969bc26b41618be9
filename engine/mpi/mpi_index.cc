// In-memory MPI index. Thread-safety: see mpi_index.h.
#include "engine/mpi/mpi_index.h"

#include <algorithm>
#include <mutex>

namespace switchboard::mpi {

MpiIndex::MpiIndex(MatchConfig config) : config_(std::move(config)) {}

void MpiIndex::reserve(size_t records) {
  std::unique_lock lock(mutex_);
  store_.reserve(records);
  blocks_.reserve(records * 5, records * 8);
  tf_.reserve(records / 2);
}

void MpiIndex::clear() {
  std::unique_lock lock(mutex_);
  store_ = RecordStore();
  blocks_ = BlockingIndex();
  tf_ = FrequencyTable();
}

uint32_t MpiIndex::add(const NormalizedRecord& r) {
  std::unique_lock lock(mutex_);
  uint32_t idx = store_.add(r);
  RecordView v = store_.view(idx);
  std::vector<uint64_t> keys;
  blockingKeys(v, keys);
  for (uint64_t k : keys) blocks_.insert(k, idx);
  tf_.add(v);
  return idx;
}

void MpiIndex::remove(uint32_t record) {
  std::unique_lock lock(mutex_);
  if (record >= store_.size() || !store_.alive(record)) return;
  tf_.remove(store_.view(record));
  store_.remove(record);
}

void MpiIndex::restore(uint32_t record) {
  std::unique_lock lock(mutex_);
  if (record >= store_.size() || store_.alive(record)) return;
  store_.restore(record);
  tf_.add(store_.view(record));
}

void MpiIndex::candidatesUnlocked(const RecordView& q, uint32_t below, std::vector<uint64_t>& keys,
                                  std::vector<uint32_t>& out) const {
  keys.clear();
  out.clear();
  blockingKeys(q, keys);
  for (uint64_t k : keys) {
    blocks_.forEach(k, config_.maxBlockSize, [&](uint32_t rec) {
      if (rec < below) out.push_back(rec);
    });
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  out.erase(std::remove_if(out.begin(), out.end(), [&](uint32_t r) { return !store_.alive(r); }),
            out.end());
}

std::vector<MatchCandidate> MpiIndex::match(const NormalizedRecord& query, size_t limit,
                                            Decision minimum) const {
  std::shared_lock lock(mutex_);
  RecordView q = viewOf(query);
  std::vector<uint64_t> keys;
  std::vector<uint32_t> cands;
  candidatesUnlocked(q, UINT32_MAX, keys, cands);
  Scorer scorer(config_, &tf_);
  std::vector<MatchCandidate> out;
  for (uint32_t c : cands) {
    RecordView v = store_.view(c);
    PairScore s = scorer.score(q, v);
    if (s.decision < minimum) continue;
    out.push_back({c, std::string(v.id), s});
  }
  std::sort(out.begin(), out.end(), [](const MatchCandidate& a, const MatchCandidate& b) {
    return a.score.weight != b.score.weight ? a.score.weight > b.score.weight : a.record < b.record;
  });
  if (out.size() > limit) out.resize(limit);
  return out;
}

IndexMemory MpiIndex::memory() const {
  std::shared_lock lock(mutex_);
  IndexMemory m;
  m.records = store_.size();
  m.storeBytes = store_.memoryBytes();
  m.blockingBytes = blocks_.memoryBytes();
  m.frequencyBytes = tf_.memoryBytes();
  return m;
}

}  // namespace switchboard::mpi

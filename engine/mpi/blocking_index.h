// Blocking: the keys a record is filed under (docs/mpi.md section 5) and an open-addressing
// multimap from 64-bit key to record indices (posting lists threaded through two arrays).
// Thread-safety: not synchronised; MpiIndex serialises writers against readers.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/mpi/person_record.h"

namespace switchboard::mpi {

// Appends the blocking keys of a record (non-zero, possibly repeated) to out.
void blockingKeys(const RecordView& r, std::vector<uint64_t>& out);

class BlockingIndex {
 public:
  void insert(uint64_t key, uint32_t record);
  // Calls f(record) for each record under key, newest first, unless the block holds more than
  // maxBlock records (then nothing: the key is too common to be evidence). Returns the count.
  template <typename F>
  uint32_t forEach(uint64_t key, uint32_t maxBlock, F&& f) const {
    const Slot* s = find(key);
    if (s == nullptr) return 0;
    if (s->count > maxBlock) return s->count;
    for (uint32_t p = s->head; p != kNone; p = next_[p]) f(record_[p]);
    return s->count;
  }
  uint32_t blockSize(uint64_t key) const {
    const Slot* s = find(key);
    return s ? s->count : 0;
  }
  size_t keys() const { return used_; }
  size_t postings() const { return record_.size(); }
  size_t memoryBytes() const;
  void reserve(size_t keys, size_t postings);

 private:
  static constexpr uint32_t kNone = 0xFFFFFFFF;
  struct Slot {
    uint64_t key = 0;  // 0 = empty
    uint32_t head = kNone;
    uint32_t count = 0;
  };
  const Slot* find(uint64_t key) const;
  void grow();
  std::vector<Slot> slots_;
  size_t used_ = 0;
  std::vector<uint32_t> record_;
  std::vector<uint32_t> next_;
};

}  // namespace switchboard::mpi

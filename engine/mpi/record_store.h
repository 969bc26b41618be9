// Compact in-memory store of normalised records: fixed-size numeric part plus the strings in a
// chunked arena, so a patient costs about 80 bytes plus its text. Records are addressed by a
// dense uint32 index; removal leaves a tombstone.
// Thread-safety: not synchronised; MpiIndex serialises writers against readers.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/mpi/person_record.h"

namespace switchboard::mpi {

class RecordStore {
 public:
  uint32_t add(const NormalizedRecord& r);
  RecordView view(uint32_t index) const;
  void remove(uint32_t index) { fixed_[index].alive = 0; }
  void restore(uint32_t index) { fixed_[index].alive = 1; }  // undoes remove
  bool alive(uint32_t index) const { return fixed_[index].alive != 0; }
  uint32_t size() const { return static_cast<uint32_t>(fixed_.size()); }
  void reserve(size_t n) { fixed_.reserve(n); }
  size_t memoryBytes() const;

 private:
  static constexpr size_t kChunkSize = 1 << 20;
  static constexpr size_t kStrings = 8;
  struct Fixed {
    uint64_t phones[2];
    uint64_t emails[2];
    uint64_t givenCode, familyCode, givenCanon;
    uint32_t chunk;
    uint32_t offset;
    uint32_t birthDate;
    uint8_t len[kStrings];
    char sex;
    uint8_t alive;
  };
  std::vector<Fixed> fixed_;
  std::vector<std::unique_ptr<char[]>> chunks_;
  size_t used_ = kChunkSize;  // bytes used in the last chunk
};

}  // namespace switchboard::mpi

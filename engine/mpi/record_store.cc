// Compact record store. Thread-safety: see record_store.h.
#include "engine/mpi/record_store.h"

#include <algorithm>
#include <cstring>

namespace switchboard::mpi {

uint32_t RecordStore::add(const NormalizedRecord& r) {
  std::string_view parts[kStrings] = {r.id,   r.given,    r.family, r.address,
                                      r.city, r.postcode, r.state,  r.identifiers};
  Fixed f{};
  size_t total = 0;
  for (size_t i = 0; i < kStrings; ++i) {
    f.len[i] = static_cast<uint8_t>(std::min<size_t>(parts[i].size(), 255));
    total += f.len[i];
  }
  if (used_ + total > kChunkSize) {
    chunks_.push_back(std::make_unique<char[]>(kChunkSize));
    used_ = 0;
  }
  char* dst = chunks_.back().get() + used_;
  f.chunk = static_cast<uint32_t>(chunks_.size() - 1);
  f.offset = static_cast<uint32_t>(used_);
  for (size_t i = 0; i < kStrings; ++i) {
    std::memcpy(dst, parts[i].data(), f.len[i]);
    dst += f.len[i];
  }
  used_ += total;
  f.phones[0] = r.phones[0];
  f.phones[1] = r.phones[1];
  f.emails[0] = r.emails[0];
  f.emails[1] = r.emails[1];
  f.givenCode = r.givenCode;
  f.familyCode = r.familyCode;
  f.givenCanon = r.givenCanon;
  f.birthDate = r.birthDate;
  f.sex = r.sex;
  f.alive = 1;
  fixed_.push_back(f);
  return static_cast<uint32_t>(fixed_.size() - 1);
}

RecordView RecordStore::view(uint32_t index) const {
  const Fixed& f = fixed_[index];
  const char* p = chunks_[f.chunk].get() + f.offset;
  std::string_view* dst[kStrings];
  RecordView v;
  dst[0] = &v.id;
  dst[1] = &v.given;
  dst[2] = &v.family;
  dst[3] = &v.address;
  dst[4] = &v.city;
  dst[5] = &v.postcode;
  dst[6] = &v.state;
  dst[7] = &v.identifiers;
  for (size_t i = 0; i < kStrings; ++i) {
    *dst[i] = std::string_view(p, f.len[i]);
    p += f.len[i];
  }
  v.birthDate = f.birthDate;
  v.sex = f.sex;
  v.phones[0] = f.phones[0];
  v.phones[1] = f.phones[1];
  v.emails[0] = f.emails[0];
  v.emails[1] = f.emails[1];
  v.givenCode = f.givenCode;
  v.familyCode = f.familyCode;
  v.givenCanon = f.givenCanon;
  return v;
}

size_t RecordStore::memoryBytes() const {
  return fixed_.capacity() * sizeof(Fixed) + chunks_.size() * kChunkSize +
         chunks_.capacity() * sizeof(void*);
}

}  // namespace switchboard::mpi

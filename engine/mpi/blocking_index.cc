// Blocking keys and the blocking multimap. Thread-safety: see blocking_index.h.
#include "engine/mpi/blocking_index.h"

#include "engine/mpi/normalize.h"

namespace switchboard::mpi {
namespace {

uint64_t makeKey(uint64_t tag, uint64_t a, uint64_t b = 0) {
  uint64_t k = mix64(tag * 0x9E3779B97F4A7C15ULL ^ mix64(a + 0x632BE59BD9B4E019ULL) ^
                     (mix64(b) * 31));
  return k == 0 ? 1 : k;
}

}  // namespace

void blockingKeys(const RecordView& r, std::vector<uint64_t>& out) {
  const uint32_t year = r.birthDate / 10000;
  const bool fullDate = r.birthDate != 0 && r.birthDate % 100 != 0;
  if (r.familyCode != 0 && year != 0) out.push_back(makeKey('F', r.familyCode, year));
  for (uint64_t p : r.phones)
    if (p != 0) out.push_back(makeKey('P', p));
  if (fullDate) out.push_back(makeKey('D', r.birthDate));
  if (!r.identifiers.empty()) {
    std::string_view ids = r.identifiers;
    size_t i = 0;
    while (i <= ids.size()) {
      size_t j = ids.find('\x1f', i);
      if (j == std::string_view::npos) j = ids.size();
      if (j > i) out.push_back(makeKey('I', hash64(ids.substr(i, j - i))));
      i = j + 1;
    }
  }
  for (uint64_t e : r.emails)
    if (e != 0) out.push_back(makeKey('E', e));
  if (!r.postcode.empty() && !r.given.empty()) {
    out.push_back(makeKey('Z', hash64(r.postcode), static_cast<unsigned char>(r.given[0])));
  }
  if (r.givenCode != 0 && r.familyCode != 0) {
    uint64_t lo = r.givenCode < r.familyCode ? r.givenCode : r.familyCode;
    uint64_t hi = r.givenCode < r.familyCode ? r.familyCode : r.givenCode;
    out.push_back(makeKey('N', lo, hi));
  }
  if (r.givenCode != 0 && fullDate) out.push_back(makeKey('G', r.givenCode, r.birthDate));
}

const BlockingIndex::Slot* BlockingIndex::find(uint64_t key) const {
  if (slots_.empty()) return nullptr;
  size_t mask = slots_.size() - 1;
  for (size_t i = key & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.key == key) return &s;
    if (s.key == 0) return nullptr;
  }
}

void BlockingIndex::grow() {
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
  size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.key == 0) continue;
    size_t i = s.key & mask;
    while (slots_[i].key != 0) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

void BlockingIndex::reserve(size_t keys, size_t postings) {
  size_t want = 1024;
  while (want * 7 / 10 < keys) want *= 2;
  while (slots_.size() < want) grow();
  record_.reserve(postings);
  next_.reserve(postings);
}

void BlockingIndex::insert(uint64_t key, uint32_t record) {
  if ((used_ + 1) * 10 > slots_.size() * 7) grow();
  size_t mask = slots_.size() - 1;
  size_t i = key & mask;
  while (slots_[i].key != 0 && slots_[i].key != key) i = (i + 1) & mask;
  Slot& s = slots_[i];
  if (s.key == 0) {
    s.key = key;
    ++used_;
  }
  // A record filed twice under one key (two equal phones) appears once.
  if (s.head != kNone && record_[s.head] == record) return;
  record_.push_back(record);
  next_.push_back(s.head);
  s.head = static_cast<uint32_t>(record_.size() - 1);
  ++s.count;
}

size_t BlockingIndex::memoryBytes() const {
  return slots_.capacity() * sizeof(Slot) + record_.capacity() * 4 + next_.capacity() * 4;
}

}  // namespace switchboard::mpi

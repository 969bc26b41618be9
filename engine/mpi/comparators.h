// String, phonetic and date comparators used by MPI scoring.
// Thread-safety: pure functions, no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace switchboard::mpi {

// Jaro-Winkler similarity in [0,1] (prefix scale 0.1, prefix up to 4 characters).
double jaroWinkler(std::string_view a, std::string_view b);

// NYSIIS phonetic code (original algorithm, untruncated) of a folded name; letters only are
// considered. Empty for a name without letters.
std::string nysiis(std::string_view name);

// NYSIIS code of the letters of a name packed into 64 bits (5 bits per letter, first 12
// letters); 0 when empty.
uint64_t nysiisCode(std::string_view name);

// True when a and b differ by exactly one substituted character or one adjacent transposition
// (same length), or one inserted/deleted character.
bool oneEditApart(std::string_view a, std::string_view b);

// Birth-date closeness levels (dates as yyyymmdd numbers).
enum class DateCloseness {
  kExact,
  kTypoOrTransposed,  // one digit differs, two digits swapped, or day/month transposed
  kNear,              // same year and month, or year +-1 with same month and day
  kDifferent,
};
DateCloseness compareDates(uint32_t a, uint32_t b);

// Absolute difference in years between two yyyymmdd dates.
inline int yearsApart(uint32_t a, uint32_t b) {
  int ya = static_cast<int>(a / 10000), yb = static_cast<int>(b / 10000);
  return ya > yb ? ya - yb : yb - ya;
}

}  // namespace switchboard::mpi

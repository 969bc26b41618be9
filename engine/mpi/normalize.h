// Normalisers for person-record fields (names, dates, phones, emails, postcodes, identifiers).
// Thread-safety: free functions are pure; NicknameTable is immutable after construction.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace switchboard::mpi {

// Folds UTF-8 text to lower-case ASCII: Latin-1 and Latin Extended-A letters lose their accents
// (with ligatures expanded: "ß" -> "ss"), other non-ASCII code points and all punctuation become
// a space, and runs of spaces collapse. Invalid UTF-8 bytes are dropped.
std::string foldText(std::string_view utf8);

// Splits folded text on spaces.
std::vector<std::string> splitTokens(std::string_view folded);

// Family name: folded, hyphens/apostrophes split into parts ("García-López" -> "garcia lopez").
std::string normalizeFamilyName(std::string_view utf8);

// Given name(s): folded tokens joined by single spaces.
std::string normalizeGivenName(std::string_view utf8);

// Birth date as an 8-digit number yyyymmdd from "YYYY-MM-DD", "YYYYMMDD" or a FHIR partial
// date ("YYYY-MM" -> yyyymm00). Returns 0 when no digits can be read. Invalid calendar values
// are kept on purpose: a typo in a date is still evidence.
uint32_t normalizeBirthDate(std::string_view text);

// Phone number to E.164 digits (without '+') as an integer; 0 when fewer than 6 digits.
// "+" or "00" keeps the country code; otherwise a leading trunk '0' is dropped and
// defaultCallingCode is prefixed (unless the number already starts with it and is long).
uint64_t normalizePhone(std::string_view text, std::string_view defaultCallingCode);

// Email: lower-case, trimmed; gmail.com/googlemail.com drop dots and "+tag" in the local part.
std::string normalizeEmail(std::string_view text, bool gmailDotsOptional = true);

// Postcode: upper-case alphanumerics only.
std::string normalizePostcode(std::string_view text);

// Identifier value: upper-case alphanumerics only (spaces, dashes and dots removed).
std::string normalizeIdentifierValue(std::string_view text);

// Nickname table: maps a folded given-name token to its canonical form ("bill" -> "william").
// Built-in entries plus any added from configuration.
class NicknameTable {
 public:
  NicknameTable();  // built-in entries only
  // Adds a canonical name and its variants (all folded first).
  void add(std::string_view canonical, const std::vector<std::string>& variants);
  // Canonical form of a folded token, or the token itself when unknown.
  std::string_view canonical(std::string_view token) const;
  size_t size() const { return map_.size(); }

 private:
  std::unordered_map<std::string, std::string> map_;
};

// 64-bit FNV-1a hash used for blocking keys and frequency tables.
inline uint64_t hash64(std::string_view s, uint64_t seed = 1469598103934665603ULL) {
  uint64_t h = seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

}  // namespace switchboard::mpi

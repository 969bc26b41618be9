// String, phonetic and date comparators; written from the published algorithm descriptions
// (Jaro 1989 / Winkler 1990; NYSIIS, Taft 1970). Thread-safety: pure functions.
#include "engine/mpi/comparators.h"

#include <algorithm>
#include <array>
#include <cstdio>

namespace switchboard::mpi {

double jaroWinkler(std::string_view a, std::string_view b) {
  if (a.empty() || b.empty()) return 0.0;
  if (a == b) return 1.0;
  const size_t la = a.size(), lb = b.size();
  const size_t window = std::max<size_t>(la, lb) / 2 == 0 ? 0 : std::max<size_t>(la, lb) / 2 - 1;
  std::array<bool, 128> ma{}, mb{};
  if (la > 128 || lb > 128) return a == b ? 1.0 : 0.0;
  size_t matches = 0;
  for (size_t i = 0; i < la; ++i) {
    size_t lo = i > window ? i - window : 0;
    size_t hi = std::min(lb, i + window + 1);
    for (size_t j = lo; j < hi; ++j) {
      if (!mb[j] && a[i] == b[j]) {
        ma[i] = mb[j] = true;
        ++matches;
        break;
      }
    }
  }
  if (matches == 0) return 0.0;
  size_t t = 0, k = 0;
  for (size_t i = 0; i < la; ++i) {
    if (!ma[i]) continue;
    while (!mb[k]) ++k;
    if (a[i] != b[k]) ++t;
    ++k;
  }
  const double m = static_cast<double>(matches);
  const double jaro = (m / la + m / lb + (m - t / 2.0) / m) / 3.0;
  size_t prefix = 0;
  while (prefix < 4 && prefix < la && prefix < lb && a[prefix] == b[prefix]) ++prefix;
  return jaro + prefix * 0.1 * (1.0 - jaro);
}

namespace {
bool isVowel(char c) { return c == 'A' || c == 'E' || c == 'I' || c == 'O' || c == 'U'; }
}  // namespace

std::string nysiis(std::string_view name) {
  std::string s;
  for (char c : name) {
    if (c >= 'a' && c <= 'z') s.push_back(static_cast<char>(c - 'a' + 'A'));
    else if (c >= 'A' && c <= 'Z') s.push_back(c);
  }
  if (s.empty()) return {};
  // Step 1: translate the first characters.
  auto startsWith = [&](std::string_view p) { return s.rfind(p, 0) == 0; };
  if (startsWith("MAC")) s.replace(0, 3, "MCC");
  else if (startsWith("KN")) s.replace(0, 2, "NN");
  else if (startsWith("K")) s[0] = 'C';
  else if (startsWith("PH") || startsWith("PF")) s.replace(0, 2, "FF");
  else if (startsWith("SCH")) s.replace(0, 3, "SSS");
  // Step 2: translate the last characters.
  auto endsWith = [&](std::string_view p) {
    return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
  };
  if (endsWith("EE") || endsWith("IE")) {
    s.replace(s.size() - 2, 2, "Y");
  } else if (endsWith("DT") || endsWith("RT") || endsWith("RD") || endsWith("NT") ||
             endsWith("ND")) {
    s.replace(s.size() - 2, 2, "D");
  }
  // Step 3: the first character of the key is the first character of the name.
  std::string key(1, s[0]);
  // Step 4: translate the remaining characters one at a time, in place.
  for (size_t i = 1; i < s.size(); ++i) {
    char c = s[i];
    std::string rep;
    if (c == 'E' && i + 1 < s.size() && s[i + 1] == 'V') {
      s[i] = 'A';
      s[i + 1] = 'F';
      rep = "AF";
      ++i;
    } else if (isVowel(c)) {
      s[i] = 'A';
      rep = "A";
    } else if (c == 'Q') {
      s[i] = 'G';
      rep = "G";
    } else if (c == 'Z') {
      s[i] = 'S';
      rep = "S";
    } else if (c == 'M') {
      s[i] = 'N';
      rep = "N";
    } else if (c == 'K') {
      if (i + 1 < s.size() && s[i + 1] == 'N') {
        s[i] = 'N';
        rep = "N";
      } else {
        s[i] = 'C';
        rep = "C";
      }
    } else if (c == 'S' && i + 2 < s.size() && s[i + 1] == 'C' && s[i + 2] == 'H') {
      s[i] = s[i + 1] = s[i + 2] = 'S';
      rep = "SSS";
      i += 2;
    } else if (c == 'P' && i + 1 < s.size() && s[i + 1] == 'H') {
      s[i] = s[i + 1] = 'F';
      rep = "FF";
      ++i;
    } else if (c == 'H') {
      bool prevNon = !isVowel(s[i - 1]);
      bool nextNon = i + 1 >= s.size() || !isVowel(s[i + 1]);
      if (prevNon || nextNon) {
        s[i] = s[i - 1];
      }
      rep = std::string(1, s[i]);
    } else if (c == 'W' && isVowel(s[i - 1])) {
      s[i] = s[i - 1];
      rep = std::string(1, s[i]);
    } else {
      rep = std::string(1, c);
    }
    for (char r : rep) {
      if (key.back() != r) key.push_back(r);
    }
  }
  // Step 5: clean up the end of the key.
  if (key.size() > 1 && key.back() == 'S') key.pop_back();
  if (key.size() > 2 && key.compare(key.size() - 2, 2, "AY") == 0) key.replace(key.size() - 2, 2, "Y");
  if (key.size() > 1 && key.back() == 'A') key.pop_back();
  return key;
}

uint64_t nysiisCode(std::string_view name) {
  std::string k = nysiis(name);
  uint64_t code = 0;
  for (size_t i = 0; i < k.size() && i < 12; ++i) code = (code << 5) | static_cast<uint64_t>(k[i] - 'A' + 1);
  return code;
}

bool oneEditApart(std::string_view a, std::string_view b) {
  if (a == b) return false;
  if (a.size() == b.size()) {
    size_t first = a.size(), diffs = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i] != b[i]) {
        if (diffs == 0) first = i;
        ++diffs;
      }
    }
    if (diffs == 1) return true;
    return diffs == 2 && first + 1 < a.size() && a[first] == b[first + 1] &&
           a[first + 1] == b[first];
  }
  std::string_view lo = a.size() < b.size() ? a : b;
  std::string_view hi = a.size() < b.size() ? b : a;
  if (hi.size() != lo.size() + 1) return false;
  size_t i = 0;
  while (i < lo.size() && lo[i] == hi[i]) ++i;
  return lo.substr(i) == hi.substr(i + 1);
}

DateCloseness compareDates(uint32_t a, uint32_t b) {
  if (a == b) return DateCloseness::kExact;
  char sa[16], sb[16];
  std::snprintf(sa, sizeof sa, "%08u", a);
  std::snprintf(sb, sizeof sb, "%08u", b);
  if (oneEditApart(std::string_view(sa, 8), std::string_view(sb, 8))) {
    return DateCloseness::kTypoOrTransposed;
  }
  uint32_t ya = a / 10000, ma = a / 100 % 100, da = a % 100;
  uint32_t yb = b / 10000, mb = b / 100 % 100, db = b % 100;
  if (ya == yb && ma == db && da == mb) return DateCloseness::kTypoOrTransposed;
  if (ya == yb && ma == mb) return DateCloseness::kNear;
  if (ma == mb && da == db && (ya + 1 == yb || yb + 1 == ya)) return DateCloseness::kNear;
  return DateCloseness::kDifferent;
}

}  // namespace switchboard::mpi

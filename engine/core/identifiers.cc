#include "engine/core/identifiers.h"

namespace switchboard::core {

bool constantTimeEquals(std::string_view a, std::string_view b) {
  // Walk the longer length so the time does not reveal how long a matching prefix is.
  const std::size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

std::string normalizeE164(std::string_view raw, bool allowSeparators) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!raw.empty() && blank(raw.front())) raw.remove_prefix(1);
  while (!raw.empty() && blank(raw.back())) raw.remove_suffix(1);
  std::string digits;
  bool plusSeen = false;
  for (char c : raw) {
    if (c >= '0' && c <= '9') {
      digits += c;
    } else if (c == '+' && digits.empty() && !plusSeen) {
      plusSeen = true;
    } else if (allowSeparators && (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')')) {
      continue;
    } else {
      return {};
    }
  }
  if (digits.size() < 7 || digits.size() > 15 || digits.front() == '0') return {};
  return "+" + digits;
}

}  // namespace switchboard::core

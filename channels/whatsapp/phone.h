// E.164 normalisation of provider phone identifiers (Meta wa_id "16505551234", 8x8 msisdn
// "+16505551234"). Header-only so other vendor connectors may reuse it without linking.
// Thread-safety: pure function.
#pragma once

#include <string>
#include <string_view>

namespace switchboard::channels::whatsapp {

// "+" followed by 7 to 15 digits, the first not 0, from `raw` written with or without a leading
// "+". Anything else (a BSUID such as "US.13491208655302741918", a username, separators, an empty
// string) yields an empty string: the caller keeps the raw identifier separately.
inline std::string normalizeE164(std::string_view raw) {
  if (!raw.empty() && raw.front() == '+') raw.remove_prefix(1);
  if (raw.size() < 7 || raw.size() > 15 || raw.front() == '0') return {};
  for (char c : raw) {
    if (c < '0' || c > '9') return {};
  }
  std::string out;
  out.reserve(raw.size() + 1);
  out.push_back('+');
  out.append(raw);
  return out;
}

}  // namespace switchboard::channels::whatsapp

// Meta's X-Hub-Signature-256: "sha256=" + lowercase hex HMAC-SHA256(app secret, raw body bytes).
// Verification accepts any of several secrets (rotation) and compares in constant time.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace switchboard::channels::whatsapp {

// The header value Meta would send for `body` signed with `secret`.
std::string hubSignature256(std::string_view secret, std::string_view body);

enum class SignatureCheck {
  kValid,
  kMissing,    // no header
  kMalformed,  // not "sha256=" followed by 64 hex digits
  kMismatch,   // well formed, but no configured secret produces it
};

// Checks `header` (nullptr when absent) against the HMAC of `body` under each of `secrets`.
// Every secret is tried, so the time does not reveal which one matched.
SignatureCheck verifyHubSignature256(const std::string* header, std::string_view body,
                                     const std::vector<std::string>& secrets);

// Short, secret-free description for audit records.
const char* describe(SignatureCheck check);

}  // namespace switchboard::channels::whatsapp

// X-Hub-Signature-256 computation and verification over the raw request bytes.
#include "channels/whatsapp/meta_signature.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "channels/http/http_source.h"

namespace switchboard::channels::whatsapp {

namespace {
constexpr std::string_view kPrefix = "sha256=";

std::string hmacSha256Hex(std::string_view secret, std::string_view body) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  static const unsigned char kEmpty = 0;
  const auto* data = body.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(body.data());
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), data, body.size(), digest,
           &length) == nullptr) {
    return {};
  }
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0x0f]);
  }
  return out;
}

char lowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
}  // namespace

std::string hubSignature256(std::string_view secret, std::string_view body) {
  return std::string(kPrefix) + hmacSha256Hex(secret, body);
}

SignatureCheck verifyHubSignature256(const std::string* header, std::string_view body,
                                     const std::vector<std::string>& secrets) {
  if (header == nullptr) return SignatureCheck::kMissing;
  std::string_view value(*header);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.size() != kPrefix.size() + 64) return SignatureCheck::kMalformed;
  for (std::size_t i = 0; i < kPrefix.size(); ++i) {
    if (lowerAscii(value[i]) != kPrefix[i]) return SignatureCheck::kMalformed;
  }
  std::string given;
  given.reserve(64);
  for (char c : value.substr(kPrefix.size())) {
    char l = lowerAscii(c);
    if (!((l >= '0' && l <= '9') || (l >= 'a' && l <= 'f'))) return SignatureCheck::kMalformed;
    given.push_back(l);
  }
  bool matched = false;
  for (const auto& secret : secrets) {
    std::string expected = hmacSha256Hex(secret, body);
    bool same = !expected.empty() && constantTimeEquals(expected, given);
    matched = matched || same;
  }
  return matched ? SignatureCheck::kValid : SignatureCheck::kMismatch;
}

const char* describe(SignatureCheck check) {
  switch (check) {
    case SignatureCheck::kValid:
      return "X-Hub-Signature-256 valid";
    case SignatureCheck::kMissing:
      return "X-Hub-Signature-256 header missing";
    case SignatureCheck::kMalformed:
      return "X-Hub-Signature-256 header malformed (expected sha256= and 64 hex digits)";
    case SignatureCheck::kMismatch:
      return "X-Hub-Signature-256 does not match any configured app secret";
  }
  return "X-Hub-Signature-256 invalid";
}

}  // namespace switchboard::channels::whatsapp

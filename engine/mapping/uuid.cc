// Version-5 UUIDs and SHA-1 through OpenSSL's SHA1_* calls. Thread-safety: pure functions (the
// digest state lives on the caller's stack).
#include "engine/mapping/uuid.h"

#include <array>

// SHA1_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, whose per-digest provider
// context costs an allocation, a free and a cleanse on every digest (a fifth of the cost of the
// six short digests of a mapped submission); both run the same block function.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

namespace switchboard::mapping {
namespace {

// f54cdbb8-4031-55a2-b66d-a2b3facc92af = uuid5(NAMESPACE_URL, "urn:switchboard:mapping"), fixed
// forever: changing it changes every id.
constexpr std::array<unsigned char, 16> kNamespace = {
    0xf5, 0x4c, 0xdb, 0xb8, 0x40, 0x31, 0x55, 0xa2, 0xb6, 0x6d, 0xa2, 0xb3, 0xfa, 0xcc, 0x92, 0xaf};

// SHA-1 of `bytes` from the state `start` (a fresh digest when null).
std::array<unsigned char, 20> sha1(const SHA_CTX* start, std::string_view bytes) {
  SHA_CTX ctx;
  if (start)
    ctx = *start;
  else
    SHA1_Init(&ctx);
  SHA1_Update(&ctx, bytes.data(), bytes.size());
  std::array<unsigned char, 20> out{};
  SHA1_Final(out.data(), &ctx);
  return out;
}

// The digest state after the namespace bytes, copied for each UUID.
const SHA_CTX& namespaceState() {
  static const SHA_CTX state = [] {
    SHA_CTX ctx;
    SHA1_Init(&ctx);
    SHA1_Update(&ctx, kNamespace.data(), kNamespace.size());
    return ctx;
  }();
  return state;
}

}  // namespace

void writeNameUuid(std::string_view name, char* out) {
  auto h = sha1(&namespaceState(), name);
  h[6] = static_cast<unsigned char>((h[6] & 0x0f) | 0x50);
  h[8] = static_cast<unsigned char>((h[8] & 0x3f) | 0x80);
  static const char* kHex = "0123456789abcdef";
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *out++ = '-';
    *out++ = kHex[h[i] >> 4];
    *out++ = kHex[h[i] & 15];
  }
}

std::string nameUuid(std::string_view name) {
  std::string out(36, '\0');
  writeNameUuid(name, out.data());
  return out;
}

std::string sha1Hex(std::string_view bytes) {
  std::string out(40, '\0');
  writeSha1Hex(bytes, out.data());
  return out;
}

void writeSha1Hex(std::string_view bytes, char* out) {
  const auto h = sha1(nullptr, bytes);
  static const char* kHex = "0123456789abcdef";
  for (unsigned char c : h) {
    *out++ = kHex[c >> 4];
    *out++ = kHex[c & 15];
  }
}

}  // namespace switchboard::mapping

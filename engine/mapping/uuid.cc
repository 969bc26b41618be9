// Version-5 UUIDs and SHA-1 through OpenSSL's EVP interface. Thread-safety: pure functions (each
// thread has its own digest context).
#include "engine/mapping/uuid.h"

#include <array>

#include <openssl/evp.h>

namespace switchboard::mapping {
namespace {

// f54cdbb8-4031-55a2-b66d-a2b3facc92af = uuid5(NAMESPACE_URL, "urn:switchboard:mapping"), fixed
// forever: changing it changes every id.
constexpr std::array<unsigned char, 16> kNamespace = {
    0xf5, 0x4c, 0xdb, 0xb8, 0x40, 0x31, 0x55, 0xa2, 0xb6, 0x6d, 0xa2, 0xb3, 0xfa, 0xcc, 0x92, 0xaf};

// SHA-1 is fetched from the provider once, and each thread keeps one digest context: a digest is
// then Init/Update/Final with no allocation or provider lookup.
const EVP_MD* sha1Md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  return md;
}

std::array<unsigned char, 20> sha1(std::string_view a, std::string_view b) {
  struct Ctx {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Ctx() { EVP_MD_CTX_free(ctx); }
  };
  static thread_local Ctx local;
  std::array<unsigned char, 20> out{};
  unsigned int len = 0;
  EVP_MD_CTX* ctx = local.ctx;
  const EVP_MD* md = sha1Md();
  if (ctx && md && EVP_DigestInit_ex(ctx, md, nullptr) == 1 &&
      EVP_DigestUpdate(ctx, a.data(), a.size()) == 1 &&
      EVP_DigestUpdate(ctx, b.data(), b.size()) == 1) {
    EVP_DigestFinal_ex(ctx, out.data(), &len);
  }
  return out;
}

}  // namespace

void writeNameUuid(std::string_view name, char* out) {
  auto h = sha1(
      std::string_view(reinterpret_cast<const char*>(kNamespace.data()), kNamespace.size()), name);
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
  auto h = sha1(bytes, {});
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(40);
  for (unsigned char c : h) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

}  // namespace switchboard::mapping

#include "channels/twilio/twilio_signature.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

namespace switchboard::channels::twilio {

std::string signingString(std::string_view url, const Params& params) {
  // std::string compares through char_traits<char>, i.e. like memcmp on unsigned bytes.
  std::map<std::string, std::set<std::string>> sorted;
  for (const auto& [name, value] : params) sorted[name].insert(value);
  std::string data(url);
  for (const auto& [name, values] : sorted) {
    for (const auto& value : values) {
      data += name;
      data += value;
    }
  }
  return data;
}

std::string computeSignature(std::string_view authToken, std::string_view url,
                             const Params& params) {
  const std::string data = signingString(url, params);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int macLength = 0;
  HMAC(EVP_sha1(), authToken.data(), static_cast<int>(authToken.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &macLength);
  std::string out(4 * ((macLength + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), mac,
                          static_cast<int>(macLength));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

namespace {

struct UrlParts {
  std::string scheme;    // as written
  std::string userinfo;  // with the trailing '@', or empty
  std::string host;      // including brackets for IPv6
  std::optional<std::string> port;
  std::string rest;  // path, query and fragment
};

std::optional<UrlParts> splitUrl(std::string_view url) {
  std::size_t sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) return std::nullopt;
  UrlParts parts;
  parts.scheme = std::string(url.substr(0, sep));
  std::size_t authorityStart = sep + 3;
  std::size_t authorityEnd = url.find_first_of("/?#", authorityStart);
  if (authorityEnd == std::string_view::npos) authorityEnd = url.size();
  std::string_view authority = url.substr(authorityStart, authorityEnd - authorityStart);
  parts.rest = std::string(url.substr(authorityEnd));
  if (std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    parts.userinfo = std::string(authority.substr(0, at + 1));
    authority.remove_prefix(at + 1);
  }
  std::size_t colon = std::string_view::npos;
  if (!authority.empty() && authority.front() == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    if (close + 1 < authority.size() && authority[close + 1] == ':') colon = close + 1;
  } else {
    colon = authority.rfind(':');
  }
  if (colon != std::string_view::npos) {
    std::string_view port = authority.substr(colon + 1);
    if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    parts.host = std::string(authority.substr(0, colon));
    if (!port.empty()) parts.port = std::string(port);
  } else {
    parts.host = std::string(authority);
  }
  if (parts.host.empty()) return std::nullopt;
  return parts;
}

std::string joinUrl(const UrlParts& p, const std::optional<std::string>& port) {
  std::string out = p.scheme + "://" + p.userinfo + p.host;
  if (port) out += ":" + *port;
  return out + p.rest;
}

}  // namespace

std::vector<std::string> signatureUrlVariants(std::string_view url) {
  std::optional<UrlParts> parts = splitUrl(url);
  if (!parts) return {std::string(url)};
  std::optional<std::string> port = parts->port;
  if (!port) {
    std::string scheme = parts->scheme;
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (scheme == "https") port = "443";
    if (scheme == "http") port = "80";
  }
  std::vector<std::string> out;
  out.push_back(joinUrl(*parts, port));
  std::string without = joinUrl(*parts, std::nullopt);
  if (without != out.front()) out.push_back(std::move(without));
  return out;
}

std::string sha256Hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * SHA256_DIGEST_LENGTH);
  for (unsigned char b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 0x0f];
  }
  return out;
}


}  // namespace switchboard::channels::twilio

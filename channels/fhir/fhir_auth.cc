#include "channels/fhir/fhir_auth.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <memory>

#include "channels/fhir/http_call.h"

namespace switchboard::channels::fhir {

namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

Result<PkeyPtr> loadKey(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  if (!bio) return fail(ErrorCode::kException, "out of memory");
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) return fail(ErrorCode::kInvalid, "private_key is not a PEM private key");
  return PkeyPtr(key);
}

std::string jsonString(std::string_view s) {
  rapidjson::StringBuffer b;
  rapidjson::Writer<rapidjson::StringBuffer> w(b);
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  return b.GetString();
}

std::string randomHex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes));
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

}  // namespace

std::string base64Url(std::string_view bytes) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
  for (; i + 2 < bytes.size(); i += 3) {
    unsigned v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
    out += table[v & 63];
  }
  if (i + 1 == bytes.size()) {
    unsigned v = byte(i) << 16;
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
  } else if (i + 2 == bytes.size()) {
    unsigned v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
  }
  return out;
}

Result<void> Authenticator::checkKey(const std::string& privateKeyPem, const std::string& algorithm) {
  auto key = loadKey(privateKeyPem);
  if (!key) return std::unexpected(key.error());
  int type = EVP_PKEY_base_id(key->get());
  if (algorithm == "RS384" && type != EVP_PKEY_RSA) return fail(ErrorCode::kInvalid, "RS384 needs an RSA private key");
  if (algorithm == "ES384") {
    if (type != EVP_PKEY_EC) return fail(ErrorCode::kInvalid, "ES384 needs an EC P-384 private key");
    if (EVP_PKEY_bits(key->get()) != 384) return fail(ErrorCode::kInvalid, "ES384 needs a P-384 key");
  }
  if (algorithm != "RS384" && algorithm != "ES384") return fail(ErrorCode::kInvalid, "algorithm must be RS384 or ES384");
  return {};
}

Result<std::string> Authenticator::signJwt(const std::string& headerJson, const std::string& claimsJson,
                                           const std::string& privateKeyPem, const std::string& algorithm) {
  if (auto ok = checkKey(privateKeyPem, algorithm); !ok) return std::unexpected(ok.error());
  auto key = loadKey(privateKeyPem);
  std::string input = base64Url(headerJson) + "." + base64Url(claimsJson);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha384(), nullptr, key->get()) != 1 ||
      EVP_DigestSignUpdate(ctx.get(), input.data(), input.size()) != 1) {
    return fail(ErrorCode::kException, "JWT signing failed");
  }
  std::size_t len = 0;
  EVP_DigestSignFinal(ctx.get(), nullptr, &len);
  std::string sig(len, '\0');
  if (EVP_DigestSignFinal(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len) != 1) {
    return fail(ErrorCode::kException, "JWT signing failed");
  }
  sig.resize(len);
  if (algorithm == "ES384") {
    // JWS wants r||s, each 48 bytes, not the DER ECDSA-Sig-Value OpenSSL produces.
    const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* der = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    if (der == nullptr) return fail(ErrorCode::kException, "ES384 signature decode failed");
    const BIGNUM* r = nullptr;
    const BIGNUM* s = nullptr;
    ECDSA_SIG_get0(der, &r, &s);
    std::string raw(96, '\0');
    BN_bn2binpad(r, reinterpret_cast<unsigned char*>(raw.data()), 48);
    BN_bn2binpad(s, reinterpret_cast<unsigned char*>(raw.data()) + 48, 48);
    ECDSA_SIG_free(der);
    sig = std::move(raw);
  }
  return input + "." + base64Url(sig);
}

Authenticator::Authenticator(AuthConfig config, std::string fhirBaseUrl, std::shared_ptr<TlsContexts> tls,
                             const core::Clock& clock)
    : config_(std::move(config)), fhirBaseUrl_(std::move(fhirBaseUrl)), tls_(std::move(tls)), clock_(clock) {
  if (config_.kind == AuthKind::kBearer) cachedHeader_ = "Bearer " + config_.token;
}

int Authenticator::tokensFetched() const {
  std::lock_guard lock(mutex_);
  return fetched_;
}

Result<std::string> Authenticator::authorization() {
  if (config_.kind == AuthKind::kNone) return std::string();
  std::lock_guard lock(mutex_);
  if (config_.kind == AuthKind::kBearer) return cachedHeader_;
  const core::Millis margin = std::chrono::duration_cast<std::chrono::milliseconds>(config_.refreshMargin).count();
  if (!cachedHeader_.empty() && clock_.nowMs() + margin < expiresAtMs_) return cachedHeader_;
  return fetchToken();
}

void Authenticator::invalidate(const std::string& header) {
  if (config_.kind == AuthKind::kNone || config_.kind == AuthKind::kBearer) return;
  std::lock_guard lock(mutex_);
  if (cachedHeader_ == header) {
    cachedHeader_.clear();
    expiresAtMs_ = 0;
  }
}

Result<std::string> Authenticator::discoverTokenUrl() {
  std::string base = fhirBaseUrl_;
  while (!base.empty() && base.back() == '/') base.pop_back();
  auto ex = call("GET", base + "/.well-known/smart-configuration", {{"Accept", "application/json"}}, {},
                 config_.timeout, *tls_, 1 << 20);
  if (!ex) return std::unexpected(ex.error());
  if (ex->status != 200) {
    return fail(ErrorCode::kTransient, "SMART discovery answered HTTP " + std::to_string(ex->status));
  }
  rapidjson::Document doc;
  doc.Parse(ex->body.data(), ex->body.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("token_endpoint") || !doc["token_endpoint"].IsString()) {
    return fail(ErrorCode::kTransient, "SMART discovery document has no token_endpoint");
  }
  return std::string(doc["token_endpoint"].GetString());
}

// Called with mutex_ held.
Result<std::string> Authenticator::fetchToken() {
  if (config_.tokenUrl.empty()) {
    auto url = discoverTokenUrl();
    if (!url) return std::unexpected(url.error());
    config_.tokenUrl = *url;
  }
  std::vector<core::HttpHeader> headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                                           {"Accept", "application/json"}};
  std::string form = "grant_type=client_credentials";
  if (!config_.scope.empty()) form += "&scope=" + formEncode(config_.scope);
  if (config_.kind == AuthKind::kClientSecret) {
    std::string pair = formEncode(config_.clientId) + ":" + formEncode(config_.clientSecret);
    std::string b64;
    {
      std::string out(4 * ((pair.size() + 2) / 3) + 1, '\0');
      int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                              reinterpret_cast<const unsigned char*>(pair.data()), static_cast<int>(pair.size()));
      out.resize(static_cast<std::size_t>(n));
      b64 = std::move(out);
    }
    headers.push_back({"Authorization", "Basic " + b64});
  } else {
    const std::int64_t now = clock_.nowMs() / 1000;
    std::string header = "{\"alg\":" + jsonString(config_.algorithm) + ",\"kid\":" + jsonString(config_.keyId) +
                         ",\"typ\":\"JWT\"}";
    std::string claims = "{\"iss\":" + jsonString(config_.clientId) + ",\"sub\":" + jsonString(config_.clientId) +
                         ",\"aud\":" + jsonString(config_.tokenUrl) + ",\"exp\":" + std::to_string(now + 240) +
                         ",\"iat\":" + std::to_string(now) + ",\"jti\":\"" + randomHex(16) + "\"}";
    auto jwt = signJwt(header, claims, config_.privateKeyPem, config_.algorithm);
    if (!jwt) return std::unexpected(jwt.error());
    form += "&client_assertion_type=" + formEncode("urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    form += "&client_assertion=" + *jwt;
  }
  auto ex = call("POST", config_.tokenUrl, headers, form, config_.timeout, *tls_, 1 << 20);
  if (!ex) return std::unexpected(ex.error());
  if (ex->status != 200) {
    std::string what = "token endpoint answered HTTP " + std::to_string(ex->status);
    rapidjson::Document err;
    err.Parse(ex->body.data(), ex->body.size());
    if (!err.HasParseError() && err.IsObject() && err.HasMember("error") && err["error"].IsString()) {
      what += " (" + std::string(err["error"].GetString()) + ")";
    }
    return fail(ex->status == 400 || ex->status == 401 ? ErrorCode::kSecurity : ErrorCode::kTransient, what);
  }
  rapidjson::Document doc;
  doc.Parse(ex->body.data(), ex->body.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("access_token") || !doc["access_token"].IsString()) {
    return fail(ErrorCode::kTransient, "token endpoint answer has no access_token");
  }
  if (doc.HasMember("token_type") && doc["token_type"].IsString()) {
    std::string type = doc["token_type"].GetString();
    for (auto& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (type != "bearer") return fail(ErrorCode::kSecurity, "token endpoint issued a non-bearer token");
  }
  std::int64_t expiresIn = 300;
  if (doc.HasMember("expires_in") && doc["expires_in"].IsInt64()) expiresIn = doc["expires_in"].GetInt64();
  cachedHeader_ = "Bearer " + std::string(doc["access_token"].GetString());
  expiresAtMs_ = clock_.nowMs() + expiresIn * 1000;
  ++fetched_;
  return cachedHeader_;
}

}  // namespace switchboard::channels::fhir

// Authentication for the FHIR destination: none, a static bearer token, OAuth2 client credentials
// with a client secret, and SMART Backend Services (client_credentials with a private_key_jwt
// client assertion signed RS384 or ES384, with kid and a unique jti). Tokens are cached until
// shortly before they expire and dropped when the server answers 401.
// Thread-safety: authorization() and invalidate() may be called concurrently.
#pragma once

#include <chrono>
#include <mutex>
#include <string>

#include <memory>

#include "channels/fhir/http_call.h"

#include "engine/core/clock.h"
#include "engine/core/error.h"

namespace switchboard::channels::fhir {

enum class AuthKind { kNone, kBearer, kClientSecret, kSmartBackend };

struct AuthConfig {
  AuthKind kind = AuthKind::kNone;
  std::string token;         // kBearer
  std::string tokenUrl;      // OAuth kinds; empty with kSmartBackend: discovered
  std::string clientId;
  std::string clientSecret;  // kClientSecret (sent with HTTP Basic)
  std::string scope;
  std::string privateKeyPem;  // kSmartBackend: PKCS#8 or traditional PEM, RSA or EC P-384
  std::string algorithm = "RS384";  // RS384 | ES384
  std::string keyId;                // JWT header kid
  std::chrono::milliseconds timeout{10000};
  std::chrono::seconds refreshMargin{30};  // renew this long before expiry
};

class Authenticator {
 public:
  Authenticator(AuthConfig config, std::string fhirBaseUrl, std::shared_ptr<TlsContexts> tls,
                const core::Clock& clock);

  // The Authorization header value ("Bearer ..."), or "" for kNone. Fetches a token when none
  // is cached or the cached one is about to expire. Errors carry kTransient (retry later) or
  // kSecurity (the token endpoint refused the client).
  Result<std::string> authorization();
  // Forgets `header`'s token after the FHIR server refused it (a newer token is kept).
  void invalidate(const std::string& header);
  // Number of tokens fetched (for tests and metrics).
  int tokensFetched() const;

  // Builds a signed JWT (compact JWS). Exposed for tests.
  static Result<std::string> signJwt(const std::string& headerJson, const std::string& claimsJson,
                                     const std::string& privateKeyPem, const std::string& algorithm);
  // Checks that the key loads and suits the algorithm (used at config time).
  static Result<void> checkKey(const std::string& privateKeyPem, const std::string& algorithm);

 private:
  Result<std::string> fetchToken();
  Result<std::string> discoverTokenUrl();

  AuthConfig config_;
  std::string fhirBaseUrl_;
  std::shared_ptr<TlsContexts> tls_;
  const core::Clock& clock_;
  mutable std::mutex mutex_;
  std::string cachedHeader_;
  core::Millis expiresAtMs_ = 0;
  int fetched_ = 0;
};

std::string base64Url(std::string_view bytes);

}  // namespace switchboard::channels::fhir

// One HTTP(S) request/response exchange for the FHIR destination and its token endpoint calls.
// TLS verifies the peer certificate and host name against the system CAs or a configured CA file,
// with TLS 1.2 as the floor. Thread-safety: a TlsSettings is immutable once built; call() is safe
// to use concurrently (each call holds its own connection).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <Poco/Net/Context.h>

#include "channels/http/client_pool.h"
#include "channels/http/http_client.h"
#include "engine/core/error.h"
#include "engine/core/http_types.h"

namespace switchboard::channels::fhir {

// A response; header() compares names case-insensitively.
using HttpExchange = channels::HttpReply;

// Client TLS contexts, one per host: the peer certificate must chain to the system CAs (or the
// configured CA file) and name exactly the host connected to (DNS name or IP address, checked by
// OpenSSL during the handshake; no fallback to resolving the certificate's names).
class TlsContexts {
 public:
  explicit TlsContexts(std::string caFile) : caFile_(std::move(caFile)) {}
  Poco::Net::Context::Ptr forHost(const std::string& host);

 private:
  std::string caFile_;
  std::mutex mutex_;
  std::map<std::string, Poco::Net::Context::Ptr> byHost_;
};

// Performs the request, on a kept connection from `pool` when given (a fresh one otherwise).
// Connection failures and timeouts are errors with code kTransient or kTimeout; any HTTP status is
// a successful exchange. The response body is read up to maxBody bytes.
Result<HttpExchange> call(const std::string& method, const std::string& url,
                          const std::vector<core::HttpHeader>& headers, std::string_view body,
                          std::chrono::milliseconds timeout, TlsContexts& tls,
                          std::size_t maxBody = 8 << 20, ClientPool* pool = nullptr);

// application/x-www-form-urlencoded encoding of one value.
std::string formEncode(std::string_view value);

}  // namespace switchboard::channels::fhir

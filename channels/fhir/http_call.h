// One HTTP(S) request/response exchange for the FHIR destination and its token endpoint calls.
// TLS verifies the peer certificate and host name against the system CAs or a configured CA file,
// with TLS 1.2 as the floor. Thread-safety: a TlsSettings is immutable once built; call() opens
// its own connection and is safe to use concurrently.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <Poco/Net/Context.h>

#include "engine/core/error.h"
#include "engine/core/http_types.h"

namespace switchboard::channels::fhir {

struct HttpExchange {
  int status = 0;
  std::string reason;
  std::vector<core::HttpHeader> headers;  // response headers
  std::string body;
  const std::string* header(std::string_view name) const;  // case-insensitive
};

// Builds the client TLS context: caFile empty = the system's default CAs.
Poco::Net::Context::Ptr makeClientContext(const std::string& caFile);

// Performs the request. Connection failures and timeouts are errors with code kTransient or
// kTimeout; any HTTP status is a successful exchange. The response body is read up to maxBody
// bytes.
Result<HttpExchange> call(const std::string& method, const std::string& url,
                          const std::vector<core::HttpHeader>& headers, std::string_view body,
                          std::chrono::milliseconds timeout, const Poco::Net::Context::Ptr& tls,
                          std::size_t maxBody = 8 << 20);

// application/x-www-form-urlencoded encoding of one value.
std::string formEncode(std::string_view value);

}  // namespace switchboard::channels::fhir

// The `fhir` destination: POSTs a transaction (or batch) Bundle to the EHR's FHIR base URL, or a
// single resource to [base]/[type]. Reads the transaction-response and keeps each entry's status
// and location as the delivery's response. 2xx is Ok; timeouts, connection errors, 408, 429
// (Retry-After honoured) and 5xx are Retry; 401 drops the cached OAuth token and retries; other
// 4xx are permanent and keep the server's OperationOutcome issues.
// A plain http:// base URL is served by the lean HttpClient, and sendMany() runs a pass's POSTs
// at once over up to kConnections connections; https:// goes through Poco NetSSL (certificate
// and host name verified), one request after another.
// Thread-safety: send() and sendMany() are safe to call concurrently (each call holds its own
// connections; the authenticator synchronises its token cache).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "channels/fhir/http_call.h"

#include "channels/fhir/fhir_auth.h"
#include "engine/core/clock.h"
#include "engine/core/connector.h"

namespace switchboard::channels::fhir {

struct FhirDestinationConfig {
  std::string baseUrl;
  std::string prefer = "minimal";  // minimal | representation | OperationOutcome
  std::chrono::milliseconds timeout{15000};
  std::string caFile;
  std::vector<core::HttpHeader> headers;
  AuthConfig auth;
};

class FhirDestination final : public core::Destination {
 public:
  FhirDestination(FhirDestinationConfig config, const core::Clock& clock);
  std::string endpointKey() const override;
  core::DeliveryResult send(const core::DeliveryRequest& request) override;
  void sendMany(std::span<const core::DeliveryRequest* const> requests,
                std::span<core::SentDelivery> sent) override;
  std::size_t sendsAtOnce() const override { return kConnections; }
  Authenticator& authenticator() { return *auth_; }

  // Connections one sendMany() uses at most (one request in flight on each).
  static constexpr std::size_t kConnections = 8;

  static Result<std::unique_ptr<core::Destination>> create(core::ConfigReader& config,
                                                           const core::ConnectorContext& ctx);

 private:
  // One delivery made ready to send: where, with which headers; or the result it gets unsent.
  struct Prepared {
    std::string url;
    std::vector<core::HttpHeader> headers;
    std::string authorization;  // the Authorization value sent (dropped from the cache on a 401)
    bool repeatable = false;
    std::optional<core::DeliveryResult> unsent;
  };
  Prepared prepare(const core::DeliveryRequest& request);
  // The delivery's result from the server's answer (or the exchange's failure).
  core::DeliveryResult interpret(const Prepared& prepared, const Result<HttpExchange>& ex);
  // One exchange: the lean client for http://, Poco (TLS) otherwise.
  Result<HttpExchange> exchange(const Prepared& prepared, std::string_view body);

  FhirDestinationConfig config_;
  const bool plainHttp_;  // base URL is http://: HttpClient serves it
  std::shared_ptr<TlsContexts> tls_;
  std::unique_ptr<Authenticator> auth_;
  ClientPool connections_;  // kept-alive connections to an https:// FHIR server
  HttpClient client_;       // kept-alive connections to an http:// FHIR server
};

// What the destination reads from a payload to send it: its resourceType; whether it is a
// transaction or batch Bundle, which goes to the base URL (another resource goes to
// [base]/[type]); and whether that Bundle is repeatable (repeatableBundle()). Empty when the
// payload is not a FHIR JSON resource: not JSON, not an object, or no string resourceType.
struct PayloadRoute {
  std::string type;
  bool toBase = false;
  bool repeatable = false;
};
std::optional<PayloadRoute> routePayload(std::string_view payload);

// Whether posting this transaction or batch Bundle again creates nothing the first post did not:
// every entry reads, deletes, updates (PUT) or creates conditionally (POST with ifNoneExist). The
// destination's results say so (core::DeliveryResult::repeatable).
bool repeatableBundle(const rapidjson::Value& bundle);

// Compact summary of a transaction-response Bundle: {"entry":[{"status":..,"location":..}]}.
// For another resource type, {"status":<http>,"location":<Location header>}.
std::string summariseSuccess(int httpStatus, const std::string& body, const std::string& location);
// Compact summary of a failure: {"status":<http>,"issues":[{severity,code,diagnostics,expression}]}.
std::string summariseFailure(int httpStatus, const std::string& body);

}  // namespace switchboard::channels::fhir

// The `fhir` destination: POSTs a transaction (or batch) Bundle to the EHR's FHIR base URL, or a
// single resource to [base]/[type]. Reads the transaction-response and keeps each entry's status
// and location as the delivery's response. 2xx is Ok; timeouts, connection errors, 408, 429
// (Retry-After honoured) and 5xx are Retry; 401 drops the cached OAuth token and retries; other
// 4xx are permanent and keep the server's OperationOutcome issues.
// Thread-safety: send() is safe to call concurrently (each call opens its own connection; the
// authenticator synchronises its token cache).
#pragma once

#include <chrono>
#include <memory>
#include <string>
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
  Authenticator& authenticator() { return *auth_; }

  static Result<std::unique_ptr<core::Destination>> create(core::ConfigReader& config,
                                                           const core::ConnectorContext& ctx);

 private:
  // Sends the payload to `url` and classifies the answer.
  core::DeliveryResult post(const core::DeliveryRequest& request, const std::string& url);

  FhirDestinationConfig config_;
  std::shared_ptr<TlsContexts> tls_;
  std::unique_ptr<Authenticator> auth_;
  ClientPool connections_;  // kept-alive connections to the FHIR server
};

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

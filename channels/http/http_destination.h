// The generic `http` destination: POSTs the payload to a URL. 2xx is Ok; 408, 425, 429, 5xx and
// connection failures are Retry (429/503 Retry-After honoured); other 4xx are Fail.
// Connections are kept alive between sends (ClientPool).
// Thread-safety: send() is safe to call concurrently (each call holds its own connection).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <Poco/Net/Context.h>

#include "channels/http/client_pool.h"
#include "engine/core/connector.h"

namespace switchboard::channels {

struct HttpDestinationConfig {
  std::string url;
  std::string method = "POST";
  std::vector<core::HttpHeader> headers;  // extra headers (values may come from ${env:...})
  std::chrono::milliseconds timeout{10000};
};

class HttpDestination final : public core::Destination {
 public:
  explicit HttpDestination(HttpDestinationConfig config);
  std::string endpointKey() const override;
  core::DeliveryResult send(const core::DeliveryRequest& request) override;

  static Result<std::unique_ptr<core::Destination>> create(core::ConfigReader& config,
                                                           const core::ConnectorContext& ctx);

 private:
  HttpDestinationConfig config_;
  Poco::Net::Context::Ptr tls_;  // https URLs only
  ClientPool connections_;
};

// Seconds in a Retry-After header value (delta-seconds or HTTP-date), if parseable.
std::optional<std::chrono::milliseconds> parseRetryAfter(const std::string& value);
// The optional "headers" object of a destination config (string values, which may come from
// ${env:...}); a non-string value is reported through `config`.
std::vector<core::HttpHeader> readHeaders(core::ConfigReader& config);
// Maps an HTTP status to Ok/Retry/Fail per the rules above.
core::DeliveryStatus classifyHttpStatus(int status);

}  // namespace switchboard::channels

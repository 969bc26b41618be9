#include "channels/http/http_destination.h"

#include <Poco/DateTimeParser.h>
#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/StreamCopier.h>
#include <Poco/Timestamp.h>
#include <Poco/URI.h>

#include <sstream>

namespace switchboard::channels {

HttpDestination::HttpDestination(HttpDestinationConfig config)
    : config_(std::move(config)) {
  if (config_.url.starts_with("https://")) {  // peers verified against the system CAs
    tls_ = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", "", Poco::Net::Context::VERIFY_RELAXED, 9,
                                  /*loadDefaultCAs=*/true);
  }
}

std::string HttpDestination::endpointKey() const {
  Poco::URI uri(config_.url);
  return uri.getScheme() + "://" + uri.getAuthority();
}

std::optional<std::chrono::milliseconds> parseRetryAfter(const std::string& value) {
  if (value.empty()) return std::nullopt;
  bool digits = true;
  for (char c : value) digits = digits && c >= '0' && c <= '9';
  if (digits && value.size() < 10) return std::chrono::milliseconds(std::stoll(value) * 1000);
  try {
    int tz = 0;
    Poco::DateTime when = Poco::DateTimeParser::parse(value, tz);
    Poco::Timespan delta = when.timestamp() - Poco::Timestamp();
    if (delta.totalMilliseconds() <= 0) return std::chrono::milliseconds(0);
    return std::chrono::milliseconds(delta.totalMilliseconds());
  } catch (const Poco::Exception&) {
    return std::nullopt;
  }
}

core::DeliveryStatus classifyHttpStatus(int status) {
  if (status >= 200 && status < 300) return core::DeliveryStatus::kOk;
  if (status == 408 || status == 425 || status == 429 || status >= 500) {
    return core::DeliveryStatus::kRetry;
  }
  return core::DeliveryStatus::kFail;
}

core::DeliveryResult HttpDestination::send(const core::DeliveryRequest& request) {
  try {
    Poco::URI uri(config_.url);
    ClientPool::Lease session = connections_.acquire(uri, tls_, config_.timeout);
    Poco::Net::HTTPRequest req(config_.method, uri.getPathAndQuery(), Poco::Net::HTTPMessage::HTTP_1_1);
    req.setContentType(std::string(request.contentType.empty() ? "application/json" : request.contentType));
    req.setContentLength(static_cast<std::streamsize>(request.payload.size()));
    req.set("X-Switchboard-Message-Id", std::to_string(request.messageId));
    req.set("X-Switchboard-Delivery-Id", std::to_string(request.deliveryId));
    req.set("Idempotency-Key", request.channelId + ":" + std::to_string(request.deliveryId));
    for (const auto& h : config_.headers) req.set(h.name, h.value);
    std::ostream& out = session->sendRequest(req);
    out.write(request.payload.data(), static_cast<std::streamsize>(request.payload.size()));
    Poco::Net::HTTPResponse resp;
    std::istream& in = session->receiveResponse(resp);
    std::string body;
    if (readBody(in, body, 1 << 20) && resp.getKeepAlive()) session.keep();
    int status = static_cast<int>(resp.getStatus());
    std::string summary = "HTTP " + std::to_string(status) + " " + resp.getReason();
    if (!body.empty()) summary += ": " + body.substr(0, 1024);
    core::DeliveryResult result;
    result.status = classifyHttpStatus(status);
    result.responseCode = status;
    result.response = std::move(summary);
    if (result.status == core::DeliveryStatus::kRetry && resp.has("Retry-After")) {
      result.retryAfter = parseRetryAfter(resp.get("Retry-After"));
    }
    return result;
  } catch (const Poco::TimeoutException& e) {
    return core::DeliveryResult::retry(std::string("timeout: ") + e.displayText());
  } catch (const Poco::Exception& e) {
    return core::DeliveryResult::retry(std::string("connection error: ") + e.displayText());
  } catch (const std::exception& e) {
    return core::DeliveryResult::retry(std::string("error: ") + e.what());
  }
}

std::vector<core::HttpHeader> readHeaders(core::ConfigReader& config) {
  std::vector<core::HttpHeader> out;
  if (const auto* headers = config.object("headers", false, "extra request headers")) {
    for (const auto& m : headers->GetObject()) {
      if (!m.value.IsString()) {
        config.invalid("headers", "string header values");
        break;
      }
      out.push_back({m.name.GetString(), m.value.GetString()});
    }
  }
  return out;
}

Result<std::unique_ptr<core::Destination>> HttpDestination::create(core::ConfigReader& config,
                                                                   const core::ConnectorContext&) {
  HttpDestinationConfig c;
  c.url = config.requiredString("url", "URL to POST each payload to");
  if (!c.url.empty() && !c.url.starts_with("http://") && !c.url.starts_with("https://")) {
    config.invalid("url", "an http:// or https:// URL");
  }
  c.method = config.string("method", "POST", "HTTP method: POST or PUT");
  if (c.method != "POST" && c.method != "PUT") config.invalid("method", "POST or PUT");
  c.timeout = std::chrono::milliseconds(
      config.integer("timeout_ms", 10000, 100, 600000, "request timeout in milliseconds"));
  c.headers = readHeaders(config);
  if (auto r = config.finish(); !r) return std::unexpected(r.error());
  return std::make_unique<HttpDestination>(std::move(c));
}

}  // namespace switchboard::channels

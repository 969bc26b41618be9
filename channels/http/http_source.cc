#include "channels/http/http_source.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/pointer.h>

namespace switchboard::channels {

HttpJsonSource::HttpJsonSource(HttpSourceConfig config) : config_(std::move(config)) {}

core::SourceVerdict HttpJsonSource::handle(const core::HttpRequest& request) const {
  using core::SourceVerdict;
  if (!config_.secretHeader.empty()) {
    const std::string* got = request.header(config_.secretHeader);
    if (got == nullptr || !constantTimeEquals(*got, config_.secret)) {
      return SourceVerdict::refuse(got == nullptr ? "shared-secret header missing"
                                                  : "shared-secret header mismatch");
    }
  }
  if (request.method != "POST") {
    core::HttpResponse r = core::HttpResponse::json(
        405, core::operationOutcomeJson(
                 Error(ErrorCode::kNotSupported, "method " + request.method + " not allowed; use POST")));
    r.headers.push_back({"Allow", "POST"});
    return SourceVerdict::respond(std::move(r));
  }
  core::InboundMessage message;
  const std::string* type = request.header("Content-Type");
  message.contentType = type != nullptr ? *type : "application/json";
  message.body = request.body;
  if (request.body.size() > config_.maxBodyBytes) {
    return SourceVerdict::respond(core::HttpResponse::json(
        413, core::operationOutcomeJson(Error(ErrorCode::kTooLong, "body exceeds " +
                                                                      std::to_string(config_.maxBodyBytes) +
                                                                      " bytes"))));
  }
  if (!config_.idempotencyHeader.empty()) {
    if (const std::string* key = request.header(config_.idempotencyHeader)) {
      message.idempotencyKey = *key;
    }
  }
  if (config_.requireJson || !config_.idempotencyPointer.empty()) {
    rapidjson::Document doc;
    doc.Parse(request.body.data(), request.body.size());
    if (doc.HasParseError()) {
      std::string why = std::string("malformed JSON at offset ") +
                        std::to_string(doc.GetErrorOffset()) + ": " +
                        rapidjson::GetParseError_En(doc.GetParseError());
      return SourceVerdict::reject(std::move(message), Error(ErrorCode::kStructure, why), 400);
    }
    if (!config_.idempotencyPointer.empty() && message.idempotencyKey.empty()) {
      rapidjson::Pointer pointer(config_.idempotencyPointer.c_str());
      const rapidjson::Value* v = pointer.IsValid() ? pointer.Get(doc) : nullptr;
      if (v == nullptr || !(v->IsString() || v->IsNumber())) {
        return SourceVerdict::reject(
            std::move(message),
            Error(ErrorCode::kRequired,
                  "idempotency key missing: expected a string or number at " + config_.idempotencyPointer,
                  config_.idempotencyPointer),
            422);
      }
      if (v->IsString()) {
        message.idempotencyKey.assign(v->GetString(), v->GetStringLength());
      } else if (v->IsInt64()) {
        message.idempotencyKey = std::to_string(v->GetInt64());
      } else if (v->IsUint64()) {
        message.idempotencyKey = std::to_string(v->GetUint64());
      } else {
        return SourceVerdict::reject(
            std::move(message),
            Error(ErrorCode::kValue, "idempotency key must be a string or an integer",
                  config_.idempotencyPointer),
            422);
      }
      if (message.idempotencyKey.empty() || message.idempotencyKey.size() > 512) {
        return SourceVerdict::reject(
            std::move(message),
            Error(ErrorCode::kValue, "idempotency key must hold 1 to 512 characters",
                  config_.idempotencyPointer),
            422);
      }
    }
  }
  core::setMetadata(message.metadata, "kind", "message");
  std::vector<core::InboundMessage> messages;
  messages.push_back(std::move(message));
  return SourceVerdict::accept(std::move(messages),
                               core::HttpResponse::json(200, R"({"status":"accepted"})"));
}

Result<std::unique_ptr<core::HttpSource>> HttpJsonSource::create(core::ConfigReader& config,
                                                                 const core::ConnectorContext&) {
  HttpSourceConfig c;
  c.path = config.requiredString("path", "URL path served, e.g. /ingest/orders");
  if (!c.path.empty() && c.path.front() != '/') config.invalid("path", "expected a path starting with '/'");
  c.maxBodyBytes = static_cast<std::size_t>(
      config.integer("max_body_bytes", 1 << 20, 1, 64 << 20, "largest accepted body in bytes"));
  c.secretHeader = config.string("secret_header", "", "header carrying the shared secret");
  c.secret = config.string("secret", "", "expected shared secret; use ${env:NAME} or ${file:/path}");
  if (!c.secretHeader.empty() && c.secret.empty()) {
    config.invalid("secret", "a non-empty secret when secret_header is set");
  }
  if (c.secretHeader.empty() && !c.secret.empty()) {
    config.invalid("secret_header", "the header name that carries the secret");
  }
  c.idempotencyPointer = config.string("idempotency_pointer", "",
                                       "JSON pointer to the idempotency key in the body, e.g. /id");
  if (!c.idempotencyPointer.empty() && c.idempotencyPointer.front() != '/') {
    config.invalid("idempotency_pointer", "a JSON pointer starting with '/'");
  }
  c.idempotencyHeader = config.string("idempotency_header", "", "header carrying the idempotency key");
  c.requireJson = config.boolean("require_json", true, "reject bodies that are not JSON");
  if (auto r = config.finish(); !r) return std::unexpected(r.error());
  return std::make_unique<HttpJsonSource>(std::move(c));
}

}  // namespace switchboard::channels

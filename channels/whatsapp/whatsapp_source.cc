// Meta WhatsApp Cloud API source: handshake, signature check, split into inbound messages.
#include "channels/whatsapp/whatsapp_source.h"

#include "channels/http/http_source.h"
#include "channels/whatsapp/meta_signature.h"
#include "channels/whatsapp/meta_webhook.h"

namespace switchboard::channels::whatsapp {

namespace {
constexpr std::size_t kMaxChallengeBytes = 256;
}

WhatsappSource::WhatsappSource(WhatsappSourceConfig config) : config_(std::move(config)) {}

core::SourceVerdict WhatsappSource::handle(const core::HttpRequest& request) const {
  if (request.method == "GET") return handshake(request);
  if (request.method == "POST") return notification(request);
  core::HttpResponse r = core::HttpResponse::json(
      405, core::operationOutcomeJson(
               Error(ErrorCode::kNotSupported,
                     "method " + request.method + " not allowed; use GET (verification) or POST")));
  r.headers.push_back({"Allow", "GET, POST"});
  return core::SourceVerdict::respond(std::move(r));
}

core::SourceVerdict WhatsappSource::handshake(const core::HttpRequest& request) const {
  const std::string* mode = nullptr;
  const std::string* token = nullptr;
  const std::string* challenge = nullptr;
  auto params = core::parseForm(request.query);
  for (const auto& [name, value] : params) {
    if (name == "hub.mode" && mode == nullptr) mode = &value;
    if (name == "hub.verify_token" && token == nullptr) token = &value;
    if (name == "hub.challenge" && challenge == nullptr) challenge = &value;
  }
  // Compare the token even when the mode is wrong, so both refusals take the same time.
  const bool tokenOk = token != nullptr && constantTimeEquals(*token, config_.verifyToken);
  if (mode == nullptr || *mode != "subscribe") {
    return core::SourceVerdict::refuse("verification handshake: hub.mode is not subscribe", 403);
  }
  if (!tokenOk) {
    return core::SourceVerdict::refuse(token == nullptr
                                           ? "verification handshake: hub.verify_token missing"
                                           : "verification handshake: hub.verify_token mismatch",
                                       403);
  }
  if (challenge == nullptr || challenge->empty() || challenge->size() > kMaxChallengeBytes) {
    return core::SourceVerdict::respond(core::HttpResponse::json(
        400, core::operationOutcomeJson(Error(ErrorCode::kRequired,
                                              "hub.challenge missing or longer than 256 bytes",
                                              "hub.challenge"))));
  }
  return core::SourceVerdict::respond(core::HttpResponse::text(200, *challenge));
}

core::SourceVerdict WhatsappSource::notification(const core::HttpRequest& request) const {
  if (request.body.size() > config_.maxBodyBytes) {
    return core::SourceVerdict::respond(core::HttpResponse::json(
        413, core::operationOutcomeJson(
                 Error(ErrorCode::kTooLong,
                       "body exceeds " + std::to_string(config_.maxBodyBytes) + " bytes"))));
  }
  SignatureCheck check = verifyHubSignature256(request.header("X-Hub-Signature-256"), request.body,
                                               config_.appSecrets);
  if (check != SignatureCheck::kValid) return core::SourceVerdict::refuse(describe(check), 401);

  auto split = splitMetaWebhook(request.body);
  if (!split) {
    core::InboundMessage raw;
    raw.contentType = "application/json";
    raw.body = request.body;
    core::setMetadata(raw.metadata, "provider", "meta");
    core::setMetadata(raw.metadata, "kind", "other");
    return core::SourceVerdict::reject(std::move(raw), split.error(), 400);
  }
  core::HttpResponse ok = core::HttpResponse::text(200, "EVENT_RECEIVED");
  if (split->empty()) return core::SourceVerdict::respond(std::move(ok));
  return core::SourceVerdict::accept(std::move(*split), std::move(ok));
}

Result<std::unique_ptr<core::HttpSource>> WhatsappSource::create(core::ConfigReader& config,
                                                                 const core::ConnectorContext&) {
  WhatsappSourceConfig c;
  c.path = config.requiredString("path", "URL path served, e.g. /webhooks/whatsapp");
  if (!c.path.empty() && c.path.front() != '/') {
    config.invalid("path", "expected a path starting with '/'");
  }
  c.maxBodyBytes = static_cast<std::size_t>(
      config.integer("max_body_bytes", 1 << 20, 1, 64 << 20, "largest accepted body in bytes"));
  std::vector<std::string> secrets = config.strings(
      "app_secrets",
      "Meta App Secrets that may sign X-Hub-Signature-256 (several during rotation); use "
      "${env:NAME} or ${file:/path}");
  std::string single = config.string(
      "app_secret", "", "a single Meta App Secret (alternative to app_secrets); use ${env:NAME}");
  for (std::size_t i = 0; i < secrets.size(); ++i) {
    if (secrets[i].empty()) {
      config.invalid("app_secrets", "non-empty strings (entry " + std::to_string(i) + " is empty)");
    }
  }
  if (!single.empty()) secrets.push_back(single);
  if (secrets.empty()) {
    config.invalid("app_secrets",
                   "at least one Meta App Secret in app_secrets (or app_secret), e.g. "
                   "[\"${env:SWITCHBOARD_META_APP_SECRET}\"]");
  }
  c.appSecrets = std::move(secrets);
  c.verifyToken = config.string(
      "verify_token", "",
      "hub.verify_token expected in Meta's GET verification handshake; use ${env:NAME}");
  if (c.verifyToken.empty()) {
    config.invalid("verify_token",
                   "a non-empty verify token, e.g. \"${env:SWITCHBOARD_META_VERIFY_TOKEN}\"");
  }
  if (auto r = config.finish(); !r) return std::unexpected(r.error());
  return std::make_unique<WhatsappSource>(std::move(c));
}

}  // namespace switchboard::channels::whatsapp

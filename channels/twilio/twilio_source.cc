#include "channels/twilio/twilio_source.h"

#include "engine/core/identifiers.h"

#include <optional>
#include <utility>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include "channels/twilio/twilio_signature.h"

namespace switchboard::channels {

namespace twilio {

std::string normalizeSender(std::string_view text) {
  constexpr std::string_view kWhatsapp = "whatsapp:";
  if (text.size() >= kWhatsapp.size() &&
      core::equalsIgnoreCase(text.substr(0, kWhatsapp.size()), kWhatsapp)) {
    text.remove_prefix(kWhatsapp.size());
  }
  return core::normalizeE164(text);
}

}  // namespace twilio

namespace {

constexpr std::size_t kMaxKeyLength = 512;
constexpr std::string_view kFormType = "application/x-www-form-urlencoded";

const std::string* param(const twilio::Params& params, std::string_view name) {
  for (const auto& [k, v] : params) {
    if (k == name) return &v;
  }
  return nullptr;
}

std::string paramOr(const twilio::Params& params, std::string_view name) {
  const std::string* v = param(params, name);
  return v != nullptr ? *v : std::string();
}

core::HttpResponse twiml() {
  return core::HttpResponse::text(200, std::string(kEmptyTwiml), "text/xml");
}

core::HttpResponse problem(int status, ErrorCode code, std::string message) {
  core::HttpResponse r =
      core::HttpResponse::json(status, core::operationOutcomeJson(Error(code, std::move(message))));
  r.contentType = "application/fhir+json";
  return r;
}

std::string lowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Top-level string and integer members of a JSON object, as parameters.
twilio::Params jsonParams(const rapidjson::Value& object) {
  twilio::Params out;
  for (const auto& m : object.GetObject()) {
    std::string name(m.name.GetString(), m.name.GetStringLength());
    if (m.value.IsString()) {
      out.emplace_back(std::move(name),
                       std::string(m.value.GetString(), m.value.GetStringLength()));
    } else if (m.value.IsInt64()) {
      out.emplace_back(std::move(name), std::to_string(m.value.GetInt64()));
    }
  }
  return out;
}

int toInt(const std::string& s) {
  int n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return 0;
    n = n * 10 + (c - '0');
    if (n > 1000) return n;
  }
  return n;
}

}  // namespace

TwilioSource::TwilioSource(TwilioSourceConfig config) : config_(std::move(config)) {}

std::string TwilioSource::signedUrl(const core::HttpRequest& request) const {
  std::string url;
  if (!config_.publicUrl.empty()) {
    url = config_.publicUrl;
  } else {
    std::string scheme = request.scheme.empty() ? "http" : request.scheme;
    if (std::size_t comma = scheme.find(','); comma != std::string::npos) scheme.resize(comma);
    std::string host = request.host;
    if (const std::string* forwarded = request.header("X-Forwarded-Host")) {
      host = forwarded->substr(0, forwarded->find(','));
    }
    url = scheme + "://" + host + request.path;
  }
  if (!request.query.empty()) url += "?" + request.query;
  return url;
}

core::SourceVerdict TwilioSource::handle(const core::HttpRequest& request) const {
  using core::SourceVerdict;
  const std::string* signature = request.header("X-Twilio-Signature");
  if (signature == nullptr) return SourceVerdict::refuse("X-Twilio-Signature header missing");

  const twilio::Params query = core::parseForm(request.query);
  const std::string* bodyHash = param(query, "bodySHA256");
  const bool json = bodyHash != nullptr;
  twilio::Params signedParams;
  if (!json && request.method == "POST") signedParams = core::parseForm(request.body);

  bool valid = false;
  for (const std::string& url : twilio::signatureUrlVariants(signedUrl(request))) {
    for (const std::string& token : config_.authTokens) {
      if (twilio::constantTimeEquals(twilio::computeSignature(token, url, signedParams),
                                     *signature)) {
        valid = true;
      }
    }
  }
  if (!valid) return SourceVerdict::refuse("X-Twilio-Signature mismatch");
  if (json && !twilio::constantTimeEquals(twilio::sha256Hex(request.body), lowerAscii(*bodyHash))) {
    return SourceVerdict::refuse("bodySHA256 does not match the body");
  }

  if (request.method != "POST" && request.method != "GET") {
    core::HttpResponse r = problem(405, ErrorCode::kNotSupported,
                                   "method " + request.method + " not allowed; use POST");
    r.headers.push_back({"Allow", "POST, GET"});
    return SourceVerdict::respond(std::move(r));
  }
  if (request.body.size() > config_.maxBodyBytes) {
    return SourceVerdict::respond(
        problem(413, ErrorCode::kTooLong,
                "body exceeds " + std::to_string(config_.maxBodyBytes) + " bytes"));
  }

  core::InboundMessage message;
  core::setMetadata(message.metadata, "provider", "twilio");
  twilio::Params fields;
  if (json) {
    const std::string* type = request.header("Content-Type");
    message.contentType = type != nullptr ? *type : "application/json";
    message.body = request.body;
    rapidjson::Document doc;
    doc.Parse(request.body.data(), request.body.size());
    if (doc.HasParseError() || !doc.IsObject()) {
      core::setMetadata(message.metadata, "kind", "other");
      std::string why = doc.HasParseError() ? std::string("malformed JSON at offset ") +
                                                  std::to_string(doc.GetErrorOffset()) + ": " +
                                                  rapidjson::GetParseError_En(doc.GetParseError())
                                            : std::string("JSON webhook body must be an object");
      return SourceVerdict::reject(std::move(message), Error(ErrorCode::kStructure, why), 400);
    }
    fields = jsonParams(doc);
  } else if (request.method == "POST") {
    message.contentType = std::string(kFormType);
    message.body = request.body;
    fields = std::move(signedParams);
  } else {
    message.contentType = std::string(kFormType);
    message.body = request.query;
    fields = query;
  }

  std::string sid = paramOr(fields, "MessageSid");
  if (sid.empty()) sid = paramOr(fields, "SmsMessageSid");
  if (sid.empty()) sid = paramOr(fields, "SmsSid");
  if (sid.empty() || sid.size() > kMaxKeyLength) {
    core::setMetadata(message.metadata, "kind", "other");
    return SourceVerdict::reject(
        std::move(message),
        Error(ErrorCode::kRequired, "MessageSid missing or longer than 512 characters",
              "MessageSid"),
        422);
  }
  const std::string from = paramOr(fields, "From");
  const std::string to = paramOr(fields, "To");
  const std::string* body = param(fields, "Body");
  const std::string* messageStatus = param(fields, "MessageStatus");

  if (messageStatus != nullptr && !messageStatus->empty() && body == nullptr) {
    // A status callback about a message we sent: the patient is the To side.
    const std::string status = lowerAscii(*messageStatus);
    message.idempotencyKey = "status:" + sid + ":" + status;
    core::setMetadata(message.metadata, "kind", "status");
    core::setMetadata(message.metadata, "sender", twilio::normalizeSender(to));
    core::setMetadata(message.metadata, "sender_raw", to);
    core::setMetadata(message.metadata, "reply_to", to);
    core::setMetadata(message.metadata, "reply_from", from);
    core::setMetadata(message.metadata, "provider_message_id", sid);
    core::setMetadata(message.metadata, "outbound_id", sid);
    core::setMetadata(message.metadata, "status", status);
    std::string error = paramOr(fields, "ErrorCode");
    if (std::string why = paramOr(fields, "ErrorMessage"); !why.empty()) {
      error += (error.empty() ? "" : " ") + why;
    }
    if (!error.empty()) core::setMetadata(message.metadata, "error", std::move(error));
  } else {
    message.idempotencyKey = sid;
    std::string kind = "other";
    const std::string buttonPayload = paramOr(fields, "ButtonPayload");
    if (!buttonPayload.empty()) {
      kind = "button";
      core::setMetadata(message.metadata, "button_payload", buttonPayload);
    } else if (int media = toInt(paramOr(fields, "NumMedia")); media > 0) {
      kind = "media";
      core::setMetadata(message.metadata, "num_media", std::to_string(media));
    } else if (body != nullptr) {
      kind = "text";
    }
    core::setMetadata(message.metadata, "kind", std::move(kind));
    core::setMetadata(message.metadata, "sender", twilio::normalizeSender(from));
    core::setMetadata(message.metadata, "sender_raw", from);
    core::setMetadata(message.metadata, "reply_to", from);
    core::setMetadata(message.metadata, "reply_from", to);
    core::setMetadata(message.metadata, "provider_message_id", sid);
    if (std::string context = paramOr(fields, "OriginalRepliedMessageSid"); !context.empty()) {
      core::setMetadata(message.metadata, "context_id", context);
    }
  }
  const std::string& peer = core::findMetadata(message.metadata, "reply_to") != nullptr
                                ? *core::findMetadata(message.metadata, "reply_to")
                                : from;
  core::setMetadata(message.metadata, "channel",
                    peer.size() >= 9 && core::equalsIgnoreCase(peer.substr(0, 9), "whatsapp:")
                        ? "whatsapp"
                        : "sms");
  std::vector<core::InboundMessage> messages;
  messages.push_back(std::move(message));
  return SourceVerdict::accept(std::move(messages), twiml());
}

Result<std::unique_ptr<core::HttpSource>> TwilioSource::create(core::ConfigReader& config,
                                                               const core::ConnectorContext&) {
  TwilioSourceConfig c;
  c.path = config.requiredString("path", "URL path served, e.g. /webhooks/twilio");
  if (!c.path.empty() && c.path.front() != '/') config.invalid("path", "a path starting with '/'");
  c.maxBodyBytes = static_cast<std::size_t>(
      config.integer("max_body_bytes", 1 << 20, 1, 64 << 20, "largest accepted body in bytes"));
  c.authTokens = config.strings(
      "auth_tokens",
      "Twilio auth tokens, any of which may sign (rotation); use ${env:NAME} or ${file:/path}");
  std::string single = config.string(
      "auth_token", "", "one Twilio auth token; use ${env:SWITCHBOARD_TWILIO_AUTH_TOKEN}");
  if (!single.empty()) c.authTokens.push_back(std::move(single));
  for (const auto& token : c.authTokens) {
    if (token.empty()) config.invalid("auth_tokens", "non-empty auth tokens");
  }
  if (c.authTokens.empty()) {
    config.invalid("auth_tokens", "at least one auth token in auth_tokens or auth_token");
  }
  c.publicUrl = config.string(
      "public_url", "",
      "the URL Twilio calls, e.g. https://engine.example.org/webhooks/twilio (no query); when "
      "empty it is rebuilt from the request's scheme, Host and path");
  if (!c.publicUrl.empty()) {
    if (c.publicUrl.find("://") == std::string::npos) {
      config.invalid("public_url", "an absolute URL such as https://host/path");
    } else if (c.publicUrl.find_first_of("?#") != std::string::npos) {
      config.invalid("public_url",
                     "a URL without query or fragment (the request's query is appended)");
    }
  }
  if (auto r = config.finish(); !r) return std::unexpected(r.error());
  return std::make_unique<TwilioSource>(std::move(c));
}

}  // namespace switchboard::channels

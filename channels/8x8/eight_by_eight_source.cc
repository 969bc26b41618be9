#include "channels/8x8/eight_by_eight_source.h"

#include <optional>
#include <utility>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

namespace switchboard::channels {


namespace {

using rapidjson::Value;

constexpr std::string_view kEventInbound = "inbound_message_received";
constexpr std::string_view kEventStatus = "outbound_message_status_changed";
constexpr std::size_t kMaxKeyLength = 512;

const Value* member(const Value* object, const char* name) {
  if (object == nullptr || !object->IsObject()) return nullptr;
  auto it = object->FindMember(name);
  return it == object->MemberEnd() ? nullptr : &it->value;
}

// A string member as is, an integer member in decimal; nothing for other types.
std::optional<std::string> text(const Value* v) {
  if (v == nullptr) return std::nullopt;
  if (v->IsString()) return std::string(v->GetString(), v->GetStringLength());
  if (v->IsInt64()) return std::to_string(v->GetInt64());
  if (v->IsUint64()) return std::to_string(v->GetUint64());
  return std::nullopt;
}

std::optional<std::string> textAt(const Value* object, const char* name) {
  return text(member(object, name));
}

// Lower-case ASCII with '_' and '-' removed, so "nfmReply", "NfmReply" and "nfm_reply" compare
// equal.
std::string folded(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '_' || c == '-') continue;
    out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return out;
}

std::string lowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

core::HttpResponse ok(std::string_view status) {
  return core::HttpResponse::json(200, std::string(R"({"status":")") + std::string(status) + "\"}");
}

core::InboundMessage rawMessage(const core::HttpRequest& request) {
  core::InboundMessage m;
  m.contentType = "application/json";
  m.body = request.body;
  core::setMetadata(m.metadata, "provider", "8x8");
  return m;
}

core::SourceVerdict rejectWith(core::InboundMessage raw, ErrorCode code, std::string why,
                               std::string location, int status) {
  core::setMetadata(raw.metadata, "kind", "other");
  return core::SourceVerdict::reject(std::move(raw),
                                     Error(code, std::move(why), std::move(location)), status);
}

// The flow_token of a Flow response given as a JSON string or an object; empty when absent.
std::string flowToken(const Value* responseJson) {
  if (responseJson == nullptr) return {};
  if (responseJson->IsObject()) return textAt(responseJson, "flow_token").value_or("");
  if (!responseJson->IsString()) return {};
  rapidjson::Document inner;
  inner.Parse(responseJson->GetString(), responseJson->GetStringLength());
  if (inner.HasParseError() || !inner.IsObject()) return {};
  return textAt(&inner, "flow_token").value_or("");
}

const Value* firstMember(const Value* object, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (const Value* v = member(object, name)) return v;
  }
  return nullptr;
}

// Classifies an inbound payload into text|flow|button|media|other; sets flow_token for flows.
std::string classify(const Value* payload, core::Metadata& metadata) {
  const std::string type = folded(textAt(payload, "type").value_or(""));
  const Value* content = member(payload, "content");
  if (type == "text") return "text";
  if (type == "interactive") {
    const Value* interactive = member(content, "interactive");
    if (interactive == nullptr) interactive = content;
    const std::string itype = folded(textAt(interactive, "type").value_or(""));
    const Value* nfm = firstMember(interactive, {"nfmReply", "nfm_reply", "NfmReply"});
    if (itype == "nfmreply" || nfm != nullptr) {
      std::string token =
          flowToken(firstMember(nfm, {"responseJson", "response_json", "ResponseJson"}));
      if (!token.empty()) core::setMetadata(metadata, "flow_token", std::move(token));
      return "flow";
    }
    if (itype == "buttonreply" || itype == "listreply" || itype == "button" ||
        firstMember(interactive, {"button_reply", "list_reply", "buttonReply", "listReply"})) {
      return "button";
    }
    return "other";
  }
  if (type == "button" || type == "quickreply") return "button";
  if (type == "image" || type == "video" || type == "audio" || type == "document" ||
      type == "file" || type == "sticker" || type == "voice") {
    return "media";
  }
  return "other";
}

// Sender facts from payload.user: sender, sender_raw, reply_to, channel_user_id.
void setUserMetadata(const Value* payload, bool v3, core::Metadata& metadata) {
  const Value* user = member(payload, "user");
  std::optional<std::string> msisdn = textAt(user, "msisdn");
  std::optional<std::string> channelUserId = textAt(user, "channelUserId");
  std::string sender;
  if (msisdn) {
    sender = eightbyeight::normalizeE164(*msisdn);
  } else if (channelUserId && !v3) {
    // v2: channelUserId holds the phone digits; v3: it is a BSUID and never a phone number.
    sender = eightbyeight::normalizeE164(*channelUserId);
  }
  std::string raw = msisdn ? *msisdn : channelUserId.value_or("");
  std::string replyTo = !sender.empty() ? sender : channelUserId.value_or(raw);
  core::setMetadata(metadata, "sender", sender);
  core::setMetadata(metadata, "sender_raw", std::move(raw));
  core::setMetadata(metadata, "reply_to", std::move(replyTo));
  if (channelUserId) core::setMetadata(metadata, "channel_user_id", *channelUserId);
  if (auto sub = textAt(payload, "subAccountId")) core::setMetadata(metadata, "reply_from", *sub);
}

}  // namespace

EightByEightSource::EightByEightSource(EightByEightSourceConfig config)
    : config_(std::move(config)) {}

core::SourceVerdict EightByEightSource::handle(const core::HttpRequest& request) const {
  using core::SourceVerdict;
  const std::string* authorization = request.header("Authorization");
  if (authorization == nullptr) return SourceVerdict::refuse("authorization header missing");
  if (!eightbyeight::constantTimeEquals(*authorization, config_.authorization)) {
    return SourceVerdict::refuse("authorization header mismatch");
  }
  if (request.method != "POST") {
    core::HttpResponse r = core::HttpResponse::json(
        405, core::operationOutcomeJson(Error(
                 ErrorCode::kNotSupported, "method " + request.method + " not allowed; use POST")));
    r.contentType = "application/fhir+json";
    r.headers.push_back({"Allow", "POST"});
    return SourceVerdict::respond(std::move(r));
  }
  if (request.body.size() > config_.maxBodyBytes) {
    core::HttpResponse r = core::HttpResponse::json(
        413, core::operationOutcomeJson(
                 Error(ErrorCode::kTooLong,
                       "body exceeds " + std::to_string(config_.maxBodyBytes) + " bytes")));
    r.contentType = "application/fhir+json";
    return SourceVerdict::respond(std::move(r));
  }

  core::InboundMessage message = rawMessage(request);
  rapidjson::Document doc;
  doc.Parse(request.body.data(), request.body.size());
  if (doc.HasParseError()) {
    return rejectWith(std::move(message), ErrorCode::kStructure,
                      std::string("malformed JSON at offset ") +
                          std::to_string(doc.GetErrorOffset()) + ": " +
                          rapidjson::GetParseError_En(doc.GetParseError()),
                      "", 400);
  }
  if (!doc.IsObject()) {
    return rejectWith(std::move(message), ErrorCode::kStructure,
                      "8x8 webhook body must be a JSON object", "", 400);
  }
  std::optional<std::string> eventType = textAt(&doc, "eventType");
  if (!eventType) {
    return rejectWith(std::move(message), ErrorCode::kRequired, "eventType missing", "/eventType",
                      422);
  }
  const std::string event = lowerAscii(*eventType);
  if (event != kEventInbound && event != kEventStatus) {
    return SourceVerdict::respond(ok("ignored"));
  }
  core::setMetadata(message.metadata, "event_type", event);
  const Value* payload = member(&doc, "payload");
  if (payload == nullptr || !payload->IsObject()) {
    return rejectWith(std::move(message), ErrorCode::kRequired, "payload object missing",
                      "/payload", 422);
  }
  std::optional<std::string> umid = textAt(payload, "umid");
  if (!umid || umid->empty() || umid->size() > kMaxKeyLength) {
    return rejectWith(std::move(message), ErrorCode::kRequired,
                      "payload.umid missing or not a string of 1 to 512 characters",
                      "/payload/umid", 422);
  }
  int version = 2;
  if (const Value* v = member(&doc, "version"); v != nullptr && v->IsInt()) version = v->GetInt();
  core::setMetadata(message.metadata, "envelope_version", std::to_string(version));
  const bool v3 = version >= 3;

  if (event == kEventStatus) {
    const Value* status = member(payload, "status");
    std::optional<std::string> state = textAt(status, "state");
    if (!state || state->empty()) {
      return rejectWith(std::move(message), ErrorCode::kRequired, "payload.status.state missing",
                        "/payload/status/state", 422);
    }
    const std::string raw = lowerAscii(*state);
    const std::string detail = lowerAscii(textAt(status, "detail").value_or(""));
    // Normalised to the Meta vocabulary the reply path reads: 8x8 "undelivered" is a failure, and
    // "delivered" to the operator (not yet the handset) is what Meta calls "sent".
    std::string normalized = raw;
    if (raw == "undelivered" || raw == "rejected") normalized = "failed";
    if (raw == "delivered" && detail == "delivered_to_operator") normalized = "sent";
    std::string error;
    if (auto code = textAt(status, "errorCode")) error = *code;
    if (auto why = textAt(status, "errorMessage")) error += (error.empty() ? "" : " ") + *why;
    if (auto provider = textAt(member(payload, "whatsapp"), "providerErrorCode")) {
      error += (error.empty() ? "" : " ") + ("(whatsapp " + *provider + ")");
    }
    message.idempotencyKey = "status:" + *umid + ":" + normalized;
    core::setMetadata(message.metadata, "kind", "status");
    setUserMetadata(payload, v3, message.metadata);
    core::setMetadata(message.metadata, "provider_message_id", *umid);
    core::setMetadata(message.metadata, "outbound_id", *umid);
    core::setMetadata(message.metadata, "status", normalized);
    core::setMetadata(message.metadata, "status_raw", raw);
    if (!detail.empty()) core::setMetadata(message.metadata, "status_detail", detail);
    if (!error.empty()) core::setMetadata(message.metadata, "error", std::move(error));
    if (auto channel = textAt(payload, "channel")) {
      core::setMetadata(message.metadata, "channel", lowerAscii(*channel));
    }
  } else {
    message.idempotencyKey = *umid;
    std::string kind = classify(payload, message.metadata);
    core::setMetadata(message.metadata, "kind", std::move(kind));
    setUserMetadata(payload, v3, message.metadata);
    core::setMetadata(message.metadata, "provider_message_id", *umid);
    if (auto channel = textAt(member(payload, "recipient"), "channel")) {
      core::setMetadata(message.metadata, "channel", lowerAscii(*channel));
    }
    if (auto ts = textAt(payload, "timestamp")) {
      core::setMetadata(message.metadata, "provider_timestamp", *ts);
    }
    if (auto replyTo = textAt(payload, "replyToUmid")) {
      core::setMetadata(message.metadata, "context_id", *replyTo);
    }
  }
  std::vector<core::InboundMessage> messages;
  messages.push_back(std::move(message));
  return SourceVerdict::accept(std::move(messages), ok("accepted"));
}

Result<std::unique_ptr<core::HttpSource>> EightByEightSource::create(
    core::ConfigReader& config, const core::ConnectorContext&) {
  EightByEightSourceConfig c;
  c.path = config.requiredString("path", "URL path served, e.g. /webhooks/8x8");
  if (!c.path.empty() && c.path.front() != '/') {
    config.invalid("path", "a path starting with '/'");
  }
  c.maxBodyBytes = static_cast<std::size_t>(
      config.integer("max_body_bytes", 1 << 20, 1, 64 << 20, "largest accepted body in bytes"));
  c.authorization =
      config.requiredString("authorization",
                            "the Authorization header value configured as httpAuthorization at 8x8 "
                            "(e.g. \"Bearer ...\"); "
                            "use ${env:SWITCHBOARD_8X8_AUTHORIZATION} or ${file:/path}");
  if (auto r = config.finish(); !r) return std::unexpected(r.error());
  return std::make_unique<EightByEightSource>(std::move(c));
}

}  // namespace switchboard::channels

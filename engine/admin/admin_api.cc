#include "engine/admin/admin_api.h"

#include <Poco/DateTime.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeParser.h>

#include <charconv>

#include "channels/http/http_source.h"
#include "engine/admin/json_writer.h"
#include "engine/core/connector.h"

namespace switchboard::admin {

namespace {

core::HttpResponse problem(int status, ErrorCode code, std::string message) {
  core::HttpResponse r = core::HttpResponse::json(status, core::operationOutcomeJson(Error(code, std::move(message))));
  r.contentType = "application/fhir+json";
  return r;
}

std::optional<std::int64_t> parseId(std::string_view text) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v <= 0) return std::nullopt;
  return v;
}

struct Params {
  std::vector<std::pair<std::string, std::string>> items;
  const std::string* get(std::string_view name) const {
    for (const auto& [k, v] : items) {
      if (k == name) return &v;
    }
    return nullptr;
  }
};

core::HttpResponse fromError(const Error& e) {
  int status = 500;
  if (e.code == ErrorCode::kNotFound) status = 404;
  else if (e.code == ErrorCode::kConflict) status = 409;
  else if (e.code == ErrorCode::kTransient) status = 503;
  else if (e.code == ErrorCode::kInvalid || e.code == ErrorCode::kValue) status = 400;
  return problem(status, e.code, e.message);
}

void writeMetadata(JsonWriter& w, const core::Metadata& metadata) {
  w.Key("metadata");
  w.StartObject();
  for (const auto& [k, v] : metadata) {
    writeString(w, k);
    writeString(w, v);
  }
  w.EndObject();
}

void writeDelivery(JsonWriter& w, const store::DeliveryRecord& d, bool withPayload) {
  w.Key("id");
  w.Int64(d.id);
  w.Key("messageId");
  w.Int64(d.messageId);
  w.Key("channel");
  writeString(w, d.channelId);
  w.Key("destination");
  writeString(w, d.destination);
  w.Key("status");
  writeString(w, d.status);
  w.Key("attempts");
  w.Int(d.attempts);
  w.Key("createdAt");
  writeString(w, isoTime(d.createdAtMs));
  if (d.status == "pending") {
    w.Key("nextAttemptAt");
    writeString(w, isoTime(d.nextAttemptAtMs));
  }
  if (d.lastStatusCode != 0) {
    w.Key("lastStatusCode");
    w.Int(d.lastStatusCode);
  }
  if (!d.lastResponse.empty()) {
    w.Key("lastResponse");
    writeString(w, d.lastResponse);
  }
  if (!d.deadReason.empty()) {
    w.Key("deadReason");
    writeString(w, d.deadReason);
  }
  if (withPayload) {
    w.Key("contentType");
    writeString(w, d.contentType);
    w.Key("payload");
    w.StartObject();
    writeBody(w, d.payload);
    w.EndObject();
  }
}

std::optional<int> parseLimit(const Params& p, std::string& error) {
  const std::string* v = p.get("limit");
  if (v == nullptr) return 50;
  auto n = parseId(*v);
  if (!n || *n > 500) {
    error = "limit: expected an integer from 1 to 500";
    return std::nullopt;
  }
  return static_cast<int>(*n);
}

}  // namespace

std::optional<std::int64_t> parseTimeParam(const std::string& text) {
  if (text.empty()) return std::nullopt;
  if (auto id = parseId(text)) return *id;
  // Poco's parser is lenient; insist on an ISO 8601 calendar date first (YYYY-MM-DD...).
  auto digit = [&](std::size_t i) { return i < text.size() && text[i] >= '0' && text[i] <= '9'; };
  if (!(digit(0) && digit(1) && digit(2) && digit(3) && text.size() >= 10 && text[4] == '-' && digit(5) &&
        digit(6) && text[7] == '-' && digit(8) && digit(9))) {
    return std::nullopt;
  }
  Poco::DateTime dt;
  int tz = 0;
  if (Poco::DateTimeParser::tryParse(Poco::DateTimeFormat::ISO8601_FRAC_FORMAT, text, dt, tz) ||
      Poco::DateTimeParser::tryParse(Poco::DateTimeFormat::ISO8601_FORMAT, text, dt, tz)) {
    dt.makeUTC(tz);
    return dt.timestamp().epochMicroseconds() / 1000;
  }
  return std::nullopt;
}

AdminApi::AdminApi(store::Store& store, ChannelsFn channels, std::string token,
                   std::shared_ptr<core::Clock> clock, std::function<void()> onReplay)
    : store_(store),
      channels_(std::move(channels)),
      token_(std::move(token)),
      clock_(std::move(clock)),
      onReplay_(std::move(onReplay)) {}

core::HttpResponse AdminApi::handle(const core::HttpRequest& request) {
  if (!request.path.starts_with("/api/") && !request.path.starts_with("/fhir/")) {
    return problem(404, ErrorCode::kNotFound, "no endpoint at " + request.path);
  }
  if (token_.empty()) {
    return problem(403, ErrorCode::kSecurity, "admin API disabled: set SWITCHBOARD_ADMIN_TOKEN");
  }
  const std::string* auth = request.header("Authorization");
  std::string_view presented;
  if (auth != nullptr && auth->size() > 7 && core::equalsIgnoreCase(std::string_view(*auth).substr(0, 7), "Bearer ")) {
    presented = std::string_view(*auth).substr(7);
  }
  if (presented.empty() || !channels::constantTimeEquals(presented, token_)) {
    core::HttpResponse r = problem(401, ErrorCode::kSecurity, "missing or wrong bearer token");
    r.headers.push_back({"WWW-Authenticate", "Bearer realm=\"switchboard\""});
    return r;
  }
  std::string actor = "admin";
  if (const std::string* user = request.header("X-Switchboard-User"); user != nullptr && !user->empty()) {
    actor += ":" + user->substr(0, 64);
  }
  for (const auto& extension : extensions_) {
    if (auto answer = extension(request, actor)) return *answer;
  }
  if (!request.path.starts_with("/api/")) {
    return problem(404, ErrorCode::kNotFound, "no endpoint at " + request.path);
  }
  std::vector<std::string> parts;
  {
    std::string_view rest = std::string_view(request.path).substr(5);
    while (!rest.empty()) {
      std::size_t slash = rest.find('/');
      parts.emplace_back(rest.substr(0, slash));
      if (slash == std::string_view::npos) break;
      rest.remove_prefix(slash + 1);
    }
  }
  const bool get = request.method == "GET";
  const bool post = request.method == "POST";
  auto methodNotAllowed = [&](const char* allow) {
    core::HttpResponse r = problem(405, ErrorCode::kNotSupported, "method " + request.method + " not allowed here");
    r.headers.push_back({"Allow", allow});
    return r;
  };
  if (parts.size() == 1 && parts[0] == "channels") return get ? listChannels() : methodNotAllowed("GET");
  if (parts.size() == 1 && parts[0] == "messages") return get ? listMessages(request) : methodNotAllowed("GET");
  if (parts.size() == 1 && parts[0] == "deliveries") return get ? listDeliveries(request) : methodNotAllowed("GET");
  if (parts.size() == 1 && parts[0] == "audit") return get ? listAudit(request) : methodNotAllowed("GET");
  if (parts.size() >= 2 && (parts[0] == "messages" || parts[0] == "deliveries")) {
    auto id = parseId(parts[1]);
    if (!id) return problem(400, ErrorCode::kValue, "expected a numeric id, found \"" + parts[1] + "\"");
    if (parts[0] == "messages" && parts.size() == 2) return get ? getMessage(*id) : methodNotAllowed("GET");
    if (parts.size() == 3 && parts[2] == "replay") {
      if (!post) return methodNotAllowed("POST");
      return parts[0] == "messages" ? replayMessage(*id) : replayDelivery(*id);
    }
  }
  return problem(404, ErrorCode::kNotFound, "no endpoint at " + request.path);
}

core::HttpResponse AdminApi::listChannels() {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("items");
  w.StartArray();
  for (const auto& c : *channels_()) {
    w.StartObject();
    w.Key("id");
    writeString(w, c->id);
    if (!c->description.empty()) {
      w.Key("description");
      writeString(w, c->description);
    }
    w.Key("file");
    writeString(w, c->file);
    w.Key("source");
    w.StartObject();
    w.Key("type");
    writeString(w, c->sourceType);
    w.Key("path");
    writeString(w, c->source->path());
    w.Key("maxBodyBytes");
    w.Uint64(c->source->maxBodyBytes());
    w.EndObject();
    w.Key("filters");
    w.StartArray();
    for (const auto& [type, stage] : c->filters) writeString(w, type);
    w.EndArray();
    w.Key("transformer");
    writeString(w, c->transformerType);
    w.Key("destinations");
    w.StartArray();
    for (const auto& d : c->destinations) {
      w.StartObject();
      w.Key("name");
      writeString(w, d.name);
      w.Key("type");
      writeString(w, d.type);
      w.Key("endpoint");
      writeString(w, d.connector->endpointKey());
      w.EndObject();
    }
    w.EndArray();
    w.Key("retry");
    w.StartObject();
    w.Key("maxAttempts");
    w.Int(c->retry.maxAttempts);
    w.Key("maxAgeSeconds");
    w.Int64(c->retry.maxAgeMs / 1000);
    w.Key("initialBackoffMs");
    w.Int64(c->retry.initialBackoffMs);
    w.Key("maxBackoffMs");
    w.Int64(c->retry.maxBackoffMs);
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return core::HttpResponse::json(200, buf.GetString());
}

core::HttpResponse AdminApi::listMessages(const core::HttpRequest& request) {
  Params p{core::parseForm(request.query)};
  store::MessageQuery q;
  std::string error;
  auto limit = parseLimit(p, error);
  if (!limit) return problem(400, ErrorCode::kValue, error);
  q.limit = *limit;
  if (const auto* v = p.get("channel")) q.channelId = *v;
  if (const auto* v = p.get("status")) q.status = *v;
  if (const auto* v = p.get("from")) {
    q.fromMs = parseTimeParam(*v);
    if (!q.fromMs) return problem(400, ErrorCode::kValue, "from: expected epoch milliseconds or an ISO 8601 date-time");
  }
  if (const auto* v = p.get("to")) {
    q.toMs = parseTimeParam(*v);
    if (!q.toMs) return problem(400, ErrorCode::kValue, "to: expected epoch milliseconds or an ISO 8601 date-time");
  }
  if (const auto* v = p.get("before")) {
    q.beforeId = parseId(*v);
    if (!q.beforeId) return problem(400, ErrorCode::kValue, "before: expected a message id");
  }
  auto items = store_.listMessages(q);
  if (!items) return fromError(items.error());
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("items");
  w.StartArray();
  for (const auto& m : *items) {
    w.StartObject();
    w.Key("id");
    w.Int64(m.id);
    w.Key("channel");
    writeString(w, m.channelId);
    w.Key("receivedAt");
    writeString(w, isoTime(m.receivedAtMs));
    w.Key("status");
    writeString(w, m.status);
    if (!m.idempotencyKey.empty()) {
      w.Key("idempotencyKey");
      writeString(w, m.idempotencyKey);
    }
    w.Key("contentType");
    writeString(w, m.contentType);
    w.Key("size");
    w.Int64(m.size);
    if (!m.error.empty()) {
      w.Key("error");
      writeString(w, m.error);
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("next");
  if (static_cast<int>(items->size()) == q.limit && !items->empty()) {
    w.String(("before=" + std::to_string(items->back().id)).c_str());
  } else {
    w.Null();
  }
  w.EndObject();
  return core::HttpResponse::json(200, buf.GetString());
}

core::HttpResponse AdminApi::getMessage(std::int64_t id) {
  auto detail = store_.getMessage(id);
  if (!detail) return fromError(detail.error());
  const auto& m = detail->message;
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("id");
  w.Int64(m.id);
  w.Key("channel");
  writeString(w, m.channelId);
  w.Key("receivedAt");
  writeString(w, isoTime(m.receivedAtMs));
  w.Key("status");
  writeString(w, m.status);
  if (!m.error.empty()) {
    w.Key("error");
    writeString(w, m.error);
  }
  if (!m.idempotencyKey.empty()) {
    w.Key("idempotencyKey");
    writeString(w, m.idempotencyKey);
  }
  w.Key("contentType");
  writeString(w, m.contentType);
  writeMetadata(w, m.metadata);
  w.Key("raw");
  w.StartObject();
  writeBody(w, m.body);
  w.EndObject();
  w.Key("events");
  w.StartArray();
  for (const auto& e : detail->events) {
    w.StartObject();
    w.Key("id");
    w.Int64(e.id);
    w.Key("at");
    writeString(w, isoTime(e.atMs));
    w.Key("type");
    writeString(w, e.type);
    if (e.deliveryId) {
      w.Key("deliveryId");
      w.Int64(*e.deliveryId);
    }
    if (!e.detail.empty()) {
      w.Key("detail");
      writeString(w, e.detail);
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("deliveries");
  w.StartArray();
  for (const auto& d : detail->deliveries) {
    w.StartObject();
    writeDelivery(w, d.delivery, true);
    w.Key("attemptHistory");
    w.StartArray();
    for (const auto& a : d.attempts) {
      w.StartObject();
      w.Key("attempt");
      w.Int(a.attempt);
      w.Key("startedAt");
      writeString(w, isoTime(a.startedAtMs));
      w.Key("durationMs");
      w.Int64(a.durationMs);
      w.Key("outcome");
      writeString(w, a.outcome);
      if (a.statusCode != 0) {
        w.Key("statusCode");
        w.Int(a.statusCode);
      }
      w.Key("response");
      writeString(w, a.response);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return core::HttpResponse::json(200, buf.GetString());
}

core::HttpResponse AdminApi::replayMessage(std::int64_t id) {
  const core::Millis now = clock_->nowMs();
  if (auto r = store_.replayMessage(id, now, "replay requested by admin"); !r) return fromError(r.error());
  store_.audit({now, "admin", "replay-message", "message:" + std::to_string(id), ""});
  if (onReplay_) onReplay_();
  return core::HttpResponse::json(202, "{\"replayed\":" + std::to_string(id) + ",\"status\":\"received\"}");
}

core::HttpResponse AdminApi::replayDelivery(std::int64_t id) {
  const core::Millis now = clock_->nowMs();
  if (auto r = store_.replayDelivery(id, now, "replay requested by admin"); !r) return fromError(r.error());
  store_.audit({now, "admin", "replay-delivery", "delivery:" + std::to_string(id), ""});
  if (onReplay_) onReplay_();
  return core::HttpResponse::json(202, "{\"replayed\":" + std::to_string(id) + ",\"status\":\"pending\"}");
}

core::HttpResponse AdminApi::listDeliveries(const core::HttpRequest& request) {
  Params p{core::parseForm(request.query)};
  store::DeliveryQuery q;
  std::string error;
  auto limit = parseLimit(p, error);
  if (!limit) return problem(400, ErrorCode::kValue, error);
  q.limit = *limit;
  if (const auto* v = p.get("status")) {
    if (*v != "pending" && *v != "waiting" && *v != "succeeded" && *v != "dead") {
      return problem(400, ErrorCode::kValue,
                     "status: expected pending, waiting, succeeded or dead");
    }
    q.status = *v;
  }
  if (const auto* v = p.get("channel")) q.channelId = *v;
  if (const auto* v = p.get("destination")) q.destination = *v;
  if (const auto* v = p.get("before")) {
    q.beforeId = parseId(*v);
    if (!q.beforeId) return problem(400, ErrorCode::kValue, "before: expected a delivery id");
  }
  auto items = store_.listDeliveries(q);
  if (!items) return fromError(items.error());
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("items");
  w.StartArray();
  for (const auto& d : *items) {
    w.StartObject();
    writeDelivery(w, d, false);
    w.EndObject();
  }
  w.EndArray();
  w.Key("next");
  if (static_cast<int>(items->size()) == q.limit && !items->empty()) {
    w.String(("before=" + std::to_string(items->back().id)).c_str());
  } else {
    w.Null();
  }
  w.EndObject();
  return core::HttpResponse::json(200, buf.GetString());
}

core::HttpResponse AdminApi::listAudit(const core::HttpRequest& request) {
  Params p{core::parseForm(request.query)};
  std::string error;
  auto limit = parseLimit(p, error);
  if (!limit) return problem(400, ErrorCode::kValue, error);
  auto items = store_.listAudit(*limit);
  if (!items) return fromError(items.error());
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("items");
  w.StartArray();
  for (const auto& a : *items) {
    w.StartObject();
    w.Key("at");
    writeString(w, isoTime(a.atMs));
    w.Key("actor");
    writeString(w, a.actor);
    w.Key("action");
    writeString(w, a.action);
    w.Key("target");
    writeString(w, a.target);
    w.Key("detail");
    writeString(w, a.detail);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return core::HttpResponse::json(200, buf.GetString());
}

}  // namespace switchboard::admin

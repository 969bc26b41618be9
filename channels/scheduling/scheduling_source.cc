#include "channels/scheduling/scheduling_source.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <utility>

#include <openssl/sha.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include "engine/core/identifiers.h"

namespace switchboard::channels::scheduling {

namespace {

using rapidjson::Value;

constexpr std::size_t kMaxIdLength = 128;
constexpr std::size_t kMaxTimestampLength = 64;
constexpr std::size_t kMinKeyLength = 16;

using Digest = std::array<unsigned char, 32>;

Digest sha256(std::string_view bytes) {
  Digest d{};
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), d.data());
  return d;
}

std::string hex(const unsigned char* data, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out += kHex[data[i] >> 4];
    out += kHex[data[i] & 0xf];
  }
  return out;
}

// Lower-case ASCII with '_', '-' and ' ' removed: "appointment_canceled" == "AppointmentCanceled".
std::string folded(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '_' || c == '-' || c == ' ') continue;
    out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return out;
}

std::unexpected<ParseError> failure(ErrorCode code, std::string message, std::string pointer,
                                    int status = 422) {
  return std::unexpected(ParseError{Error(code, std::move(message), std::move(pointer)), status});
}

// One field that may be spelt two ways. Both present with different values is an error.
struct Field {
  const Value* value = nullptr;
  std::string name;  // the spelling found
};

std::expected<Field, ParseError> field(const Value& object,
                                       std::initializer_list<const char*> spellings) {
  Field found;
  for (const char* name : spellings) {
    auto it = object.FindMember(name);
    if (it == object.MemberEnd()) continue;
    if (found.value != nullptr && *found.value != it->value) {
      return failure(ErrorCode::kValue,
                     "fields " + found.name + " and " + name + " disagree; send one of them",
                     "/" + std::string(name));
    }
    if (found.value == nullptr) found = Field{&it->value, name};
  }
  return found;
}

bool hasControl(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// An identifier: a string of 1 to 128 characters without control characters, or an integer.
std::expected<std::string, ParseError> identifier(const Value& object,
                                                  std::initializer_list<const char*> spellings,
                                                  bool required) {
  auto f = field(object, spellings);
  if (!f) return std::unexpected(f.error());
  const std::string pointer = "/" + (f->value ? f->name : std::string(*spellings.begin()));
  if (f->value == nullptr || f->value->IsNull()) {
    if (!required) return std::string();
    return failure(ErrorCode::kRequired, std::string(*spellings.begin()) + " missing", pointer);
  }
  std::string text;
  if (f->value->IsString()) {
    text.assign(f->value->GetString(), f->value->GetStringLength());
  } else if (f->value->IsInt64()) {
    text = std::to_string(f->value->GetInt64());
  } else if (f->value->IsUint64()) {
    text = std::to_string(f->value->GetUint64());
  } else {
    return failure(ErrorCode::kValue, f->name + " must be a string or an integer", pointer);
  }
  if (text.empty() || text.size() > kMaxIdLength || hasControl(text)) {
    return failure(ErrorCode::kValue,
                   f->name + " must be 1 to 128 characters without control characters", pointer);
  }
  return text;
}

// An optional string member (nothing when absent or null).
std::expected<std::string, ParseError> optionalString(
    const Value& object, std::initializer_list<const char*> spellings) {
  auto f = field(object, spellings);
  if (!f) return std::unexpected(f.error());
  if (f->value == nullptr || f->value->IsNull()) return std::string();
  if (!f->value->IsString()) {
    return failure(ErrorCode::kValue, f->name + " must be a string", "/" + f->name);
  }
  return std::string(f->value->GetString(), f->value->GetStringLength());
}

bool digits(std::string_view s, std::size_t at, std::size_t n) {
  if (at + n > s.size()) return false;
  for (std::size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

// YYYY-MM-DD.
bool isDate(std::string_view s) {
  return s.size() == 10 && digits(s, 0, 4) && s[4] == '-' && digits(s, 5, 2) && s[7] == '-' &&
         digits(s, 8, 2);
}

// A FHIR instant: YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm).
bool isInstant(std::string_view s) {
  if (s.size() < 20 || !isDate(s.substr(0, 10)) || s[10] != 'T' || !digits(s, 11, 2) ||
      s[13] != ':' || !digits(s, 14, 2) || s[16] != ':' || !digits(s, 17, 2)) {
    return false;
  }
  std::size_t at = 19;
  if (at < s.size() && s[at] == '.') {
    std::size_t start = ++at;
    while (at < s.size() && s[at] >= '0' && s[at] <= '9') ++at;
    if (at == start) return false;
  }
  std::string_view zone = s.substr(at);
  if (zone == "Z") return true;
  return zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && digits(zone, 1, 2) &&
         zone[3] == ':' && digits(zone, 4, 2);
}

struct EventName {
  const char* folded;
  const char* canonical;
};
constexpr EventName kEvents[] = {
    {"appointmentcreated", "appointmentCreated"},
    {"appointmentrescheduled", "appointmentRescheduled"},
    {"appointmentcanceled", "appointmentCanceled"},
    {"appointmentcancelled", "appointmentCanceled"},
    {"queued", "Queued"},
    {"patientcreated", "patientCreated"},
};
constexpr EventName kActions[] = {
    {"scheduled", "appointmentCreated"},
    {"rescheduled", "appointmentRescheduled"},
    {"cancelled", "appointmentCanceled"},
    {"canceled", "appointmentCanceled"},
    {"queued", "Queued"},
};

template <std::size_t N>
const char* lookup(const EventName (&table)[N], std::string_view text) {
  const std::string key = folded(text);
  for (const auto& e : table) {
    if (key == e.folded) return e.canonical;
  }
  return nullptr;
}

// SCHEDULED, RESCHEDULED, CANCELED, CONFIRMED, SHOW, NO SHOW; case, '_', '-' and spaces ignored,
// CANCELLED and NOSHOW accepted.
const char* canonicalStatus(std::string_view text) {
  const std::string key = folded(text);
  if (key == "scheduled") return "SCHEDULED";
  if (key == "rescheduled") return "RESCHEDULED";
  if (key == "canceled" || key == "cancelled") return "CANCELED";
  if (key == "confirmed") return "CONFIRMED";
  if (key == "show") return "SHOW";
  if (key == "noshow") return "NO SHOW";
  return nullptr;
}

const char* defaultStatus(std::string_view event) {
  if (event == "appointmentCreated") return "SCHEDULED";
  if (event == "appointmentRescheduled") return "RESCHEDULED";
  if (event == "appointmentCanceled") return "CANCELED";
  if (event == "Queued") return "SHOW";
  return "";
}

// Percent-encodes ':' and '%' so the parts of an idempotency key cannot run into each other.
std::string keyPart(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '%') {
      out += "%25";
    } else if (c == ':') {
      out += "%3A";
    } else {
      out += c;
    }
  }
  return out;
}

core::HttpResponse outcome(int status, Error error) {
  core::HttpResponse r = core::HttpResponse::json(status, core::operationOutcomeJson(error));
  r.contentType = "application/fhir+json";
  return r;
}

// The key a request presents: the configured header, else `Authorization: Bearer <key>`.
std::optional<std::string_view> presentedKey(const core::HttpRequest& request,
                                             const std::string& header) {
  if (const std::string* v = request.header(header)) return std::string_view(*v);
  if (const std::string* auth = request.header("Authorization")) {
    std::string_view a(*auth);
    if (a.size() > 7 && folded(a.substr(0, 6)) == "bearer" && a[6] == ' ') {
      a.remove_prefix(7);
      while (!a.empty() && a.front() == ' ') a.remove_prefix(1);
      return a;
    }
  }
  return std::nullopt;
}

std::string trimmed(std::string s) {
  while (!s.empty() &&
         (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t'))
    s.pop_back();
  std::size_t start = 0;
  while (start < s.size() && (s[start] == ' ' || s[start] == '\t')) ++start;
  return s.substr(start);
}

std::optional<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A facility id: 1 to 64 of [A-Za-z0-9.-] (a FHIR id, usable in a search and a reference).
bool isFacilityId(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.')) {
      return false;
    }
  }
  return true;
}

std::string resolve(const std::string& path, const core::ConnectorContext& ctx) {
  std::filesystem::path p(path);
  if (p.is_relative() && !ctx.confDir.empty()) p = std::filesystem::path(ctx.confDir) / p;
  return p.string();
}

}  // namespace

std::expected<SchedulingEvent, ParseError> parseEvent(std::string_view body) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(body.data(), body.size());
  if (doc.HasParseError()) {
    return failure(ErrorCode::kStructure,
                   std::string("malformed JSON at offset ") + std::to_string(doc.GetErrorOffset()) +
                       ": " + rapidjson::GetParseError_En(doc.GetParseError()),
                   "", 400);
  }
  if (!doc.IsObject()) {
    return failure(ErrorCode::kStructure, "scheduling webhook body must be a JSON object", "", 400);
  }
  SchedulingEvent e;
  auto eventText = optionalString(doc, {"event"});
  if (!eventText) return std::unexpected(eventText.error());
  auto actionText = optionalString(doc, {"action"});
  if (!actionText) return std::unexpected(actionText.error());
  const char* fromEvent = nullptr;
  const char* fromAction = nullptr;
  if (!eventText->empty() && (fromEvent = lookup(kEvents, *eventText)) == nullptr) {
    return failure(ErrorCode::kCodeInvalid,
                   "unknown event; expected appointmentCreated, appointmentRescheduled, "
                   "appointmentCanceled, Queued or patientCreated",
                   "/event");
  }
  if (!actionText->empty() && (fromAction = lookup(kActions, *actionText)) == nullptr) {
    return failure(ErrorCode::kCodeInvalid,
                   "unknown action; expected scheduled, rescheduled, cancelled or queued",
                   "/action");
  }
  if (fromEvent == nullptr && fromAction == nullptr) {
    return failure(ErrorCode::kRequired, "event (or action) missing", "/event");
  }
  if (fromEvent != nullptr && fromAction != nullptr && std::string_view(fromEvent) != fromAction) {
    return failure(ErrorCode::kValue, "action disagrees with event", "/action");
  }
  e.event = fromEvent != nullptr ? fromEvent : fromAction;
  const bool patientEvent = e.event == "patientCreated";

  auto appointmentId = identifier(doc, {"appointmentId", "appointment_id"}, !patientEvent);
  if (!appointmentId) return std::unexpected(appointmentId.error());
  e.appointmentId = std::move(*appointmentId);
  auto patientId = identifier(doc, {"patientId", "patient_id"}, patientEvent);
  if (!patientId) return std::unexpected(patientId.error());
  e.patientId = std::move(*patientId);
  auto temporaryId = identifier(doc, {"temporaryPatientId", "temporary_patient_id"}, patientEvent);
  if (!temporaryId) return std::unexpected(temporaryId.error());
  e.temporaryPatientId = std::move(*temporaryId);
  if (!patientEvent && e.patientId.empty() && e.temporaryPatientId.empty()) {
    return failure(ErrorCode::kRequired, "patientId (or temporaryPatientId) missing", "/patientId");
  }
  if (patientEvent && e.patientId == e.temporaryPatientId) {
    return failure(ErrorCode::kValue, "patientId equals temporaryPatientId", "/patientId");
  }
  auto queue = identifier(doc, {"queueNumber", "queue_number"}, false);
  if (!queue) return std::unexpected(queue.error());

  auto status = optionalString(doc, {"status"});
  if (!status) return std::unexpected(status.error());
  if (!status->empty()) {
    const char* canonical = canonicalStatus(*status);
    if (canonical == nullptr) {
      return failure(ErrorCode::kCodeInvalid,
                     "unknown status; expected SCHEDULED, RESCHEDULED, CANCELED, CONFIRMED, SHOW "
                     "or NO SHOW",
                     "/status");
    }
    if (!patientEvent) e.status = canonical;
  } else {
    e.status = defaultStatus(e.event);
  }

  auto timestamp = identifier(doc, {"timestamp", "eventTime", "event_time"}, false);
  if (!timestamp) return std::unexpected(timestamp.error());
  if (timestamp->size() > kMaxTimestampLength) {
    return failure(ErrorCode::kValue, "timestamp longer than 64 characters", "/timestamp");
  }
  e.timestamp = std::move(*timestamp);

  for (auto spellings :
       {std::initializer_list<const char*>{"name"}, std::initializer_list<const char*>{"email"}}) {
    if (auto s = optionalString(doc, spellings); !s) return std::unexpected(s.error());
  }
  auto phone = optionalString(doc, {"phone"});
  if (!phone) return std::unexpected(phone.error());
  e.phone = std::move(*phone);
  auto dob = optionalString(doc, {"DoB", "dob", "dateOfBirth", "date_of_birth"});
  if (!dob) return std::unexpected(dob.error());
  if (!dob->empty() && !isDate(*dob)) {
    return failure(ErrorCode::kValue, "DoB must be a date written YYYY-MM-DD", "/DoB");
  }
  for (auto spellings : {std::initializer_list<const char*>{"start", "startTime", "start_time"},
                         std::initializer_list<const char*>{"end", "endTime", "end_time"}}) {
    auto t = optionalString(doc, spellings);
    if (!t) return std::unexpected(t.error());
    if (!t->empty() && !isInstant(*t)) {
      return failure(ErrorCode::kValue,
                     std::string(*spellings.begin()) +
                         " must be an instant with seconds and an offset, e.g. "
                         "2026-03-02T09:30:00+08:00",
                     "/" + std::string(*spellings.begin()));
    }
  }
  return e;
}

std::string idempotencyKey(const std::string& facility, const SchedulingEvent& event,
                           std::string_view body) {
  const bool patientEvent = event.event == "patientCreated";
  std::string key = "scheduling:" + keyPart(facility) + ":" + event.event + ":" +
                    keyPart(patientEvent ? event.temporaryPatientId + ">" + event.patientId
                                         : event.appointmentId) +
                    ":" + keyPart(event.status) + ":";
  if (!event.timestamp.empty()) return key + "t=" + keyPart(event.timestamp);
  const Digest d = sha256(body);
  return key + "sha256=" + hex(d.data(), 16);
}

std::optional<std::string> facilityForKey(const std::vector<FacilityKey>& keys,
                                          std::string_view presented) {
  const Digest d = sha256(presented);
  const std::string_view digest(reinterpret_cast<const char*>(d.data()), d.size());
  std::size_t match = keys.size();
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const std::string_view candidate(reinterpret_cast<const char*>(keys[i].digest.data()),
                                     keys[i].digest.size());
    // Every key is compared, whichever matches: no early exit.
    const bool equal = core::constantTimeEquals(digest, candidate);
    match = equal ? i : match;
  }
  if (match == keys.size()) return std::nullopt;
  return keys[match].facility;
}

SchedulingSource::SchedulingSource(SchedulingSourceConfig config) : config_(std::move(config)) {}

core::SourceVerdict SchedulingSource::handle(const core::HttpRequest& request) const {
  using core::SourceVerdict;
  std::optional<std::string_view> presented = presentedKey(request, config_.header);
  if (!presented || presented->empty()) return SourceVerdict::refuse("api key missing");
  std::optional<std::string> facility = facilityForKey(config_.keys, *presented);
  if (!facility) return SourceVerdict::refuse("api key not recognised");
  if (request.method != "POST") {
    core::HttpResponse r = outcome(
        405,
        Error(ErrorCode::kNotSupported, "method " + request.method + " not allowed; use POST"));
    r.headers.push_back({"Allow", "POST"});
    return SourceVerdict::respond(std::move(r));
  }
  if (request.body.size() > config_.maxBodyBytes) {
    return SourceVerdict::respond(
        outcome(413, Error(ErrorCode::kTooLong,
                           "body exceeds " + std::to_string(config_.maxBodyBytes) + " bytes")));
  }
  core::InboundMessage message;
  message.contentType = "application/json";
  message.body = request.body;
  core::setMetadata(message.metadata, "provider", "scheduling");
  core::setMetadata(message.metadata, "facility", *facility);
  auto event = parseEvent(request.body);
  if (!event) {
    core::setMetadata(message.metadata, "kind", "other");
    return SourceVerdict::reject(std::move(message), std::move(event.error().error),
                                 event.error().httpStatus);
  }
  message.idempotencyKey = idempotencyKey(*facility, *event, request.body);
  const bool patientEvent = event->event == "patientCreated";
  core::setMetadata(message.metadata, "kind", patientEvent ? "patient" : "appointment");
  core::setMetadata(message.metadata, "event", event->event);
  if (!event->status.empty()) core::setMetadata(message.metadata, "status", event->status);
  if (!event->appointmentId.empty()) {
    core::setMetadata(message.metadata, "appointment_id", event->appointmentId);
  }
  if (!event->phone.empty()) {
    core::setMetadata(message.metadata, "sender", core::normalizeE164(event->phone));
    core::setMetadata(message.metadata, "sender_raw", event->phone);
  }
  std::vector<core::InboundMessage> messages;
  messages.push_back(std::move(message));
  return SourceVerdict::accept(std::move(messages),
                               core::HttpResponse::json(200, R"({"status":"accepted"})"));
}

Result<std::unique_ptr<core::HttpSource>> SchedulingSource::create(
    core::ConfigReader& config, const core::ConnectorContext& ctx) {
  SchedulingSourceConfig c;
  c.path = config.requiredString("path", "URL path served, e.g. /webhooks/scheduling");
  if (!c.path.empty() && c.path.front() != '/') {
    config.invalid("path", "a path starting with '/'");
  }
  c.maxBodyBytes = static_cast<std::size_t>(
      config.integer("max_body_bytes", 64 << 10, 1, 64 << 20, "largest accepted body in bytes"));
  c.header = config.string("header", "X-API-Key",
                           "request header carrying the facility's API key "
                           "(Authorization: Bearer is accepted as well)");
  if (c.header.empty() || hasControl(c.header) || c.header.find(':') != std::string::npos ||
      folded(c.header) == "authorization") {
    config.invalid("header", "a header name other than Authorization (Bearer is read anyway)");
  }
  std::vector<std::pair<std::string, std::string>> pairs;  // facility, key
  if (const Value* keys = config.array(
          "keys", false,
          "facility keys: objects {\"facility\": ID, \"key_env\": NAME} or {\"facility\": ID, "
          "\"key_file\": PATH}")) {
    for (rapidjson::SizeType i = 0; i < keys->Size(); ++i) {
      const std::string where = "keys/" + std::to_string(i);
      if (!(*keys)[i].IsObject()) {
        config.invalid(where, "an object with facility and key_env or key_file");
        continue;
      }
      core::ConfigReader entry = config.child((*keys)[i], where);
      std::string facility = entry.requiredString("facility", "the facility (location) id");
      std::string env = entry.string("key_env", "", "environment variable holding the key");
      std::string file = entry.string("key_file", "", "file holding the key (one line)");
      if (auto r = entry.finish(); !r) return std::unexpected(r.error());
      if (env.empty() == file.empty()) {
        config.invalid(where, "exactly one of key_env and key_file");
        continue;
      }
      std::string key;
      if (!env.empty()) {
        const char* v = std::getenv(env.c_str());
        if (v == nullptr) {
          config.invalid(where + "/key_env", "the environment variable " + env + " to be set");
          continue;
        }
        key = trimmed(v);
      } else {
        auto text = readFile(resolve(file, ctx));
        if (!text) {
          config.invalid(where + "/key_file", "a readable file (cannot read " + file + ")");
          continue;
        }
        key = trimmed(std::move(*text));
      }
      pairs.emplace_back(std::move(facility), std::move(key));
    }
  }
  std::string keysFile =
      config.string("keys_file", "",
                    "file of facility keys, one \"FACILITY KEY\" a line ('#' comments); e.g. "
                    "${env:SWITCHBOARD_SCHEDULING_KEYS_FILE}");
  if (!keysFile.empty()) {
    auto text = readFile(resolve(keysFile, ctx));
    if (!text) {
      config.invalid("keys_file", "a readable file (cannot read " + keysFile + ")");
    } else {
      std::istringstream lines(*text);
      std::string line;
      for (int number = 1; std::getline(lines, line); ++number) {
        line = trimmed(std::move(line));
        if (line.empty() || line.front() == '#') continue;
        const std::size_t gap = line.find_first_of(" \t");
        if (gap == std::string::npos) {
          config.invalid("keys_file",
                         "lines \"FACILITY KEY\" (line " + std::to_string(number) + " has no key)");
          continue;
        }
        pairs.emplace_back(line.substr(0, gap), trimmed(line.substr(gap + 1)));
      }
    }
  }
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const auto& [facility, key] = pairs[i];
    if (!isFacilityId(facility)) {
      config.invalid("keys", "facility ids of 1 to 64 characters [A-Za-z0-9.-] (entry " +
                                 std::to_string(i) + ")");
    } else if (key.size() < kMinKeyLength || hasControl(key)) {
      config.invalid("keys",
                     "keys of at least 16 characters without control characters "
                     "(the key of facility " +
                         facility + ")");
    }
    FacilityKey k{facility, sha256(key)};
    for (const auto& other : c.keys) {
      if (other.digest == k.digest) {
        config.invalid("keys", "a key per facility (facilities " + other.facility + " and " +
                                   facility + " share one)");
      }
    }
    c.keys.push_back(std::move(k));
  }
  if (c.keys.empty()) {
    config.invalid("keys",
                   "at least one facility key in keys or keys_file, e.g. \"keys_file\": "
                   "\"${env:SWITCHBOARD_SCHEDULING_KEYS_FILE}\"");
  }
  if (auto r = config.finish(); !r) return std::unexpected(r.error());
  return std::make_unique<SchedulingSource>(std::move(c));
}

}  // namespace switchboard::channels::scheduling

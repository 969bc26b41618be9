#include "engine/core/connector.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace switchboard::core {

SourceVerdict SourceVerdict::accept(std::vector<InboundMessage> messages, HttpResponse reply) {
  SourceVerdict v;
  v.kind = Kind::kAccept;
  v.messages = std::move(messages);
  v.reply = std::move(reply);
  return v;
}

SourceVerdict SourceVerdict::reject(InboundMessage raw, Error error, int status) {
  SourceVerdict v;
  v.kind = Kind::kReject;
  v.reply = HttpResponse::json(status, operationOutcomeJson(error));
  v.reply.contentType = "application/fhir+json";
  v.messages.push_back(std::move(raw));
  v.error = std::move(error);
  return v;
}

SourceVerdict SourceVerdict::refuse(std::string reason, int status) {
  SourceVerdict v;
  v.kind = Kind::kRefuse;
  v.auditReason = std::move(reason);
  v.reply = HttpResponse::json(
      status, operationOutcomeJson(Error(ErrorCode::kSecurity, "authentication failed")));
  v.reply.contentType = "application/fhir+json";
  return v;
}

const std::string& ListenerSource::path() const {
  static const std::string kNone;
  return kNone;
}

SourceVerdict SourceVerdict::respond(HttpResponse reply) {
  SourceVerdict v;
  v.kind = Kind::kRespond;
  v.reply = std::move(reply);
  return v;
}

void Destination::sendMany(std::span<const DeliveryRequest* const> requests,
                           std::span<SentDelivery> sent) {
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      sent[i].result = send(*requests[i]);
    } catch (const std::exception& e) {
      sent[i].result = DeliveryResult::retry(std::string("destination threw: ") + e.what());
    }
    sent[i].elapsed = std::chrono::steady_clock::now() - t0;
  }
}

namespace {
template <typename T>
const T* lookup(const std::vector<std::pair<std::string, T>>& items, const std::string& type) {
  for (const auto& [name, f] : items) {
    if (name == type) return &f;
  }
  return nullptr;
}
template <typename T>
std::vector<std::string> names(const std::vector<std::pair<std::string, T>>& items) {
  std::vector<std::string> out;
  for (const auto& [name, f] : items) out.push_back(name);
  return out;
}
}  // namespace

void ConnectorRegistry::addSource(std::string type, Factory<HttpSource> factory) {
  sources_.emplace_back(std::move(type), std::move(factory));
}
void ConnectorRegistry::addStage(std::string type, Factory<Stage> factory) {
  stages_.emplace_back(std::move(type), std::move(factory));
}
void ConnectorRegistry::addDestination(std::string type, Factory<Destination> factory) {
  destinations_.emplace_back(std::move(type), std::move(factory));
}
const Factory<HttpSource>* ConnectorRegistry::source(const std::string& type) const {
  return lookup(sources_, type);
}
const Factory<Stage>* ConnectorRegistry::stage(const std::string& type) const {
  return lookup(stages_, type);
}
const Factory<Destination>* ConnectorRegistry::destination(const std::string& type) const {
  return lookup(destinations_, type);
}
std::vector<std::string> ConnectorRegistry::sourceTypes() const { return names(sources_); }
std::vector<std::string> ConnectorRegistry::stageTypes() const { return names(stages_); }
std::vector<std::string> ConnectorRegistry::destinationTypes() const { return names(destinations_); }

std::string operationOutcomeJson(const Error& error, const char* severity) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("resourceType");
  w.String("OperationOutcome");
  w.Key("issue");
  w.StartArray();
  w.StartObject();
  w.Key("severity");
  w.String(severity);
  w.Key("code");
  w.String(issueTypeCode(error.code));
  w.Key("diagnostics");
  w.String(error.message.c_str(), static_cast<rapidjson::SizeType>(error.message.size()));
  if (!error.location.empty()) {
    w.Key("expression");
    w.StartArray();
    w.String(error.location.c_str(), static_cast<rapidjson::SizeType>(error.location.size()));
    w.EndArray();
  }
  w.EndObject();
  w.EndArray();
  w.EndObject();
  return buf.GetString();
}

}  // namespace switchboard::core

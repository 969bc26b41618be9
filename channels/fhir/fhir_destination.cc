#include "channels/fhir/fhir_destination.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "channels/fhir/http_call.h"
#include "channels/fhir/json_read.h"
#include "channels/http/http_destination.h"

namespace switchboard::channels::fhir {

namespace {

const core::SystemClock& systemClock() {
  static const core::SystemClock clock;
  return clock;
}

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void writeString(Writer& w, std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); }

void copyStringMember(Writer& w, const rapidjson::Value& from, const char* key, std::size_t maxLen = 1000) {
  // The first member named `key` (as HasMember() and operator[] find it), looked up once.
  const auto m = from.FindMember(key);
  if (m != from.MemberEnd() && m->value.IsString()) {
    w.Key(key);
    std::string_view v(m->value.GetString(), m->value.GetStringLength());
    writeString(w, v.substr(0, maxLen));
  }
}

}  // namespace

std::string summariseSuccess(int httpStatus, const std::string& body, const std::string& location) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  const JsonRead read(body);
  const rapidjson::Value* doc = read.root();
  w.StartObject();
  if (doc && doc->IsObject() && doc->HasMember("resourceType") &&
      (*doc)["resourceType"].IsString() &&
      std::string_view((*doc)["resourceType"].GetString()) == "Bundle" && doc->HasMember("entry") &&
      (*doc)["entry"].IsArray()) {
    w.Key("entry");
    w.StartArray();
    for (const auto& e : (*doc)["entry"].GetArray()) {
      w.StartObject();
      if (e.IsObject() && e.HasMember("response") && e["response"].IsObject()) {
        copyStringMember(w, e["response"], "status");
        copyStringMember(w, e["response"], "location");
        copyStringMember(w, e["response"], "etag");
      }
      w.EndObject();
    }
    w.EndArray();
  } else {
    w.Key("status");
    w.Int(httpStatus);
    if (!location.empty()) {
      w.Key("location");
      writeString(w, location);
    }
  }
  w.EndObject();
  return buffer.GetString();
}

std::string summariseFailure(int httpStatus, const std::string& body) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  const JsonRead read(body);
  const rapidjson::Value* doc = read.root();
  w.StartObject();
  w.Key("status");
  w.Int(httpStatus);
  if (doc && doc->IsObject() && doc->HasMember("issue") && (*doc)["issue"].IsArray()) {
    w.Key("issues");
    w.StartArray();
    int n = 0;
    for (const auto& issue : (*doc)["issue"].GetArray()) {
      if (!issue.IsObject() || ++n > 50) continue;
      w.StartObject();
      copyStringMember(w, issue, "severity");
      copyStringMember(w, issue, "code");
      copyStringMember(w, issue, "diagnostics");
      if (issue.HasMember("details") && issue["details"].IsObject()) {
        if (issue["details"].HasMember("text") && issue["details"]["text"].IsString()) {
          w.Key("details");
          writeString(w, std::string_view(issue["details"]["text"].GetString()).substr(0, 1000));
        }
      }
      for (const char* key : {"expression", "location"}) {
        if (issue.HasMember(key) && issue[key].IsArray()) {
          w.Key("expression");
          w.StartArray();
          for (const auto& x : issue[key].GetArray()) {
            if (x.IsString()) writeString(w, x.GetString());
          }
          w.EndArray();
          break;
        }
      }
      w.EndObject();
    }
    w.EndArray();
  } else if (!body.empty()) {
    w.Key("body");
    writeString(w, std::string_view(body).substr(0, 512));
  }
  w.EndObject();
  return buffer.GetString();
}

FhirDestination::FhirDestination(FhirDestinationConfig config, const core::Clock& clock)
    : config_(std::move(config)),
      plainHttp_(isPlainHttpUrl(config_.baseUrl)),
      tls_(std::make_shared<TlsContexts>(config_.caFile)) {
  while (!config_.baseUrl.empty() && config_.baseUrl.back() == '/') config_.baseUrl.pop_back();
  auth_ = std::make_unique<Authenticator>(config_.auth, config_.baseUrl, tls_, clock);
}

std::string FhirDestination::endpointKey() const { return config_.baseUrl; }

// Whether posting `bundle` (a transaction or batch) twice creates nothing the first post did not:
// every entry reads, deletes, updates (PUT) or creates conditionally (POST with ifNoneExist).
bool repeatableBundle(const rapidjson::Value& bundle) {
  if (!bundle.HasMember("entry") || !bundle["entry"].IsArray() || bundle["entry"].Empty()) return false;
  for (const auto& e : bundle["entry"].GetArray()) {
    if (!e.IsObject() || !e.HasMember("request") || !e["request"].IsObject()) return false;
    const rapidjson::Value& r = e["request"];
    if (!r.HasMember("method") || !r["method"].IsString()) return false;
    std::string_view method(r["method"].GetString(), r["method"].GetStringLength());
    if (method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE") continue;
    if (method == "POST" && r.HasMember("ifNoneExist") && r["ifNoneExist"].IsString() &&
        r["ifNoneExist"].GetStringLength() > 0) {
      continue;
    }
    return false;
  }
  return true;
}

std::optional<PayloadRoute> routePayload(std::string_view payload) {
  const JsonRead read(payload);
  const rapidjson::Value* doc = read.root();
  if (!doc || !doc->IsObject() || !doc->HasMember("resourceType") ||
      !(*doc)["resourceType"].IsString()) {
    return std::nullopt;
  }
  PayloadRoute route;
  route.type = (*doc)["resourceType"].GetString();
  route.toBase = route.type == "Bundle" && doc->HasMember("type") && (*doc)["type"].IsString() &&
                 (std::string_view((*doc)["type"].GetString()) == "transaction" ||
                  std::string_view((*doc)["type"].GetString()) == "batch");
  route.repeatable = route.toBase && repeatableBundle(*doc);
  return route;
}

FhirDestination::Prepared FhirDestination::prepare(const core::DeliveryRequest& request) {
  Prepared p;
  // Where to POST: a transaction or batch Bundle goes to the base, a resource to its type.
  p.url = config_.baseUrl;
  const std::optional<PayloadRoute> route = routePayload(request.payload);
  if (!route) {
    p.unsent = core::DeliveryResult::fail(summariseFailure(
        0,
        R"({"issue":[{"severity":"error","code":"structure","diagnostics":"payload is not a FHIR JSON resource"}]})"));
    return p;
  }
  if (!route->toBase) p.url += "/" + route->type;
  p.repeatable = route->repeatable;
  auto authorization = auth_->authorization();
  if (!authorization) {
    p.unsent = core::DeliveryResult::retry("authentication: " + authorization.error().message);
    p.unsent->repeatable = p.repeatable;
    return p;
  }
  p.authorization = std::move(*authorization);
  p.headers = {
      {"Content-Type", "application/fhir+json; charset=utf-8"},
      {"Accept", "application/fhir+json"},
      {"Prefer", "return=" + config_.prefer},
      {"X-Request-Id", request.channelId + "-" + std::to_string(request.messageId) + "-" +
                           std::to_string(request.deliveryId) + "-" +
                           std::to_string(request.attempt)},
  };
  if (!p.authorization.empty()) p.headers.push_back({"Authorization", p.authorization});
  for (const auto& h : config_.headers) p.headers.push_back(h);
  return p;
}

Result<HttpExchange> FhirDestination::exchange(const Prepared& prepared, std::string_view body) {
  if (!plainHttp_) {
    return call("POST", prepared.url, prepared.headers, body, config_.timeout, *tls_, 8 << 20,
                &connections_);
  }
  ClientRequest r;
  r.url = prepared.url;
  r.headers = prepared.headers;
  r.body = body;
  return client_.exchange(r, config_.timeout, 8 << 20);
}

core::DeliveryResult FhirDestination::send(const core::DeliveryRequest& request) {
  const Prepared p = prepare(request);
  if (p.unsent) return *p.unsent;
  return interpret(p, exchange(p, request.payload));
}

void FhirDestination::sendMany(std::span<const core::DeliveryRequest* const> requests,
                               std::span<core::SentDelivery> sent) {
  std::vector<Prepared> prepared;
  prepared.reserve(requests.size());
  for (const core::DeliveryRequest* r : requests) prepared.push_back(prepare(*r));
  if (!plainHttp_) {  // TLS through Poco: one after another
    for (std::size_t i = 0; i < requests.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      sent[i].result = prepared[i].unsent
                           ? *prepared[i].unsent
                           : interpret(prepared[i], exchange(prepared[i], requests[i]->payload));
      sent[i].elapsed = std::chrono::steady_clock::now() - t0;
    }
    return;
  }
  std::vector<ClientRequest> calls;
  std::vector<std::size_t> callOf;  // index into requests, per call
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (prepared[i].unsent) {
      sent[i].result = *prepared[i].unsent;
      continue;
    }
    ClientRequest& c = calls.emplace_back();
    c.url = prepared[i].url;
    c.headers = prepared[i].headers;
    c.body = requests[i]->payload;
    callOf.push_back(i);
  }
  std::vector<ClientExchange> answers(calls.size());
  client_.exchangeMany(calls, answers, config_.timeout, 8 << 20, kConnections);
  for (std::size_t j = 0; j < calls.size(); ++j) {
    sent[callOf[j]].result = interpret(prepared[callOf[j]], answers[j].reply);
    sent[callOf[j]].elapsed = answers[j].elapsed;
  }
}

core::DeliveryResult FhirDestination::interpret(const Prepared& prepared,
                                                const Result<HttpExchange>& ex) {
  core::DeliveryResult result = [&] {
    if (!ex) return core::DeliveryResult::retry(ex.error().message);
    const std::string* location = ex->header("Location");
    if (ex->status >= 200 && ex->status < 300) {
      return core::DeliveryResult::ok(
          summariseSuccess(ex->status, ex->body, location ? *location : ""), ex->status);
    }
    core::DeliveryResult r;
    r.responseCode = ex->status;
    r.response = summariseFailure(ex->status, ex->body);
    if (ex->status == 401 && config_.auth.kind != AuthKind::kNone &&
        config_.auth.kind != AuthKind::kBearer) {
      auth_->invalidate(prepared.authorization);  // the next attempt fetches a fresh token
      r.status = core::DeliveryStatus::kRetry;
      return r;
    }
    r.status = classifyHttpStatus(ex->status);
    if (r.status == core::DeliveryStatus::kRetry) {
      if (const std::string* ra = ex->header("Retry-After")) r.retryAfter = parseRetryAfter(*ra);
    }
    return r;
  }();
  result.repeatable = prepared.repeatable;
  return result;
}

Result<std::unique_ptr<core::Destination>> FhirDestination::create(core::ConfigReader& config,
                                                                   const core::ConnectorContext&) {
  FhirDestinationConfig c;
  c.baseUrl = config.requiredString("base_url", "FHIR base URL of the EHR, e.g. https://ehr.example/fhir/R4");
  if (!c.baseUrl.empty() && !c.baseUrl.starts_with("http://") && !c.baseUrl.starts_with("https://")) {
    config.invalid("base_url", "an http:// or https:// URL");
  }
  c.prefer = config.string("prefer", "minimal", "Prefer: return= minimal | representation | OperationOutcome");
  if (c.prefer != "minimal" && c.prefer != "representation" && c.prefer != "OperationOutcome") {
    config.invalid("prefer", "minimal, representation or OperationOutcome");
  }
  c.timeout = std::chrono::milliseconds(config.integer("timeout_ms", 15000, 100, 600000, "request timeout in milliseconds"));
  c.caFile = config.string("ca_file", "", "PEM CA bundle for TLS verification; empty: the system CAs");
  c.headers = readHeaders(config);
  Result<void> authResult;
  if (const auto* auth = config.object("auth", false, "authentication: none, bearer, client_credentials, smart_backend")) {
    core::ConfigReader a = config.child(*auth, "auth");
    std::string type = a.requiredString("type", "none | bearer | client_credentials | smart_backend");
    if (type == "none") {
      c.auth.kind = AuthKind::kNone;
    } else if (type == "bearer") {
      c.auth.kind = AuthKind::kBearer;
      c.auth.token = a.requiredString("token", "static bearer token: use ${env:...} or ${file:...}");
    } else if (type == "client_credentials") {
      c.auth.kind = AuthKind::kClientSecret;
      c.auth.tokenUrl = a.requiredString("token_url", "OAuth2 token endpoint");
      c.auth.clientId = a.requiredString("client_id", "OAuth2 client id");
      c.auth.clientSecret = a.requiredString("client_secret", "client secret: use ${env:...} or ${file:...}");
      c.auth.scope = a.string("scope", "", "requested scopes, e.g. system/Patient.cu system/Appointment.cu");
    } else if (type == "smart_backend") {
      c.auth.kind = AuthKind::kSmartBackend;
      c.auth.tokenUrl = a.string("token_url", "", "token endpoint; empty: discovered from .well-known/smart-configuration");
      c.auth.clientId = a.requiredString("client_id", "client id registered with the EHR");
      c.auth.privateKeyPem = a.requiredString("private_key", "PEM private key: use ${file:/path/key.pem}");
      c.auth.algorithm = a.string("algorithm", "RS384", "RS384 or ES384");
      c.auth.keyId = a.requiredString("kid", "key id of the registered public key (JWT header kid)");
      c.auth.scope = a.string("scope", "", "requested scopes, e.g. system/Patient.cu system/Appointment.cu");
      if (!c.auth.privateKeyPem.empty()) {
        if (auto ok = Authenticator::checkKey(c.auth.privateKeyPem, c.auth.algorithm); !ok) {
          a.invalid("private_key", ok.error().message);
        }
      }
    } else {
      a.invalid("type", "none, bearer, client_credentials or smart_backend");
    }
    c.auth.timeout = c.timeout;
    authResult = a.finish();
  }
  // The first problem in file order: top-level keys before the auth object's.
  if (auto r = config.finish(); !r) return std::unexpected(r.error());
  if (!authResult) return std::unexpected(authResult.error());
  return std::make_unique<FhirDestination>(std::move(c), systemClock());
}

}  // namespace switchboard::channels::fhir

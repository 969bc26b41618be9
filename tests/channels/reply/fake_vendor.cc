// Local fake of the three send APIs; see fake_vendor.h.
#include "fake_vendor.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>
#include <rapidjson/document.h>

#include <set>
#include <sstream>

#include "engine/core/http_types.h"

namespace switchboard::testing {

namespace {

std::set<std::string> keysOf(const rapidjson::Value& v) {
  std::set<std::string> keys;
  if (!v.IsObject()) return keys;
  for (const auto& m : v.GetObject()) keys.insert(m.name.GetString());
  return keys;
}

bool nonEmptyString(const rapidjson::Value& obj, const char* key) {
  if (!obj.IsObject()) return false;
  auto it = obj.FindMember(key);
  return it != obj.MemberEnd() && it->value.IsString() && it->value.GetStringLength() > 0;
}

bool stringIs(const rapidjson::Value& obj, const char* key, const char* expected) {
  return nonEmptyString(obj, key) && std::string(obj[key].GetString()) == expected;
}

// components: [{"type":"body","parameters":[{"type":"text","text":"..."}]}]
std::string checkComponents(const rapidjson::Value& tpl) {
  if (!tpl.HasMember("components")) return {};
  const auto& c = tpl["components"];
  if (!c.IsArray() || c.Empty()) return "components must be a non-empty array";
  for (const auto& comp : c.GetArray()) {
    if (keysOf(comp) != std::set<std::string>{"type", "parameters"} ||
        !stringIs(comp, "type", "body")) {
      return "component must be {type: body, parameters}";
    }
    for (const auto& p : comp["parameters"].GetArray()) {
      if (keysOf(p) != std::set<std::string>{"type", "text"} || !stringIs(p, "type", "text") ||
          !p["text"].IsString()) {
        return "parameter must be {type: text, text}";
      }
    }
  }
  return {};
}

std::string checkMeta(const std::string& body) {
  rapidjson::Document d;
  d.Parse(body.c_str(), body.size());
  if (d.HasParseError() || !d.IsObject()) return "body is not a JSON object";
  if (!stringIs(d, "messaging_product", "whatsapp")) return "messaging_product must be whatsapp";
  if (!stringIs(d, "recipient_type", "individual")) return "recipient_type must be individual";
  if (!nonEmptyString(d, "to")) return "to is required";
  if (stringIs(d, "type", "text")) {
    if (keysOf(d) !=
        std::set<std::string>{"messaging_product", "recipient_type", "to", "type", "text"}) {
      return "unexpected top-level keys for a text message";
    }
    const auto& text = d["text"];
    if (!nonEmptyString(text, "body")) return "text.body is required";
    auto keys = keysOf(text);
    keys.erase("preview_url");
    if (keys != std::set<std::string>{"body"}) return "unexpected keys in text";
    return {};
  }
  if (stringIs(d, "type", "template")) {
    if (keysOf(d) !=
        std::set<std::string>{"messaging_product", "recipient_type", "to", "type", "template"}) {
      return "unexpected top-level keys for a template message";
    }
    const auto& t = d["template"];
    if (!nonEmptyString(t, "name")) return "template.name is required";
    if (!t.HasMember("language") || !nonEmptyString(t["language"], "code")) {
      return "template.language.code is required";
    }
    return checkComponents(t);
  }
  return "type must be text or template";
}

std::string checkEightByEight(const std::string& body) {
  rapidjson::Document d;
  d.Parse(body.c_str(), body.size());
  if (d.HasParseError() || !d.IsObject()) return "body is not a JSON object";
  auto keys = keysOf(d);
  keys.erase("clientMessageId");
  if (keys != std::set<std::string>{"user", "type", "content"}) return "unexpected top-level keys";
  if (!nonEmptyString(d["user"], "msisdn") || d["user"]["msisdn"].GetString()[0] != '+') {
    return "user.msisdn must be E.164";
  }
  if (d.HasMember("clientMessageId") &&
      (!d["clientMessageId"].IsString() || d["clientMessageId"].GetStringLength() > 50)) {
    return "clientMessageId must be a string of at most 50 characters";
  }
  const auto& content = d["content"];
  if (stringIs(d, "type", "text")) {
    if (keysOf(content) != std::set<std::string>{"text"} || !nonEmptyString(content, "text")) {
      return "content must be {text}";
    }
    return {};
  }
  if (stringIs(d, "type", "template")) {
    if (keysOf(content) != std::set<std::string>{"template"}) return "content must be {template}";
    const auto& t = content["template"];
    if (!nonEmptyString(t, "name") || !nonEmptyString(t, "language")) {
      return "template needs name and language";
    }
    return checkComponents(t);
  }
  return "type must be text or template";
}

std::string checkTwilio(const std::string& body) {
  std::set<std::string> names;
  std::string to, from;
  for (const auto& [k, v] : core::parseForm(body)) {
    if (!names.insert(k).second) return "parameter " + k + " repeated";
    if (k == "To") to = v;
    if (k == "From") from = v;
  }
  if (to.empty() || from.empty()) return "To and From are required";
  if (names == std::set<std::string>{"To", "From", "Body"}) return {};
  if (names == std::set<std::string>{"To", "From", "ContentSid"} ||
      names == std::set<std::string>{"To", "From", "ContentSid", "ContentVariables"}) {
    return {};
  }
  return "parameters must be To, From and Body, or To, From, ContentSid[, ContentVariables]";
}

}  // namespace

struct FakeVendor::Impl {
  Api api;
  Expect expect;
  std::unique_ptr<Poco::Net::HTTPServer> server;
  int port = 0;
  mutable std::mutex mutex;
  std::deque<ScriptedResponse> scripted;
  std::vector<RecordedRequest> recorded;
  int counter = 0;

  ScriptedResponse answer(RecordedRequest& r) {
    const bool json = api != Api::kTwilio;
    const std::string expectedType =
        json ? "application/json" : "application/x-www-form-urlencoded";
    std::string problem;
    if (r.method != "POST") problem = "method must be POST";
    std::string path = r.uri.substr(0, r.uri.find('?'));
    if (problem.empty() && path != expect.path) problem = "unexpected path " + path;
    if (problem.empty() && r.contentType.rfind(expectedType, 0) != 0) {
      problem = "Content-Type must be " + expectedType;
    }
    if (problem.empty()) {
      switch (api) {
        case Api::kMeta:
          problem = checkMeta(r.body);
          break;
        case Api::kEightByEight:
          problem = checkEightByEight(r.body);
          break;
        case Api::kTwilio:
          problem = checkTwilio(r.body);
          break;
      }
    }
    const bool authOk = r.authorization == expect.authorization;
    if (!authOk) {
      r.shapeError = "bad Authorization";
      switch (api) {
        case Api::kMeta:
          return {
              401,
              R"({"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190,"fbtrace_id":"AbCdEf"}})",
              {}};
        case Api::kEightByEight:
          return {
              401,
              R"({"code":1200,"message":"Request was not authenticated properly","errorId":"db9dced4-3534-4d86-9d18-6b448af0d621","timestamp":"2018-08-02T09:42:38.8988997+00:00"})",
              {}};
        case Api::kTwilio:
          return {
              401,
              R"({"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401})",
              {}};
      }
    }
    if (!problem.empty()) {
      r.shapeError = problem;
      switch (api) {
        case Api::kMeta:
          return {
              400,
              R"({"error":{"message":"(#100) Invalid parameter","type":"OAuthException","code":100,"fbtrace_id":"AbCdEf"}})",
              {}};
        case Api::kEightByEight:
          return {
              400,
              R"({"code":1002,"message":"Invalid request","errorId":"b4478860-b76c-e811-814e-022a35cc1c71","timestamp":"2018-08-04T09:25:40.9235752+00:00"})",
              {}};
        case Api::kTwilio:
          return {
              400,
              R"({"code":21604,"message":"A 'To' phone number is required.","more_info":"https://www.twilio.com/docs/errors/21604","status":400})",
              {}};
      }
    }
    if (!scripted.empty()) {
      ScriptedResponse s = scripted.front();
      scripted.pop_front();
      return s;
    }
    ++counter;
    switch (api) {
      case Api::kMeta:
        return {
            200,
            R"({"messaging_product":"whatsapp","contacts":[{"input":"+16505551234","wa_id":"16505551234"}],"messages":[{"id":"wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA)" +
                std::to_string(counter) + R"("}]})",
            {}};
      case Api::kEightByEight:
        return {
            200,
            R"({"umid":"82188ee0-109f-e811-8150-02089700000)" + std::to_string(counter) +
                R"(","user":{"msisdn":"+6512341234"},"clientMessageId":"1234_id","status":{"state":"queued","timestamp":"2021-01-04T08:19:45.99Z"}})",
            {}};
      case Api::kTwilio:
        return {
            201,
            R"({"account_sid":"ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX","api_version":"2010-04-01","date_created":"Thu, 24 Aug 2023 05:01:45 +0000","direction":"outbound-api","error_code":null,"num_segments":"0","sid":"SM1234567890abcdef1234567890abcd0)" +
                std::to_string(counter) + R"(","status":"queued"})",
            {}};
    }
    return {500, "{}", {}};
  }
};

namespace {

class Handler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(FakeVendor::Impl* impl) : impl_(impl) {}
  void handleRequest(Poco::Net::HTTPServerRequest& req,
                     Poco::Net::HTTPServerResponse& resp) override {
    RecordedRequest r;
    r.method = req.getMethod();
    r.uri = req.getURI();
    r.contentType = req.getContentType();
    r.authorization = req.get("Authorization", "");
    std::ostringstream body;
    Poco::StreamCopier::copyStream(req.stream(), body);
    r.body = body.str();
    ScriptedResponse answer;
    {
      std::lock_guard<std::mutex> lock(impl_->mutex);
      answer = impl_->answer(r);
      impl_->recorded.push_back(r);
    }
    resp.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(answer.status));
    resp.setContentType("application/json");
    for (const auto& [k, v] : answer.headers) resp.set(k, v);
    resp.setContentLength(static_cast<std::streamsize>(answer.body.size()));
    resp.send() << answer.body;
  }

 private:
  FakeVendor::Impl* impl_;
};

class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(FakeVendor::Impl* impl) : impl_(impl) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new Handler(impl_);
  }

 private:
  FakeVendor::Impl* impl_;
};

}  // namespace

FakeVendor::FakeVendor(Api api, Expect expect) : impl_(std::make_unique<Impl>()) {
  impl_->api = api;
  impl_->expect = std::move(expect);
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
  impl_->port = socket.address().port();
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(2);
  params->setKeepAlive(false);
  impl_->server = std::make_unique<Poco::Net::HTTPServer>(new Factory(impl_.get()), socket, params);
  impl_->server->start();
}

FakeVendor::~FakeVendor() { impl_->server->stopAll(true); }

std::string FakeVendor::baseUrl() const {
  return "http://127.0.0.1:" + std::to_string(impl_->port);
}

void FakeVendor::push(ScriptedResponse response) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->scripted.push_back(std::move(response));
}

std::vector<RecordedRequest> FakeVendor::requests() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->recorded;
}

}  // namespace switchboard::testing

// Send-API request building and answer reading; see provider_api.h.
#include "channels/reply/provider_api.h"

#include <Poco/Base64Encoder.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <sstream>

#include "channels/fhir/json_read.h"

namespace switchboard::channels::reply {

std::optional<Provider> parseProvider(std::string_view name) {
  if (name == "meta") return Provider::kMeta;
  if (name == "8x8") return Provider::kEightByEight;
  if (name == "twilio") return Provider::kTwilio;
  return std::nullopt;
}

const char* providerName(Provider provider) {
  switch (provider) {
    case Provider::kMeta:
      return "meta";
    case Provider::kEightByEight:
      return "8x8";
    case Provider::kTwilio:
      return "twilio";
  }
  return "?";
}

std::string defaultBaseUrl(Provider provider) {
  switch (provider) {
    case Provider::kMeta:
      return "https://graph.facebook.com";
    case Provider::kEightByEight:
      return "https://chatapps.8x8.com";
    case Provider::kTwilio:
      return "https://api.twilio.com";
  }
  return {};
}

std::size_t maxTextChars(Provider provider) {
  switch (provider) {
    case Provider::kMeta:
      return 4096;
    case Provider::kEightByEight:
      return 35000;
    case Provider::kTwilio:
      return 1600;
  }
  return 1600;
}

std::string maskDigits(std::string_view text) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t j = i;
    while (j < text.size() && text[j] >= '0' && text[j] <= '9') ++j;
    if (j - i >= 5) {
      out += "***";
    } else {
      out.append(text.substr(i, j - i));
    }
    if (j < text.size()) out += text[j];
    i = j + 1;
  }
  return out;
}

std::string truncateUtf8(std::string_view text, std::size_t maxChars) {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c & 0xC0) != 0x80) {  // a lead byte starts a character
      if (chars == maxChars) return std::string(text.substr(0, i));
      ++chars;
    }
  }
  return std::string(text);
}

std::string formEncode(std::string_view text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += ch;
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

namespace {

// One path segment: unreserved characters kept, everything else percent-encoded.
std::string pathSegment(std::string_view text) {
  std::string out = formEncode(text);
  std::string fixed;
  for (char c : out) fixed += c == '+' ? std::string("%20") : std::string(1, c);
  return fixed;
}

std::string base64(std::string_view text) {
  std::ostringstream out;
  Poco::Base64Encoder encoder(out);
  encoder.rdbuf()->setLineLength(0);
  encoder << text;
  encoder.close();
  return out.str();
}

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void key(Writer& w, const char* k) { w.Key(k); }
void str(Writer& w, const std::string& s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

// Meta and 8x8 share the components shape: [{"type":"body","parameters":[{"type":"text",...}]}].
void bodyComponents(Writer& w, const std::vector<std::string>& parameters) {
  key(w, "components");
  w.StartArray();
  w.StartObject();
  key(w, "type");
  w.String("body");
  key(w, "parameters");
  w.StartArray();
  for (const auto& p : parameters) {
    w.StartObject();
    key(w, "type");
    w.String("text");
    key(w, "text");
    str(w, p);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  w.EndArray();
}

Result<HttpCall> metaCall(const ProviderSettings& s, const OutboundMessage& m) {
  if (s.accessToken.empty()) return fail(ErrorCode::kRequired, "meta: no access_token configured");
  if (m.from.empty()) {
    return fail(ErrorCode::kRequired,
                "meta: no phone_number_id (metadata reply_from or config phone_number_id)");
  }
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  key(w, "messaging_product");
  w.String("whatsapp");
  key(w, "recipient_type");
  w.String("individual");
  key(w, "to");
  str(w, m.to);
  if (!m.isTemplate) {
    key(w, "type");
    w.String("text");
    key(w, "text");
    w.StartObject();
    key(w, "body");
    str(w, m.text);
    w.EndObject();
  } else {
    if (m.templateName.empty() || m.templateLanguage.empty()) {
      return fail(ErrorCode::kRequired, "meta: the window template needs name and language");
    }
    key(w, "type");
    w.String("template");
    key(w, "template");
    w.StartObject();
    key(w, "name");
    str(w, m.templateName);
    key(w, "language");
    w.StartObject();
    key(w, "code");
    str(w, m.templateLanguage);
    w.EndObject();
    if (!m.parameters.empty()) bodyComponents(w, m.parameters);
    w.EndObject();
  }
  w.EndObject();
  HttpCall call;
  call.url = s.baseUrl + "/" + pathSegment(s.apiVersion) + "/" + pathSegment(m.from) + "/messages";
  call.contentType = "application/json";
  call.headers.push_back({"Authorization", "Bearer " + s.accessToken});
  call.body.assign(buf.GetString(), buf.GetSize());
  return call;
}

Result<HttpCall> eightByEightCall(const ProviderSettings& s, const OutboundMessage& m) {
  if (s.apiKey.empty()) return fail(ErrorCode::kRequired, "8x8: no api_key configured");
  if (m.from.empty()) {
    return fail(ErrorCode::kRequired,
                "8x8: no subaccount id (metadata reply_from or config subaccount_id)");
  }
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  key(w, "user");
  w.StartObject();
  key(w, "msisdn");
  str(w, m.to);
  w.EndObject();
  if (!m.clientReference.empty()) {
    key(w, "clientMessageId");
    str(w, m.clientReference.substr(0, 50));
  }
  key(w, "type");
  w.String(m.isTemplate ? "template" : "text");
  key(w, "content");
  w.StartObject();
  if (!m.isTemplate) {
    key(w, "text");
    str(w, m.text);
  } else {
    if (m.templateName.empty() || m.templateLanguage.empty()) {
      return fail(ErrorCode::kRequired, "8x8: the window template needs name and language");
    }
    key(w, "template");
    w.StartObject();
    key(w, "name");
    str(w, m.templateName);
    key(w, "language");
    str(w, m.templateLanguage);
    if (!m.parameters.empty()) bodyComponents(w, m.parameters);
    w.EndObject();
  }
  w.EndObject();
  w.EndObject();
  HttpCall call;
  call.url = s.baseUrl + "/api/v1/subaccounts/" + pathSegment(m.from) + "/messages";
  call.contentType = "application/json";
  call.headers.push_back({"Authorization", "Bearer " + s.apiKey});
  call.body.assign(buf.GetString(), buf.GetSize());
  return call;
}

Result<HttpCall> twilioCall(const ProviderSettings& s, const OutboundMessage& m) {
  if (s.accountSid.empty() || s.authToken.empty()) {
    return fail(ErrorCode::kRequired, "twilio: account_sid and auth_token are required");
  }
  if (m.from.empty()) {
    return fail(ErrorCode::kRequired, "twilio: no sender (metadata reply_from or config from)");
  }
  std::string body = "To=" + formEncode(m.to) + "&From=" + formEncode(m.from);
  if (!m.isTemplate) {
    body += "&Body=" + formEncode(m.text);
  } else {
    // Since 2025-04-01 templates go only through ContentSid/ContentVariables (error 63016).
    if (m.contentSid.empty()) {
      return fail(ErrorCode::kRequired, "twilio: the window template needs content_sid");
    }
    body += "&ContentSid=" + formEncode(m.contentSid);
    if (!m.parameters.empty()) {
      rapidjson::StringBuffer buf;
      Writer w(buf);
      w.StartObject();
      for (std::size_t i = 0; i < m.parameters.size(); ++i) {
        const std::string k = std::to_string(i + 1);
        str(w, k);
        str(w, m.parameters[i]);
      }
      w.EndObject();
      body += "&ContentVariables=" + formEncode(std::string_view(buf.GetString(), buf.GetSize()));
    }
  }
  HttpCall call;
  call.url = s.baseUrl + "/2010-04-01/Accounts/" + pathSegment(s.accountSid) + "/Messages.json";
  call.contentType = "application/x-www-form-urlencoded";
  call.headers.push_back({"Authorization", "Basic " + base64(s.accountSid + ":" + s.authToken)});
  call.body = std::move(body);
  return call;
}

std::string scalarText(const rapidjson::Value& v) {
  if (v.IsString()) return std::string(v.GetString(), v.GetStringLength());
  if (v.IsInt64()) return std::to_string(v.GetInt64());
  if (v.IsUint64()) return std::to_string(v.GetUint64());
  return {};
}

}  // namespace

Result<HttpCall> buildCall(const ProviderSettings& settings, const OutboundMessage& message) {
  if (message.to.empty()) return fail(ErrorCode::kRequired, "no recipient (metadata reply_to)");
  switch (settings.provider) {
    case Provider::kMeta:
      return metaCall(settings, message);
    case Provider::kEightByEight:
      return eightByEightCall(settings, message);
    case Provider::kTwilio:
      return twilioCall(settings, message);
  }
  return fail(ErrorCode::kNotSupported, "unknown provider");
}

std::string outboundIdFrom(Provider provider, std::string_view body) {
  const channels::fhir::JsonRead read(body);
  if (!read.root() || !read.root()->IsObject()) return {};
  const rapidjson::Value& doc = *read.root();
  switch (provider) {
    case Provider::kMeta: {
      auto it = doc.FindMember("messages");
      if (it == doc.MemberEnd() || !it->value.IsArray() || it->value.Empty()) return {};
      const auto& first = it->value[0];
      if (!first.IsObject()) return {};
      auto id = first.FindMember("id");
      return id == first.MemberEnd() ? std::string() : scalarText(id->value);
    }
    case Provider::kEightByEight: {
      auto id = doc.FindMember("umid");
      return id == doc.MemberEnd() ? std::string() : scalarText(id->value);
    }
    case Provider::kTwilio: {
      auto id = doc.FindMember("sid");
      return id == doc.MemberEnd() ? std::string() : scalarText(id->value);
    }
  }
  return {};
}

ProviderError providerErrorFrom(Provider provider, std::string_view body) {
  ProviderError out;
  const channels::fhir::JsonRead read(body);
  if (!read.root() || !read.root()->IsObject()) return out;
  const rapidjson::Value& doc = *read.root();
  const rapidjson::Value* holder = &doc;
  if (provider == Provider::kMeta) {
    auto e = doc.FindMember("error");
    if (e == doc.MemberEnd() || !e->value.IsObject()) return out;
    holder = &e->value;
  }
  if (auto c = holder->FindMember("code"); c != holder->MemberEnd())
    out.code = scalarText(c->value);
  if (auto m = holder->FindMember("message"); m != holder->MemberEnd()) {
    out.message = maskDigits(truncateUtf8(scalarText(m->value), 300));
  }
  return out;
}

bool isThrottled(Provider provider, const ProviderError& error) {
  return provider == Provider::kMeta && (error.code == "130429" || error.code == "131056");
}

}  // namespace switchboard::channels::reply

// Meta webhook splitting: parse once, copy each item with its change's metadata and matching
// contact into a reduced webhook, and derive the contract's metadata.
#include "channels/whatsapp/meta_webhook.h"

#include <string>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "channels/whatsapp/phone.h"

namespace switchboard::channels::whatsapp {

namespace {

using rapidjson::Value;
constexpr const char* kContentType = "application/json";
constexpr unsigned kParseFlags = rapidjson::kParseFullPrecisionFlag;
// Meta ids are about 60 bytes; anything far longer is not a wamid and would bloat the dedup index.
constexpr std::size_t kMaxIdBytes = 256;

// The string member `name` of `object`, or empty when absent or not a string.
std::string stringMember(const Value& object, const char* name) {
  if (!object.IsObject()) return {};
  auto it = object.FindMember(name);
  if (it == object.MemberEnd() || !it->value.IsString()) return {};
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

const Value* member(const Value& object, const char* name) {
  if (!object.IsObject()) return nullptr;
  auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

const Value* arrayMember(const Value& object, const char* name) {
  const Value* v = member(object, name);
  return v != nullptr && v->IsArray() ? v : nullptr;
}

std::string serialize(const Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

// Integer or string `code` of a Meta error object, as text.
std::string errorCode(const Value& error) {
  const Value* code = member(error, "code");
  if (code == nullptr) return {};
  if (code->IsString()) return std::string(code->GetString(), code->GetStringLength());
  if (code->IsInt64()) return std::to_string(code->GetInt64());
  if (code->IsUint64()) return std::to_string(code->GetUint64());
  return {};
}

// "131047 Re-engagement message" from the first element of an errors[] array.
std::string shortError(const Value* errors) {
  if (errors == nullptr || !errors->IsArray() || errors->Empty()) return {};
  const Value& first = (*errors)[0];
  std::string code = errorCode(first);
  std::string title = stringMember(first, "title");
  if (title.empty()) title = stringMember(first, "message");
  if (code.empty()) return title;
  return title.empty() ? code : code + " " + title;
}

// One change's shared context: what every item split from it carries along.
struct ChangeContext {
  const Value* entryId = nullptr;
  const Value* value = nullptr;  // changes[].value
  std::string phoneNumberId;
};

// {"object":...,"entry":[{"id":..,"changes":[{"field":"messages","value":{...,<list>:[item]}}]}]}
std::string reducedWebhook(const ChangeContext& ctx, const Value* contact, const char* list,
                           const Value& item) {
  rapidjson::Document doc(rapidjson::kObjectType);
  auto& a = doc.GetAllocator();
  Value value(rapidjson::kObjectType);
  const Value* product = member(*ctx.value, "messaging_product");
  if (product != nullptr) {
    value.AddMember("messaging_product", Value(*product, a), a);
  } else {
    value.AddMember("messaging_product", "whatsapp", a);
  }
  if (const Value* metadata = member(*ctx.value, "metadata")) {
    value.AddMember("metadata", Value(*metadata, a), a);
  }
  if (contact != nullptr) {
    Value contacts(rapidjson::kArrayType);
    contacts.PushBack(Value(*contact, a), a);
    value.AddMember("contacts", contacts, a);
  }
  Value items(rapidjson::kArrayType);
  items.PushBack(Value(item, a), a);
  value.AddMember(Value(list, a), items, a);

  Value change(rapidjson::kObjectType);
  change.AddMember("field", "messages", a);
  change.AddMember("value", value, a);
  Value changes(rapidjson::kArrayType);
  changes.PushBack(change, a);
  Value entry(rapidjson::kObjectType);
  if (ctx.entryId != nullptr) entry.AddMember("id", Value(*ctx.entryId, a), a);
  entry.AddMember("changes", changes, a);
  Value entries(rapidjson::kArrayType);
  entries.PushBack(entry, a);
  doc.AddMember("object", "whatsapp_business_account", a);
  doc.AddMember("entry", entries, a);
  return serialize(doc);
}

// The contact describing the sender: wa_id equal to `from`, or user_id equal to `fromUserId`.
const Value* matchingContact(const Value& value, const std::string& from,
                             const std::string& fromUserId) {
  const Value* contacts = arrayMember(value, "contacts");
  if (contacts == nullptr) return nullptr;
  for (const auto& c : contacts->GetArray()) {
    std::string waId = stringMember(c, "wa_id");
    if (!from.empty() && waId == from) return &c;
    std::string userId = stringMember(c, "user_id");
    if (!fromUserId.empty() && userId == fromUserId) return &c;
  }
  return nullptr;
}

const char* messageKind(const Value& item) {
  std::string type = stringMember(item, "type");
  if (type == "text") return "text";
  if (type == "button") return "button";
  if (type == "image" || type == "audio" || type == "video" || type == "document" ||
      type == "sticker") {
    return "media";
  }
  if (type == "interactive") {
    const Value* interactive = member(item, "interactive");
    std::string sub = interactive != nullptr ? stringMember(*interactive, "type") : std::string();
    if (sub == "nfm_reply") return "flow";
    if (sub == "button_reply" || sub == "list_reply") return "button";
  }
  return "other";
}

// flow_token, or a warning when response_json is not the JSON-encoded string Meta documents.
void addFlowFacts(const Value& item, core::Metadata& metadata) {
  const Value* interactive = member(item, "interactive");
  const Value* reply = interactive != nullptr ? member(*interactive, "nfm_reply") : nullptr;
  const Value* json = reply != nullptr ? member(*reply, "response_json") : nullptr;
  if (json == nullptr || !json->IsString()) {
    core::setMetadata(metadata, "warning",
                      "interactive.nfm_reply.response_json is missing or not a string");
    return;
  }
  rapidjson::Document response;
  response.Parse<kParseFlags>(json->GetString(), json->GetStringLength());
  if (response.HasParseError()) {
    core::setMetadata(
        metadata, "warning",
        std::string("interactive.nfm_reply.response_json is not valid JSON at offset ") +
            std::to_string(response.GetErrorOffset()) + ": " +
            rapidjson::GetParseError_En(response.GetParseError()));
    return;
  }
  if (!response.IsObject()) {
    core::setMetadata(metadata, "warning",
                      "interactive.nfm_reply.response_json is not a JSON object");
    return;
  }
  std::string token = stringMember(response, "flow_token");
  if (!token.empty()) core::setMetadata(metadata, "flow_token", token);
}

Result<core::InboundMessage> messageItem(const ChangeContext& ctx, const Value& item,
                                         const std::string& where) {
  if (!item.IsObject()) {
    return fail(ErrorCode::kStructure, "message item is not an object", where);
  }
  std::string id = stringMember(item, "id");
  if (id.empty()) {
    return fail(ErrorCode::kRequired, "message item has no string id (wamid)", where + "/id");
  }
  if (id.size() > kMaxIdBytes) {
    return fail(ErrorCode::kValue, "message id longer than 256 bytes", where + "/id");
  }
  std::string from = stringMember(item, "from");
  std::string fromUserId = stringMember(item, "from_user_id");
  const Value* contact = matchingContact(*ctx.value, from, fromUserId);
  std::string raw = !from.empty() ? from : fromUserId;

  core::InboundMessage m;
  m.idempotencyKey = id;
  m.contentType = kContentType;
  m.body = reducedWebhook(ctx, contact, "messages", item);
  const char* kind = messageKind(item);
  core::setMetadata(m.metadata, "provider", "meta");
  core::setMetadata(m.metadata, "kind", kind);
  core::setMetadata(m.metadata, "sender", normalizeE164(raw));
  core::setMetadata(m.metadata, "sender_raw", raw);
  core::setMetadata(m.metadata, "reply_to", raw);
  core::setMetadata(m.metadata, "reply_from", ctx.phoneNumberId);
  core::setMetadata(m.metadata, "provider_message_id", id);
  std::string timestamp = stringMember(item, "timestamp");
  if (!timestamp.empty()) core::setMetadata(m.metadata, "provider_timestamp", timestamp);
  if (const Value* context = member(item, "context")) {
    std::string contextId = stringMember(*context, "id");
    if (!contextId.empty()) core::setMetadata(m.metadata, "context_id", contextId);
  }
  if (std::string_view(kind) == "flow") addFlowFacts(item, m.metadata);
  return m;
}

Result<core::InboundMessage> statusItem(const ChangeContext& ctx, const Value& item,
                                        const std::string& where) {
  if (!item.IsObject()) {
    return fail(ErrorCode::kStructure, "status item is not an object", where);
  }
  std::string id = stringMember(item, "id");
  if (id.empty()) {
    return fail(ErrorCode::kRequired, "status item has no string id (outbound wamid)",
                where + "/id");
  }
  if (id.size() > kMaxIdBytes) {
    return fail(ErrorCode::kValue, "status id longer than 256 bytes", where + "/id");
  }
  std::string status = stringMember(item, "status");
  if (status.empty() || status.size() > 64) {
    return fail(ErrorCode::kRequired, "status item has no string status of 1 to 64 bytes",
                where + "/status");
  }
  std::string recipient = stringMember(item, "recipient_id");
  if (recipient.empty()) recipient = stringMember(item, "recipient_user_id");

  core::InboundMessage m;
  m.idempotencyKey = "status:" + id + ":" + status;
  m.contentType = kContentType;
  m.body = reducedWebhook(ctx, nullptr, "statuses", item);
  core::setMetadata(m.metadata, "provider", "meta");
  core::setMetadata(m.metadata, "kind", "status");
  core::setMetadata(m.metadata, "sender", normalizeE164(recipient));
  core::setMetadata(m.metadata, "sender_raw", recipient);
  core::setMetadata(m.metadata, "reply_to", recipient);
  core::setMetadata(m.metadata, "reply_from", ctx.phoneNumberId);
  core::setMetadata(m.metadata, "provider_message_id", id);
  core::setMetadata(m.metadata, "outbound_id", id);
  core::setMetadata(m.metadata, "status", status);
  std::string error = shortError(member(item, "errors"));
  if (error.empty() && status == "failed") error = shortError(member(*ctx.value, "errors"));
  if (!error.empty()) core::setMetadata(m.metadata, "error", error);
  std::string timestamp = stringMember(item, "timestamp");
  if (!timestamp.empty()) core::setMetadata(m.metadata, "provider_timestamp", timestamp);
  return m;
}

}  // namespace

Result<std::vector<core::InboundMessage>> splitMetaWebhook(std::string_view body) {
  rapidjson::Document doc;
  doc.Parse<kParseFlags>(body.data(), body.size());
  if (doc.HasParseError()) {
    return fail(ErrorCode::kStructure, std::string("malformed JSON at offset ") +
                                           std::to_string(doc.GetErrorOffset()) + ": " +
                                           rapidjson::GetParseError_En(doc.GetParseError()));
  }
  if (!doc.IsObject()) {
    return fail(ErrorCode::kStructure, "webhook body is not a JSON object", "/");
  }
  std::string object = stringMember(doc, "object");
  if (object != "whatsapp_business_account") {
    return fail(ErrorCode::kStructure,
                "expected \"object\": \"whatsapp_business_account\" in a WhatsApp webhook",
                "/object");
  }
  const Value* entries = member(doc, "entry");
  if (entries == nullptr || !entries->IsArray()) {
    return fail(ErrorCode::kStructure, "expected an array \"entry\"", "/entry");
  }
  std::vector<core::InboundMessage> out;
  for (rapidjson::SizeType e = 0; e < entries->Size(); ++e) {
    const Value& entry = (*entries)[e];
    const std::string entryWhere = "/entry/" + std::to_string(e);
    if (!entry.IsObject()) return fail(ErrorCode::kStructure, "entry is not an object", entryWhere);
    const Value* changes = member(entry, "changes");
    if (changes == nullptr) continue;
    if (!changes->IsArray()) {
      return fail(ErrorCode::kStructure, "expected an array \"changes\"", entryWhere + "/changes");
    }
    for (rapidjson::SizeType c = 0; c < changes->Size(); ++c) {
      const Value& change = (*changes)[c];
      const std::string changeWhere = entryWhere + "/changes/" + std::to_string(c);
      if (!change.IsObject()) {
        return fail(ErrorCode::kStructure, "change is not an object", changeWhere);
      }
      if (stringMember(change, "field") != "messages") continue;
      const Value* value = member(change, "value");
      if (value == nullptr || !value->IsObject()) {
        return fail(ErrorCode::kStructure, "expected an object \"value\"", changeWhere + "/value");
      }
      ChangeContext ctx;
      ctx.entryId = member(entry, "id");
      ctx.value = value;
      if (const Value* metadata = member(*value, "metadata")) {
        ctx.phoneNumberId = stringMember(*metadata, "phone_number_id");
      }
      struct List {
        const char* name;
        Result<core::InboundMessage> (*make)(const ChangeContext&, const Value&,
                                             const std::string&);
      };
      for (const List& list : {List{"messages", &messageItem}, List{"statuses", &statusItem}}) {
        const Value* items = member(*value, list.name);
        if (items == nullptr) continue;
        const std::string listWhere = changeWhere + "/value/" + list.name;
        if (!items->IsArray()) {
          return fail(ErrorCode::kStructure, std::string("expected an array \"") + list.name + "\"",
                      listWhere);
        }
        for (rapidjson::SizeType i = 0; i < items->Size(); ++i) {
          auto m = list.make(ctx, (*items)[i], listWhere + "/" + std::to_string(i));
          if (!m) return std::unexpected(m.error());
          out.push_back(std::move(*m));
        }
      }
    }
  }
  return out;
}

}  // namespace switchboard::channels::whatsapp

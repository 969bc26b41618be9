// Flow input normalisation. Thread-safety: see flow_input.h.
#include "engine/mapping/flow_input.h"

#include <cctype>
#include <cstring>
#include <optional>

namespace switchboard::mapping {
namespace {

// The first member named `key`, as FindMember() finds it, without measuring the key each time.
const rapidjson::Value* member(const rapidjson::Value* obj, std::string_view key) {
  if (!obj || !obj->IsObject()) return nullptr;
  for (auto m = obj->MemberBegin(); m != obj->MemberEnd(); ++m) {
    if (m->name.GetStringLength() != key.size()) continue;
    const char* name = m->name.GetString();
    if (!key.empty() && name[0] != key[0]) continue;  // most names differ in their first byte
    if (std::memcmp(name, key.data(), key.size()) == 0) return &m->value;
  }
  return nullptr;
}

std::string_view view(const rapidjson::Value* v) {
  return v && v->IsString() ? std::string_view(v->GetString(), v->GetStringLength())
                            : std::string_view();
}

std::string text(const rapidjson::Value* v) { return std::string(view(v)); }

// std::tolower in the "C" locale (the engine never sets another): ASCII letters only.
char lowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lowerAscii(a[i]) != lowerAscii(b[i])) return false;
  }
  return true;
}

bool isNfmType(std::string_view type) {
  return equalsIgnoreCase(type, "nfm_reply") || equalsIgnoreCase(type, "nfmReply");
}

// Parses the string-encoded (or, for 8x8, possibly already decoded) Flow response at `value`.
Result<FlowParts> flowFrom(const rapidjson::Value* value, const std::string& pointer,
                           const JsonParser& parse) {
  if (!value) return fail(ErrorCode::kRequired, "Flow response missing at " + pointer, pointer);
  FlowParts in;
  in.location = pointer;
  if (value->IsObject()) {
    in.response = value;
    return in;
  }
  if (!value->IsString())
    return fail(ErrorCode::kStructure, pointer + " is neither a JSON string nor an object",
                pointer);
  auto parsed = parse(std::string_view(value->GetString(), value->GetStringLength()));
  if (!parsed) {
    return fail(ErrorCode::kStructure,
                pointer + " is not valid JSON (" + parsed.error().message + ")", pointer);
  }
  if (!*parsed || !(*parsed)->IsObject())
    return fail(ErrorCode::kStructure, pointer + " is not a JSON object", pointer);
  in.response = *parsed;
  return in;
}

Result<FlowParts> fromMetaMessage(const rapidjson::Value& message, const std::string& pointer,
                                  const JsonParser& parse) {
  const rapidjson::Value* interactive = member(&message, "interactive");
  const rapidjson::Value* nfm = member(interactive, "nfm_reply");
  if (!nfm) {
    return fail(ErrorCode::kInvalid,
                "the message at " + (pointer.empty() ? "/" : pointer) +
                    " is not a Flow reply (interactive.nfm_reply)",
                pointer + "/interactive/nfm_reply");
  }
  auto in = flowFrom(member(nfm, "response_json"),
                     pointer + "/interactive/nfm_reply/response_json", parse);
  if (!in) return in;
  in->format = "meta-message";
  in->sender = normalizeE164(text(member(&message, "from")));
  in->messageId = text(member(&message, "id"));
  return in;
}

}  // namespace

std::string normalizeE164(std::string_view raw) {
  if (raw.starts_with("whatsapp:")) raw.remove_prefix(9);
  std::string digits;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (std::isdigit(static_cast<unsigned char>(c))) {
      digits.push_back(c);
    } else if (c == '+' && digits.empty()) {
      continue;
    } else if (c == ' ' || c == '-' || c == '(' || c == ')' || c == '.') {
      continue;
    } else {
      return {};
    }
  }
  if (digits.size() < 8 || digits.size() > 15 || digits[0] == '0') return {};
  return "+" + digits;
}

Result<FlowInput> parseJsonInput(std::string_view body) {
  auto parsed = fhirpath::parseJsonResource(body);
  if (!parsed) return std::unexpected(parsed.error());
  FlowInput in;
  in.root = *parsed;
  in.format = "json";
  return in;
}

Result<FlowInput> normalizeFlowInput(std::string_view body) {
  auto parsed = fhirpath::parseJsonResource(body);
  if (!parsed) return fail(ErrorCode::kStructure, "input: " + parsed.error().message);
  const fhirpath::Node outer = *parsed;
  const rapidjson::Value* root = outer.json();
  if (!root || !root->IsObject()) return fail(ErrorCode::kStructure, "input is not a JSON object");
  std::optional<fhirpath::Node> inner;
  auto parts = locateFlowResponse(*root, [&](std::string_view text) -> Result<const rapidjson::Value*> {
    auto node = fhirpath::parseJsonResource(text);
    if (!node) return std::unexpected(node.error());
    inner = *node;
    return inner->json();
  });
  if (!parts) return std::unexpected(parts.error());
  FlowInput in;
  in.root = inner ? *inner : fhirpath::Node::resource(outer.document(), parts->response);
  in.format = std::move(parts->format);
  in.sender = std::move(parts->sender);
  in.messageId = std::move(parts->messageId);
  in.location = std::move(parts->location);
  return in;
}

Result<FlowParts> locateFlowResponse(const rapidjson::Value& rootValue, const JsonParser& parse) {
  const rapidjson::Value* root = &rootValue;
  // Meta webhook: entry[].changes[].value.messages[]: the first Flow reply.
  if (view(member(root, "object")) == "whatsapp_business_account") {
    const rapidjson::Value* entries = member(root, "entry");
    for (rapidjson::SizeType e = 0; entries && entries->IsArray() && e < entries->Size(); ++e) {
      const rapidjson::Value* changes = member(&(*entries)[e], "changes");
      for (rapidjson::SizeType c = 0; changes && changes->IsArray() && c < changes->Size(); ++c) {
        const rapidjson::Value* value = member(&(*changes)[c], "value");
        const rapidjson::Value* messages = member(value, "messages");
        for (rapidjson::SizeType m = 0; messages && messages->IsArray() && m < messages->Size();
             ++m) {
          const rapidjson::Value& message = (*messages)[m];
          if (!member(member(&message, "interactive"), "nfm_reply")) continue;
          const std::string pointer = "/entry/" + std::to_string(e) + "/changes/" +
                                      std::to_string(c) + "/value/messages/" + std::to_string(m);
          auto in = fromMetaMessage(message, pointer, parse);
          if (!in) return in;
          in->format = "meta-webhook";
          // Prefer the contact's wa_id (the phone) over `from`, which may be a BSUID.
          const std::string from = text(member(&message, "from"));
          const rapidjson::Value* contacts = member(value, "contacts");
          for (rapidjson::SizeType k = 0; contacts && contacts->IsArray() && k < contacts->Size();
               ++k) {
            const std::string waId = text(member(&(*contacts)[k], "wa_id"));
            if (!waId.empty() && (waId == from || contacts->Size() == 1)) {
              if (auto e164 = normalizeE164(waId); !e164.empty()) in->sender = e164;
              break;
            }
          }
          return in;
        }
      }
    }
    return fail(ErrorCode::kInvalid,
                "the Meta webhook holds no Flow reply (messages[].interactive.nfm_reply)",
                "/entry");
  }

  // One Meta message item.
  if (member(root, "interactive") && (member(root, "from") || member(root, "type"))) {
    return fromMetaMessage(*root, "", parse);
  }

  // 8x8 Chat Apps inbound_message_received (v2 or v3).
  if (member(root, "eventType") || (member(root, "namespace") && member(root, "payload"))) {
    const std::string_view event = view(member(root, "eventType"));
    if (!event.empty() && event != "inbound_message_received") {
      return fail(ErrorCode::kInvalid,
                  "8x8 event \"" + std::string(event.substr(0, 64)) + "\" is not an inbound message",
                  "/eventType");
    }
    const rapidjson::Value* payload = member(root, "payload");
    if (!payload || !payload->IsObject())
      return fail(ErrorCode::kRequired, "8x8 body without payload", "/payload");
    const std::string_view type = view(member(payload, "type"));
    const rapidjson::Value* interactive = member(member(payload, "content"), "interactive");
    if (!equalsIgnoreCase(type, "interactive") || !interactive ||
        !isNfmType(view(member(interactive, "type")))) {
      return fail(ErrorCode::kInvalid,
                  "the 8x8 message is not a Flow reply (content.interactive.type nfmReply)",
                  "/payload/content/interactive/type");
    }
    const char* nfmKey = member(interactive, "nfmReply") ? "nfmReply" : "nfm_reply";
    const rapidjson::Value* nfm = member(interactive, nfmKey);
    const char* jsonKey = member(nfm, "responseJson") ? "responseJson" : "response_json";
    // The four pointers it can be, built once.
    static const std::string kPointers[2][2] = {
        {"/payload/content/interactive/nfmReply/responseJson",
         "/payload/content/interactive/nfmReply/response_json"},
        {"/payload/content/interactive/nfm_reply/responseJson",
         "/payload/content/interactive/nfm_reply/response_json"}};
    const std::string& pointer =
        kPointers[nfmKey[3] == '_' ? 1 : 0][jsonKey[8] == '_' ? 1 : 0];
    auto in = flowFrom(member(nfm, jsonKey), pointer, parse);
    if (!in) return in;
    in->format = "8x8";
    in->sender = normalizeE164(view(member(member(payload, "user"), "msisdn")));
    in->messageId = text(member(payload, "umid"));
    return in;
  }

  FlowParts in;
  in.response = root;
  in.format = "flow-response";
  return in;
}

}  // namespace switchboard::mapping

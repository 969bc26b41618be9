// Meta WhatsApp Cloud API source: signature vectors and rotation, verification handshake,
// splitting of messages and statuses into the shared contract, rejects, limits and config errors.
#define BOOST_TEST_MODULE channel_whatsapp
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <rapidjson/document.h>

#include "channels/whatsapp/meta_signature.h"
#include "channels/whatsapp/meta_webhook.h"
#include "channels/whatsapp/phone.h"
#include "channels/whatsapp/register.h"
#include "channels/whatsapp/whatsapp_source.h"

using namespace switchboard;
using namespace switchboard::channels::whatsapp;
using Kind = core::SourceVerdict::Kind;

namespace {

const char* kSecret = "test_app_secret";
const char* kNewSecret = "rotated_app_secret";

std::string readData(const std::string& name) {
  const char* root = std::getenv("SWITCHBOARD_SOURCE_DIR");
  BOOST_REQUIRE_MESSAGE(root != nullptr, "SWITCHBOARD_SOURCE_DIR is not set");
  std::ifstream in(std::string(root) + "/tests/data/whatsapp/" + name, std::ios::binary);
  BOOST_REQUIRE_MESSAGE(in.good(), "cannot read " << name);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trimNewline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// Creates a source from JSON config text through the registered factory's code path.
Result<std::unique_ptr<core::HttpSource>> makeSource(const std::string& configJson) {
  rapidjson::Document doc;
  doc.Parse(configJson.c_str());
  BOOST_REQUIRE(!doc.HasParseError());
  core::ConfigReader reader(doc, "whatsapp.json", "/source");
  return WhatsappSource::create(reader, core::ConnectorContext{"wa", "/tmp", "/tmp"});
}

std::unique_ptr<core::HttpSource> defaultSource(std::size_t maxBody = 1 << 20) {
  auto s = makeSource(R"({"path":"/webhooks/whatsapp","app_secrets":["test_app_secret"],)"
                      R"("verify_token":"meatyhamhock","max_body_bytes":)" +
                      std::to_string(maxBody) + "}");
  BOOST_REQUIRE_MESSAGE(s.has_value(), (s ? "" : s.error().message));
  return std::move(*s);
}

core::HttpRequest post(const std::string& body, const std::string* signature) {
  core::HttpRequest r;
  r.method = "POST";
  r.scheme = "https";
  r.host = "clinic.example";
  r.path = "/webhooks/whatsapp";
  r.headers.push_back({"Content-Type", "application/json"});
  if (signature != nullptr) r.headers.push_back({"X-Hub-Signature-256", *signature});
  r.body = body;
  return r;
}

core::HttpRequest signedPost(const std::string& body, const std::string& secret = kSecret) {
  std::string sig = hubSignature256(secret, body);
  return post(body, &sig);
}

core::HttpRequest get(const std::string& query) {
  core::HttpRequest r;
  r.method = "GET";
  r.path = "/webhooks/whatsapp";
  r.query = query;
  return r;
}

std::string meta(const core::InboundMessage& m, const std::string& key) {
  const std::string* v = core::findMetadata(m.metadata, key);
  return v != nullptr ? *v : std::string("<absent>");
}

std::vector<core::InboundMessage> acceptAll(const std::string& body) {
  auto source = defaultSource();
  auto v = source->handle(signedPost(body));
  BOOST_REQUIRE_MESSAGE(v.kind == Kind::kAccept, "expected accept, got kind "
                                                     << static_cast<int>(v.kind) << " "
                                                     << v.error.message);
  BOOST_TEST(v.reply.status == 200);
  return std::move(v.messages);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(signature)

BOOST_AUTO_TEST_CASE(protocols_test_vector_is_exact) {
  BOOST_TEST(
      hubSignature256("test_app_secret", R"({"object":"whatsapp_business_account","entry":[]})") ==
      "sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756");
}

BOOST_AUTO_TEST_CASE(valid_and_rotated_secrets_are_accepted) {
  const std::string body = R"({"object":"whatsapp_business_account","entry":[]})";
  std::vector<std::string> secrets{kSecret, kNewSecret};
  std::string first = hubSignature256(kSecret, body);
  std::string second = hubSignature256(kNewSecret, body);
  BOOST_TEST(first != second);
  BOOST_TEST((verifyHubSignature256(&first, body, secrets) == SignatureCheck::kValid));
  BOOST_TEST((verifyHubSignature256(&second, body, secrets) == SignatureCheck::kValid));
  std::vector<std::string> onlyOld{kSecret};
  BOOST_TEST((verifyHubSignature256(&second, body, onlyOld) == SignatureCheck::kMismatch));
}

BOOST_AUTO_TEST_CASE(missing_malformed_and_wrong_headers_are_told_apart) {
  const std::string body = R"({"object":"whatsapp_business_account","entry":[]})";
  std::vector<std::string> secrets{kSecret};
  std::string good = hubSignature256(kSecret, body);
  BOOST_TEST((verifyHubSignature256(nullptr, body, secrets) == SignatureCheck::kMissing));
  for (std::string bad :
       {std::string(""), good.substr(7), "sha1=" + good.substr(7), good.substr(0, good.size() - 1),
        good + "0", good.substr(0, good.size() - 1) + "g", std::string("sha256=")}) {
    BOOST_TEST_CONTEXT("header '" << bad << "'") {
      BOOST_TEST((verifyHubSignature256(&bad, body, secrets) == SignatureCheck::kMalformed));
    }
  }
  std::string wrong = hubSignature256("another_secret", body);
  BOOST_TEST((verifyHubSignature256(&wrong, body, secrets) == SignatureCheck::kMismatch));
  std::string upper = "sha256=DEC6A680679A968E7E0319355B23599CBFC54502C0784668E9618BAA0C633756";
  BOOST_TEST((verifyHubSignature256(&upper, body, secrets) == SignatureCheck::kValid));
}

BOOST_AUTO_TEST_CASE(every_single_byte_change_of_the_body_is_detected) {
  const std::string body = readData("text_message.json");
  std::vector<std::string> secrets{kSecret};
  std::string sig = hubSignature256(kSecret, body);
  for (std::size_t i = 0; i < body.size(); i += 7) {
    std::string altered = body;
    altered[i] = static_cast<char>(altered[i] ^ 0x01);
    BOOST_TEST_CONTEXT("byte " << i) {
      BOOST_TEST((verifyHubSignature256(&sig, altered, secrets) == SignatureCheck::kMismatch));
    }
  }
  BOOST_TEST((verifyHubSignature256(&sig, body + " ", secrets) == SignatureCheck::kMismatch));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(source_authentication)

BOOST_AUTO_TEST_CASE(post_without_or_with_wrong_signature_is_refused_with_401) {
  auto source = defaultSource();
  const std::string body = readData("text_message.json");
  auto missing = source->handle(post(body, nullptr));
  BOOST_TEST((missing.kind == Kind::kRefuse));
  BOOST_TEST(missing.reply.status == 401);
  BOOST_TEST(missing.messages.empty());
  BOOST_TEST(missing.auditReason.find("missing") != std::string::npos);

  auto wrong = source->handle(signedPost(body, "not_the_app_secret"));
  BOOST_TEST((wrong.kind == Kind::kRefuse));
  BOOST_TEST(wrong.reply.status == 401);
  BOOST_TEST(wrong.messages.empty());
  BOOST_TEST(wrong.auditReason.find(kSecret) == std::string::npos);

  std::string garbage = "sha256=not-hex";
  auto malformed = source->handle(post(body, &garbage));
  BOOST_TEST((malformed.kind == Kind::kRefuse));
  BOOST_TEST(malformed.reply.status == 401);
}

BOOST_AUTO_TEST_CASE(body_altered_after_signing_is_refused) {
  auto source = defaultSource();
  const std::string body = readData("text_message.json");
  std::string sig = hubSignature256(kSecret, body);
  std::string altered = body;
  altered.replace(altered.find("this is a text message"), 4, "THIS");
  auto v = source->handle(post(altered, &sig));
  BOOST_TEST((v.kind == Kind::kRefuse));
  BOOST_TEST(v.messages.empty());
}

BOOST_AUTO_TEST_CASE(second_configured_secret_is_accepted_during_rotation) {
  auto s = makeSource(R"({"path":"/wa","app_secrets":["test_app_secret","rotated_app_secret"],)"
                      R"("verify_token":"t"})");
  BOOST_REQUIRE(s.has_value());
  const std::string body = readData("text_message.json");
  auto v = (*s)->handle(signedPost(body, kNewSecret));
  BOOST_TEST((v.kind == Kind::kAccept));
  BOOST_TEST(v.messages.size() == 1u);
  auto old = (*s)->handle(signedPost(body, kSecret));
  BOOST_TEST((old.kind == Kind::kAccept));
}

BOOST_AUTO_TEST_CASE(single_app_secret_key_and_list_combine) {
  auto s = makeSource(R"({"path":"/wa","app_secrets":["test_app_secret"],)"
                      R"("app_secret":"rotated_app_secret","verify_token":"t"})");
  BOOST_REQUIRE(s.has_value());
  const std::string body = readData("text_message.json");
  BOOST_TEST(((*s)->handle(signedPost(body, kNewSecret)).kind == Kind::kAccept));
  BOOST_TEST(((*s)->handle(signedPost(body, kSecret)).kind == Kind::kAccept));
  BOOST_TEST(((*s)->handle(signedPost(body, "third")).kind == Kind::kRefuse));
}

BOOST_AUTO_TEST_CASE(other_methods_get_405) {
  auto source = defaultSource();
  core::HttpRequest r = signedPost(readData("text_message.json"));
  r.method = "PUT";
  auto v = source->handle(r);
  BOOST_TEST((v.kind == Kind::kRespond));
  BOOST_TEST(v.reply.status == 405);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(handshake)

BOOST_AUTO_TEST_CASE(matching_token_echoes_the_challenge) {
  auto source = defaultSource();
  auto v = source->handle(
      get("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock"));
  BOOST_TEST((v.kind == Kind::kRespond));
  BOOST_TEST(v.reply.status == 200);
  BOOST_TEST(v.reply.body == "1158201444");
  BOOST_TEST(v.reply.contentType.starts_with("text/plain"));
}

BOOST_AUTO_TEST_CASE(wrong_or_missing_token_is_refused_with_403) {
  auto source = defaultSource();
  for (const char* q :
       {"hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhocks",
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=",
        "hub.mode=subscribe&hub.challenge=1158201444"}) {
    BOOST_TEST_CONTEXT(q) {
      auto v = source->handle(get(q));
      BOOST_TEST((v.kind == Kind::kRefuse));
      BOOST_TEST(v.reply.status == 403);
      BOOST_TEST(v.reply.body.find("1158201444") == std::string::npos);
    }
  }
}

BOOST_AUTO_TEST_CASE(wrong_mode_is_refused_with_403) {
  auto source = defaultSource();
  for (const char* q :
       {"hub.mode=unsubscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock",
        "hub.challenge=1158201444&hub.verify_token=meatyhamhock",
        "hub_mode=subscribe&hub_challenge=1158201444&hub_verify_token=meatyhamhock"}) {
    BOOST_TEST_CONTEXT(q) {
      auto v = source->handle(get(q));
      BOOST_TEST((v.kind == Kind::kRefuse));
      BOOST_TEST(v.reply.status == 403);
    }
  }
}

BOOST_AUTO_TEST_CASE(percent_encoded_token_is_decoded) {
  auto s = makeSource(R"({"path":"/wa","app_secret":"x","verify_token":"a b&c"})");
  BOOST_REQUIRE(s.has_value());
  auto v = (*s)->handle(get("hub.mode=subscribe&hub.verify_token=a%20b%26c&hub.challenge=42"));
  BOOST_TEST(v.reply.status == 200);
  BOOST_TEST(v.reply.body == "42");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(messages)

BOOST_AUTO_TEST_CASE(text_message_follows_the_contract) {
  const std::string body = readData("text_message.json");
  auto messages = acceptAll(body);
  BOOST_REQUIRE(messages.size() == 1u);
  const auto& m = messages[0];
  BOOST_TEST(m.idempotencyKey == "ABGGFlA5Fpa");
  BOOST_TEST(m.contentType == "application/json");
  // A webhook holding one message reduces to itself.
  BOOST_TEST(m.body == trimNewline(body));
  BOOST_TEST(meta(m, "provider") == "meta");
  BOOST_TEST(meta(m, "kind") == "text");
  BOOST_TEST(meta(m, "sender") == "+16315551181");
  BOOST_TEST(meta(m, "sender_raw") == "16315551181");
  BOOST_TEST(meta(m, "reply_to") == "16315551181");
  BOOST_TEST(meta(m, "reply_from") == "123456123");
  BOOST_TEST(meta(m, "provider_message_id") == "ABGGFlA5Fpa");
  BOOST_TEST(meta(m, "flow_token") == "<absent>");
}

BOOST_AUTO_TEST_CASE(flow_submission_keeps_response_json_as_a_string) {
  const std::string body = readData("flow_nfm_reply.json");
  auto messages = acceptAll(body);
  BOOST_REQUIRE(messages.size() == 1u);
  const auto& m = messages[0];
  BOOST_TEST(m.idempotencyKey == "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzRUIwRkxPV1NFRUQwMDAxAA==");
  BOOST_TEST(meta(m, "kind") == "flow");
  BOOST_TEST(meta(m, "flow_token") == "<TOKEN>");
  BOOST_TEST(meta(m, "warning") == "<absent>");
  BOOST_TEST(meta(m, "sender") == "+15551234567");
  BOOST_TEST(meta(m, "reply_from") == "106540352242922");
  BOOST_TEST(meta(m, "context_id") == "gBGGEiRVVgBPAgm7FUgc73noXjo");

  rapidjson::Document original;
  original.Parse(body.c_str());
  BOOST_REQUIRE(!original.HasParseError());

  rapidjson::Document reduced;
  reduced.Parse(m.body.c_str());
  BOOST_REQUIRE(!reduced.HasParseError());
  const auto& rj = reduced["entry"][0]["changes"][0]["value"]["messages"][0]["interactive"]
                          ["nfm_reply"]["response_json"];
  BOOST_REQUIRE(rj.IsString());
  // The string is kept as received, byte for byte, not re-encoded.
  BOOST_TEST(std::string(rj.GetString(), rj.GetStringLength()) ==
             std::string(original["entry"][0]["changes"][0]["value"]["messages"][0]["interactive"]
                                 ["nfm_reply"]["response_json"]
                                     .GetString()));
  BOOST_TEST(m.body.find(R"(\"flow_token\":\"<TOKEN>\"}")") != std::string::npos);
  rapidjson::Document flow;
  flow.Parse(rj.GetString());
  BOOST_REQUIRE(!flow.HasParseError());
  BOOST_TEST(std::string(flow["patient_first_name"].GetString()) == "Emily");
  BOOST_TEST(std::string(flow["appointment_date"].GetString()) == "2026-02-12");
  BOOST_TEST(flow["contact_preferences"].Size() == 2u);
}

BOOST_AUTO_TEST_CASE(flow_with_unparsable_response_json_is_accepted_with_a_warning) {
  std::string body = readData("flow_nfm_reply.json");
  std::size_t at = body.find("\"response_json\":\"");
  BOOST_REQUIRE(at != std::string::npos);
  body.insert(at + 17, "not json ");
  auto messages = acceptAll(body);
  BOOST_REQUIRE(messages.size() == 1u);
  BOOST_TEST(meta(messages[0], "kind") == "flow");
  BOOST_TEST(meta(messages[0], "flow_token") == "<absent>");
  BOOST_TEST(meta(messages[0], "warning").find("not valid JSON") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(several_messages_become_several_messages_with_their_own_wamids) {
  auto messages = acceptAll(readData("multi_messages.json"));
  BOOST_REQUIRE(messages.size() == 6u);
  const char* keys[] = {"wamid.A1", "wamid.B1", "wamid.A2", "wamid.A3", "wamid.A4", "wamid.A5"};
  const char* kinds[] = {"text", "button", "media", "button", "button", "other"};
  for (std::size_t i = 0; i < 6; ++i) {
    BOOST_TEST_CONTEXT("item " << i) {
      BOOST_TEST(messages[i].idempotencyKey == keys[i]);
      BOOST_TEST(meta(messages[i], "provider_message_id") == keys[i]);
      BOOST_TEST(meta(messages[i], "kind") == kinds[i]);
      rapidjson::Document d;
      d.Parse(messages[i].body.c_str());
      BOOST_REQUIRE(!d.HasParseError());
      BOOST_TEST(std::string(d["object"].GetString()) == "whatsapp_business_account");
      BOOST_TEST(std::string(d["entry"][0]["id"].GetString()) == "102290129340398");
      const auto& value = d["entry"][0]["changes"][0]["value"];
      BOOST_TEST(d["entry"].Size() == 1u);
      BOOST_TEST(d["entry"][0]["changes"].Size() == 1u);
      BOOST_TEST(value["messages"].Size() == 1u);
      BOOST_TEST(std::string(value["messages"][0]["id"].GetString()) == keys[i]);
      BOOST_REQUIRE(value.HasMember("contacts"));
      BOOST_TEST(value["contacts"].Size() == 1u);
      BOOST_TEST(std::string(value["contacts"][0]["wa_id"].GetString()) ==
                 std::string(value["messages"][0]["from"].GetString()));
      BOOST_TEST(std::string(value["metadata"]["phone_number_id"].GetString()) ==
                 "106540352242922");
    }
  }
  BOOST_TEST(meta(messages[1], "sender") == "+447700900123");
  BOOST_TEST(meta(messages[1], "context_id") == "wamid.QUESTION");
  BOOST_TEST(messages[1].body.find("Bob") != std::string::npos);
  BOOST_TEST(messages[1].body.find("Alice") == std::string::npos);
  BOOST_TEST(meta(messages[0], "sender") == "+16505551234");
}

BOOST_AUTO_TEST_CASE(unicode_names_and_text_survive_byte_for_byte) {
  const std::string body = readData("unicode_raw.json");
  auto messages = acceptAll(body);
  BOOST_REQUIRE(messages.size() == 1u);
  BOOST_TEST(messages[0].body == trimNewline(body));
  BOOST_TEST(messages[0].body.find("José Müller-Ñúñez 李小龍 😀") != std::string::npos);
  BOOST_TEST(meta(messages[0], "sender") == "+5215512345678");
}

BOOST_AUTO_TEST_CASE(meta_escaped_unicode_is_verified_over_the_raw_bytes) {
  const std::string body = readData("unicode_escaped.json");
  BOOST_REQUIRE(body.find("\\u00e4\\u00f6\\u00e5") != std::string::npos);
  auto messages = acceptAll(body);  // signed over the escaped bytes as received
  BOOST_REQUIRE(messages.size() == 1u);
  rapidjson::Document d;
  d.Parse(messages[0].body.c_str());
  BOOST_REQUIRE(!d.HasParseError());
  const auto& value = d["entry"][0]["changes"][0]["value"];
  BOOST_TEST(std::string(value["contacts"][0]["profile"]["name"].GetString()) == "Änne Öberg");
  BOOST_TEST(std::string(value["messages"][0]["text"]["body"].GetString()) == "äöå");
  // The same text signed in its unescaped form is a different body: refused.
  auto source = defaultSource();
  std::string sig = hubSignature256(kSecret, body);
  std::string unescaped = body;
  unescaped.replace(unescaped.find("\\u00e4\\u00f6\\u00e5"), 18, "äöå");
  BOOST_TEST((source->handle(post(unescaped, &sig)).kind == Kind::kRefuse));
}

BOOST_AUTO_TEST_CASE(business_scoped_user_id_leaves_sender_empty_but_keeps_reply_to) {
  auto messages = acceptAll(readData("bsuid_message.json"));
  BOOST_REQUIRE(messages.size() == 1u);
  const auto& m = messages[0];
  BOOST_TEST(meta(m, "sender") == "");
  BOOST_TEST(meta(m, "sender_raw") == "US.13491208655302741918");
  BOOST_TEST(meta(m, "reply_to") == "US.13491208655302741918");
  BOOST_TEST(m.body.find("\"contacts\":[{\"profile\":{\"name\":\"bob\"}") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(statuses)

BOOST_AUTO_TEST_CASE(sent_status_is_recorded_against_the_outbound_message) {
  const std::string body = readData("status_sent.json");
  auto messages = acceptAll(body);
  BOOST_REQUIRE(messages.size() == 1u);
  const auto& m = messages[0];
  const std::string wamid = "wamid.HBgLNjAxNzM1MjYyMzMVAgARGBJCNkY5NTBENEU3ODYxQTM3RUQA";
  BOOST_TEST(m.idempotencyKey == "status:" + wamid + ":sent");
  BOOST_TEST(meta(m, "kind") == "status");
  BOOST_TEST(meta(m, "provider") == "meta");
  BOOST_TEST(meta(m, "outbound_id") == wamid);
  BOOST_TEST(meta(m, "status") == "sent");
  BOOST_TEST(meta(m, "error") == "<absent>");
  BOOST_TEST(meta(m, "sender") == "+60173526233");
  BOOST_TEST(meta(m, "reply_from") == "114896151713920");
  rapidjson::Document d;
  d.Parse(m.body.c_str());
  BOOST_REQUIRE(!d.HasParseError());
  const auto& value = d["entry"][0]["changes"][0]["value"];
  BOOST_TEST(value["statuses"].Size() == 1u);
  BOOST_TEST(!value.HasMember("messages"));
  BOOST_TEST(value["statuses"][0]["pricing"]["billable"].GetBool());
}

BOOST_AUTO_TEST_CASE(out_of_order_and_failed_statuses_each_get_their_own_key) {
  auto messages = acceptAll(readData("statuses_mixed.json"));
  BOOST_REQUIRE(messages.size() == 3u);
  BOOST_TEST(messages[0].idempotencyKey == "status:wamid.OUTBOUND1:read");
  BOOST_TEST(messages[1].idempotencyKey == "status:wamid.OUTBOUND1:delivered");
  BOOST_TEST(messages[2].idempotencyKey == "status:wamid.OUTBOUND2:failed");
  BOOST_TEST(meta(messages[0], "status") == "read");
  BOOST_TEST(meta(messages[1], "status") == "delivered");
  BOOST_TEST(meta(messages[2], "status") == "failed");
  BOOST_TEST(meta(messages[2], "outbound_id") == "wamid.OUTBOUND2");
  BOOST_TEST(meta(messages[2], "error") == "131047 Re-engagement message");
  BOOST_TEST(meta(messages[0], "error") == "<absent>");
  BOOST_TEST(messages[2].body.find("\"code\":131047") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(bad_input)

BOOST_AUTO_TEST_CASE(malformed_json_with_a_valid_signature_is_rejected_and_kept) {
  auto source = defaultSource();
  const std::string body = R"({"object":"whatsapp_business_account","entry":[{"id":"1",)";
  auto v = source->handle(signedPost(body));
  BOOST_TEST((v.kind == Kind::kReject));
  BOOST_TEST(v.reply.status == 400);
  BOOST_REQUIRE(v.messages.size() == 1u);
  BOOST_TEST(v.messages[0].body == body);
  BOOST_TEST((v.error.code == ErrorCode::kStructure));
  BOOST_TEST(v.error.message.find("malformed JSON at offset") != std::string::npos);
  BOOST_TEST(v.reply.body.find("malformed JSON") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(signed_json_that_is_not_a_whatsapp_webhook_is_rejected_precisely) {
  auto source = defaultSource();
  auto wrongObject = source->handle(signedPost(R"({"object":"page","entry":[]})"));
  BOOST_TEST((wrongObject.kind == Kind::kReject));
  BOOST_TEST(wrongObject.error.location == "/object");
  auto noId = source->handle(signedPost(
      R"({"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages",)"
      R"("value":{"messages":[{"from":"16505551234","type":"text","text":{"body":"x"}}]}}]}]})"));
  BOOST_TEST((noId.kind == Kind::kReject));
  BOOST_TEST((noId.error.code == ErrorCode::kRequired));
  BOOST_TEST(noId.error.location == "/entry/0/changes/0/value/messages/0/id");
  auto statusWithoutState = source->handle(signedPost(
      R"({"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages",)"
      R"("value":{"statuses":[{"id":"wamid.X"}]}}]}]})"));
  BOOST_TEST((statusWithoutState.kind == Kind::kReject));
  BOOST_TEST(statusWithoutState.error.location == "/entry/0/changes/0/value/statuses/0/status");
  auto hugeId = source->handle(signedPost(
      R"({"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages",)"
      R"("value":{"messages":[{"from":"16505551234","id":")" +
      std::string(300, 'x') + R"(","type":"text","text":{"body":"x"}}]}}]}]})"));
  BOOST_TEST((hugeId.kind == Kind::kReject));
  BOOST_TEST(hugeId.error.location == "/entry/0/changes/0/value/messages/0/id");
}

BOOST_AUTO_TEST_CASE(webhook_without_messages_or_statuses_stores_nothing) {
  auto source = defaultSource();
  for (const std::string& body :
       {std::string(R"({"object":"whatsapp_business_account","entry":[]})"),
        std::string(R"({"object":"whatsapp_business_account","entry":[{"id":"1","changes":[)"
                    R"({"field":"account_update","value":{"event":"VERIFIED_ACCOUNT"}}]}]})"),
        std::string(R"({"object":"whatsapp_business_account","entry":[{"id":"1","changes":[)"
                    R"({"field":"messages","value":{"messaging_product":"whatsapp","errors":[)"
                    R"({"code":130429,"title":"Rate limit hit"}]}}]}]})")}) {
    BOOST_TEST_CONTEXT(body) {
      auto v = source->handle(signedPost(body));
      BOOST_TEST((v.kind == Kind::kRespond));
      BOOST_TEST(v.reply.status == 200);
      BOOST_TEST(v.messages.empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(oversized_body_is_refused_with_413_at_the_configured_limit) {
  const std::string body = readData("text_message.json");
  auto source = defaultSource(body.size());
  BOOST_TEST(source->maxBodyBytes() == body.size());
  BOOST_TEST((source->handle(signedPost(body)).kind == Kind::kAccept));
  auto v = source->handle(signedPost(body + " "));
  BOOST_TEST((v.kind == Kind::kRespond));
  BOOST_TEST(v.reply.status == 413);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(config)

BOOST_AUTO_TEST_CASE(missing_secrets_name_the_field) {
  auto noSecret = makeSource(R"({"path":"/wa","verify_token":"t"})");
  BOOST_REQUIRE(!noSecret.has_value());
  BOOST_TEST(noSecret.error().message.find("/source/app_secrets") != std::string::npos);
  BOOST_TEST(noSecret.error().message.find("whatsapp.json") != std::string::npos);

  auto emptyList = makeSource(R"({"path":"/wa","app_secrets":[],"verify_token":"t"})");
  BOOST_REQUIRE(!emptyList.has_value());
  BOOST_TEST(emptyList.error().message.find("/source/app_secrets") != std::string::npos);

  auto emptyEntry = makeSource(R"({"path":"/wa","app_secrets":["ok",""],"verify_token":"t"})");
  BOOST_REQUIRE(!emptyEntry.has_value());
  BOOST_TEST(emptyEntry.error().message.find("/source/app_secrets") != std::string::npos);

  auto noToken = makeSource(R"({"path":"/wa","app_secrets":["s"]})");
  BOOST_REQUIRE(!noToken.has_value());
  BOOST_TEST(noToken.error().message.find("/source/verify_token") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(wrong_types_unknown_keys_and_bad_paths_are_config_errors) {
  auto notArray = makeSource(R"({"path":"/wa","app_secrets":"s","verify_token":"t"})");
  BOOST_REQUIRE(!notArray.has_value());
  BOOST_TEST(notArray.error().message.find("/source/app_secrets") != std::string::npos);

  auto unknown = makeSource(R"({"path":"/wa","app_secret":"s","verify_token":"t","secret":"x"})");
  BOOST_REQUIRE(!unknown.has_value());
  BOOST_TEST(unknown.error().message.find("secret") != std::string::npos);

  auto badPath = makeSource(R"({"path":"wa","app_secret":"s","verify_token":"t"})");
  BOOST_REQUIRE(!badPath.has_value());
  BOOST_TEST(badPath.error().message.find("/source/path") != std::string::npos);

  auto ok = makeSource(R"({"path":"/wa","app_secret":"s","verify_token":"t"})");
  BOOST_REQUIRE(ok.has_value());
  BOOST_TEST((*ok)->path() == "/wa");
  BOOST_TEST((*ok)->maxBodyBytes() == std::size_t(1) << 20);
}

BOOST_AUTO_TEST_CASE(registers_the_whatsapp_source_type) {
  core::ConnectorRegistry registry;
  channels::registerWhatsappConnectors(registry);
  BOOST_TEST((registry.source("whatsapp") != nullptr));
  BOOST_TEST((registry.source("http") == nullptr));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(e164_normalisation) {
  BOOST_TEST(normalizeE164("16505551234") == "+16505551234");
  BOOST_TEST(normalizeE164("+16505551234") == "+16505551234");
  BOOST_TEST(normalizeE164("5215512345678") == "+5215512345678");
  BOOST_TEST(normalizeE164("US.13491208655302741918") == "");
  BOOST_TEST(normalizeE164("@bob") == "");
  BOOST_TEST(normalizeE164("") == "");
  BOOST_TEST(normalizeE164("+") == "");
  BOOST_TEST(normalizeE164("0650555123") == "");
  BOOST_TEST(normalizeE164("1650 555 1234") == "");
  BOOST_TEST(normalizeE164("1234567890123456") == "");  // 16 digits: longer than E.164 allows
  BOOST_TEST(normalizeE164("123456") == "");
}

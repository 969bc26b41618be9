// The 8x8 Chat Apps source: Authorization check, inbound v2/v3 envelopes, Flow submissions,
// delivery receipts, malformed bodies and config, against the fixtures in tests/data/8x8.
#define BOOST_TEST_MODULE channel_8x8_tests
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <rapidjson/document.h>

#include "channels/8x8/eight_by_eight_source.h"
#include "channels/8x8/register.h"
#include "engine/core/config.h"
#include "tests/support/source_tests.h"

namespace core = switchboard::core;
using switchboard::channels::EightByEightSource;
using switchboard::channels::eightbyeight::normalizeE164;
using Kind = core::SourceVerdict::Kind;

namespace {

constexpr const char* kAuth = "Bearer 9QQhlsEb8VY";

std::string dataFile(const std::string& name) { return switchboard::testing::readTestData("8x8", name); }

switchboard::Result<std::unique_ptr<core::HttpSource>> tryCreate(const std::string& json) {
  return switchboard::testing::createSource(switchboard::channels::registerEightByEightConnectors, "8x8", "c8x8",
                                            json);
}

std::unique_ptr<core::HttpSource> makeSource() {
  auto r = tryCreate(R"({"path":"/webhooks/8x8","authorization":"Bearer 9QQhlsEb8VY"})");
  BOOST_REQUIRE_MESSAGE(r.has_value(), (r.has_value() ? std::string() : r.error().message));
  return std::move(*r);
}

core::HttpRequest post(std::string body, const char* authorization = kAuth) {
  core::HttpRequest r;
  r.method = "POST";
  r.scheme = "https";
  r.host = "engine.example.org";
  r.path = "/webhooks/8x8";
  r.headers.push_back({"Content-Type", "application/json"});
  if (authorization != nullptr) r.headers.push_back({"Authorization", authorization});
  r.body = std::move(body);
  return r;
}

std::string meta(const core::InboundMessage& m, const char* key) {
  const std::string* v = core::findMetadata(m.metadata, key);
  return v != nullptr ? *v : std::string("<absent>");
}

core::InboundMessage only(const core::SourceVerdict& v) {
  BOOST_REQUIRE(v.kind == Kind::kAccept);
  BOOST_REQUIRE_EQUAL(v.messages.size(), 1u);
  return v.messages.front();
}

std::string replaceAll(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(inbound)

BOOST_AUTO_TEST_CASE(seed_flow_submission_becomes_one_flow_message) {
  auto source = makeSource();
  const std::string body = dataFile("flow_submission_seed.json");
  auto v = source->handle(post(body));
  const core::InboundMessage m = only(v);
  BOOST_TEST(v.reply.status == 200);
  BOOST_TEST(m.idempotencyKey == "health-xyz-789");
  BOOST_TEST(m.body == body);
  BOOST_TEST(m.contentType == "application/json");
  BOOST_TEST(meta(m, "provider") == "8x8");
  BOOST_TEST(meta(m, "kind") == "flow");
  BOOST_TEST(meta(m, "flow_token") == "<TOKEN>");
  BOOST_TEST(meta(m, "sender") == "+15551234567");
  BOOST_TEST(meta(m, "sender_raw") == "+15551234567");
  BOOST_TEST(meta(m, "reply_to") == "+15551234567");
  BOOST_TEST(meta(m, "reply_from") == "your-subaccount-id");
  BOOST_TEST(meta(m, "provider_message_id") == "health-xyz-789");
  BOOST_TEST(meta(m, "channel") == "whatsapp");
  BOOST_TEST(meta(m, "envelope_version") == "2");
  BOOST_TEST(meta(m, "provider_timestamp") == "2026-02-10T14:00:00.000Z");
}

BOOST_AUTO_TEST_CASE(v3_envelope_keeps_bsuid_apart_and_bytes_exact) {
  auto source = makeSource();
  const std::string body = dataFile("flow_submission_v3.json");
  auto v = source->handle(post(body));
  const core::InboundMessage m = only(v);
  BOOST_TEST(m.idempotencyKey == "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f");
  // Unicode names, SQL quotes, <script> and U+2028 are stored exactly as received.
  BOOST_TEST(m.body == body);
  BOOST_TEST(m.body.find("Zo\xC3\xAB") != std::string::npos);
  BOOST_TEST(m.body.find("DROP TABLE patients;--") != std::string::npos);
  BOOST_TEST(m.body.find("<script>") != std::string::npos);
  BOOST_TEST(meta(m, "kind") == "flow");
  BOOST_TEST(meta(m, "flow_token") == "appt-flow-0042");
  BOOST_TEST(meta(m, "sender") == "+447700900123");
  BOOST_TEST(meta(m, "sender_raw") == "+447700900123");
  BOOST_TEST(meta(m, "reply_to") == "+447700900123");
  BOOST_TEST(meta(m, "channel_user_id") == "GB.1234567890123456789");
  BOOST_TEST(meta(m, "reply_from") == "clinic-north_hq");
  BOOST_TEST(meta(m, "envelope_version") == "3");
}

BOOST_AUTO_TEST_CASE(v3_without_msisdn_has_no_sender_and_replies_to_the_bsuid) {
  auto source = makeSource();
  std::string body =
      replaceAll(dataFile("flow_submission_v3.json"), "\"msisdn\": \"+447700900123\",", "");
  BOOST_REQUIRE(body.find("msisdn") == std::string::npos);
  const core::InboundMessage m = only(source->handle(post(body)));
  BOOST_TEST(meta(m, "sender") == "");
  BOOST_TEST(meta(m, "sender_raw") == "GB.1234567890123456789");
  BOOST_TEST(meta(m, "reply_to") == "GB.1234567890123456789");
}

BOOST_AUTO_TEST_CASE(v3_digit_bsuid_is_never_taken_for_a_phone_number) {
  auto source = makeSource();
  std::string body =
      replaceAll(dataFile("flow_submission_v3.json"), "\"msisdn\": \"+447700900123\",", "");
  body = replaceAll(body, "GB.1234567890123456789", "15551234567");
  const core::InboundMessage m = only(source->handle(post(body)));
  BOOST_TEST(meta(m, "sender") == "");
  BOOST_TEST(meta(m, "sender_raw") == "15551234567");
}

BOOST_AUTO_TEST_CASE(v2_lowercase_types_and_response_json_object) {
  auto source = makeSource();
  const std::string body = dataFile("flow_submission_v2_lowercase_object.json");
  const core::InboundMessage m = only(source->handle(post(body)));
  BOOST_TEST(m.idempotencyKey == "0c9a8b7d-lowercase-v2");
  BOOST_TEST(m.body == body);
  BOOST_TEST(meta(m, "kind") == "flow");
  BOOST_TEST(meta(m, "flow_token") == "tok-obj-7");
  // v2 channelUserId holds the phone digits.
  BOOST_TEST(meta(m, "sender") == "+15551234567");
  BOOST_TEST(meta(m, "sender_raw") == "15551234567");
  BOOST_TEST(meta(m, "reply_to") == "+15551234567");
  BOOST_TEST(meta(m, "reply_from") == "clinic-south");
  BOOST_TEST(meta(m, "channel") == "whatsapp");  // sent as "whatsApp"
}

BOOST_AUTO_TEST_CASE(pascal_and_lowercase_type_names_classify_alike) {
  auto source = makeSource();
  auto kindOf = [&](const std::string& type, const std::string& content) {
    std::string body =
        R"({"namespace":"ChatApps","eventType":"inbound_message_received","payload":{"umid":"u-)" +
        type + R"(","subAccountId":"s","user":{"msisdn":"+15551234567"},"type":")" + type +
        R"(","content":)" + content + "}}";
    return meta(only(source->handle(post(body))), "kind");
  };
  BOOST_TEST(kindOf("Text", R"({"text":"Hello"})") == "text");
  BOOST_TEST(kindOf("text", R"({"text":"Hello"})") == "text");
  BOOST_TEST(kindOf("TEXT", R"({"text":"Hello"})") == "text");
  BOOST_TEST(kindOf("Image", R"({"url":"https://x/y.jpg"})") == "media");
  BOOST_TEST(kindOf("document", R"({"url":"https://x/y.pdf"})") == "media");
  BOOST_TEST(
      kindOf(
          "Interactive",
          R"({"interactive":{"type":"button_reply","button_reply":{"id":"yes","title":"Yes"}}})") ==
      "button");
  BOOST_TEST(
      kindOf(
          "interactive",
          R"({"interactive":{"type":"list_reply","list_reply":{"id":"slot-1","title":"Mon"}}})") ==
      "button");
  BOOST_TEST(kindOf("Interactive",
                    R"({"interactive":{"type":"NfmReply","nfmReply":{"responseJson":"{}"}}})") ==
             "flow");
  BOOST_TEST(kindOf("Location", R"({"location":{"latitude":1,"longitude":2}})") == "other");
}

BOOST_AUTO_TEST_CASE(unparseable_response_json_still_accepted_without_token) {
  auto source = makeSource();
  std::string body =
      R"({"eventType":"inbound_message_received","payload":{"umid":"u-bad-flow","user":{"msisdn":"+15551234567"},"type":"Interactive","content":{"interactive":{"type":"nfmReply","nfmReply":{"responseJson":"{not json"}}}}})";
  const core::InboundMessage m = only(source->handle(post(body)));
  BOOST_TEST(meta(m, "kind") == "flow");
  BOOST_TEST(meta(m, "flow_token") == "<absent>");
  BOOST_TEST(m.body == body);
}

BOOST_AUTO_TEST_CASE(numeric_umid_is_accepted_as_decimal_key) {
  auto source = makeSource();
  const core::InboundMessage m = only(source->handle(post(
      R"({"eventType":"inbound_message_received","payload":{"umid":1234567890123,"user":{"msisdn":"+15551234567"},"type":"Text","content":{"text":"hi"}}})")));
  BOOST_TEST(m.idempotencyKey == "1234567890123");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(receipts)

BOOST_AUTO_TEST_CASE(undelivered_receipt_is_a_failed_status) {
  auto source = makeSource();
  const std::string body = dataFile("status_undelivered_v8.json");
  const core::InboundMessage m = only(source->handle(post(body)));
  BOOST_TEST(m.idempotencyKey == "status:a1b2c3d4-0000-4000-8000-00000000beef:failed");
  BOOST_TEST(m.body == body);
  BOOST_TEST(meta(m, "kind") == "status");
  BOOST_TEST(meta(m, "provider") == "8x8");
  BOOST_TEST(meta(m, "outbound_id") == "a1b2c3d4-0000-4000-8000-00000000beef");
  BOOST_TEST(meta(m, "status") == "failed");
  BOOST_TEST(meta(m, "status_raw") == "undelivered");
  BOOST_TEST(meta(m, "status_detail") == "rejected_by_operator");
  BOOST_TEST(meta(m, "error") == "15 Invalid destination (whatsapp 131009)");
  BOOST_TEST(meta(m, "sender") == "+15551234567");
  BOOST_TEST(meta(m, "reply_from") == "clinic-north_hq");
}

BOOST_AUTO_TEST_CASE(read_receipt_v9) {
  auto source = makeSource();
  const core::InboundMessage m = only(source->handle(post(dataFile("status_read_v9.json"))));
  BOOST_TEST(m.idempotencyKey == "status:a1b2c3d4-0000-4000-8000-00000000beef:read");
  BOOST_TEST(meta(m, "status") == "read");
  BOOST_TEST(meta(m, "error") == "<absent>");
  BOOST_TEST(meta(m, "sender") == "+15551234567");
  BOOST_TEST(meta(m, "channel_user_id") == "US.13491208655302741918");
}

BOOST_AUTO_TEST_CASE(delivered_to_operator_is_sent_and_to_recipient_is_delivered) {
  auto source = makeSource();
  auto receipt = [&](const std::string& detail) {
    return R"({"namespace":"ChatApps","eventType":"outbound_message_status_changed","payload":{"umid":"out-1","channel":"whatsapp","user":{"msisdn":"+15551234567"},"status":{"state":"delivered","detail":")" +
           detail + R"(","timestamp":"2026-07-03T03:40:54.16Z"}}})";
  };
  const core::InboundMessage op = only(source->handle(post(receipt("delivered_to_operator"))));
  BOOST_TEST(meta(op, "status") == "sent");
  BOOST_TEST(op.idempotencyKey == "status:out-1:sent");
  const core::InboundMessage rcpt = only(source->handle(post(receipt("delivered_to_recipient"))));
  BOOST_TEST(meta(rcpt, "status") == "delivered");
  BOOST_TEST(rcpt.idempotencyKey == "status:out-1:delivered");
}

BOOST_AUTO_TEST_CASE(receipt_without_state_is_rejected) {
  auto source = makeSource();
  auto v = source->handle(post(
      R"({"eventType":"outbound_message_status_changed","payload":{"umid":"out-1","status":{}}})"));
  BOOST_TEST((v.kind == Kind::kReject));
  BOOST_TEST(v.reply.status == 422);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(authentication)

BOOST_AUTO_TEST_CASE(missing_or_wrong_authorization_is_refused_and_nothing_kept) {
  auto source = makeSource();
  const std::string body = dataFile("flow_submission_seed.json");
  for (const char* auth :
       {static_cast<const char*>(nullptr), "", "Bearer 9QQhlsEb8V", "Bearer 9QQhlsEb8VYX",
        "bearer 9QQhlsEb8VY", "Basic dXNlcjpwYXNzd29yZA==", " Bearer 9QQhlsEb8VY"}) {
    auto v = source->handle(post(body, auth));
    BOOST_TEST((v.kind == Kind::kRefuse));
    BOOST_TEST(v.reply.status == 401);
    BOOST_TEST(v.messages.empty());
    BOOST_TEST(v.auditReason.find("9QQ") == std::string::npos);  // no secret in the audit
  }
}

BOOST_AUTO_TEST_CASE(an_x_8x8_signature_header_does_not_replace_authorization) {
  auto source = makeSource();
  auto r = post(dataFile("flow_submission_seed.json"), nullptr);
  r.headers.push_back({"X-8x8-Signature", "sha256=deadbeef"});
  BOOST_TEST((source->handle(r).kind == Kind::kRefuse));
}

BOOST_AUTO_TEST_CASE(unknown_event_needs_authorization_too) {
  auto source = makeSource();
  const std::string body = R"({"eventType":"external_app_message","payload":{"umid":"x"}})";
  BOOST_TEST((source->handle(post(body, "nope")).kind == Kind::kRefuse));
  auto v = source->handle(post(body));
  BOOST_TEST((v.kind == Kind::kRespond));
  BOOST_TEST(v.reply.status == 200);
  BOOST_TEST(v.messages.empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(bad_input)

BOOST_AUTO_TEST_CASE(malformed_json_is_rejected_400_and_kept_raw) {
  auto source = makeSource();
  const std::string body = "{\"eventType\":\"inbound_message_received\",\"payload\":{\"umid\":";
  auto v = source->handle(post(body));
  BOOST_TEST((v.kind == Kind::kReject));
  BOOST_TEST(v.reply.status == 400);
  BOOST_REQUIRE_EQUAL(v.messages.size(), 1u);
  BOOST_TEST(v.messages[0].body == body);
  BOOST_TEST(v.messages[0].idempotencyKey.empty());
  BOOST_TEST(v.error.message.find("malformed JSON") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(non_object_and_missing_fields_are_rejected) {
  auto source = makeSource();
  auto status = [&](const std::string& body) {
    auto v = source->handle(post(body));
    BOOST_TEST((v.kind == Kind::kReject));
    return v.reply.status;
  };
  BOOST_TEST(status("[1,2,3]") == 400);
  BOOST_TEST(status(R"({"payload":{"umid":"x"}})") == 422);                  // no eventType
  BOOST_TEST(status(R"({"eventType":"inbound_message_received"})") == 422);  // no payload
  BOOST_TEST(status(R"({"eventType":"inbound_message_received","payload":{"type":"Text"}})") ==
             422);  // no umid
  BOOST_TEST(status(R"({"eventType":"inbound_message_received","payload":{"umid":""}})") == 422);
  BOOST_TEST(status(R"({"eventType":"inbound_message_received","payload":{"umid":{"a":1}}})") ==
             422);
}

BOOST_AUTO_TEST_CASE(get_is_not_allowed) {
  auto source = makeSource();
  auto r = post("");
  r.method = "GET";
  auto v = source->handle(r);
  BOOST_TEST((v.kind == Kind::kRespond));
  BOOST_TEST(v.reply.status == 405);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(config)

BOOST_AUTO_TEST_CASE(authorization_is_required_and_unknown_keys_fail) {
  auto missing = tryCreate(R"({"path":"/webhooks/8x8"})");
  BOOST_REQUIRE(!missing.has_value());
  BOOST_TEST(missing.error().message.find("/source/authorization") != std::string::npos);
  auto empty = tryCreate(R"({"path":"/webhooks/8x8","authorization":""})");
  BOOST_TEST(!empty.has_value());
  auto unknown = tryCreate(R"({"path":"/webhooks/8x8","authorization":"x","signature":"y"})");
  BOOST_REQUIRE(!unknown.has_value());
  BOOST_TEST(unknown.error().message.find("signature") != std::string::npos);
  auto relative = tryCreate(R"({"path":"webhooks/8x8","authorization":"x"})");
  BOOST_TEST(!relative.has_value());
}

BOOST_AUTO_TEST_CASE(authorization_comes_from_the_environment) {
  ::setenv("SB_TEST_8X8_AUTHORIZATION", "Basic dXNlcjpwYXNzd29yZA==", 1);
  auto path =
      std::filesystem::temp_directory_path() / ("sb-8x8-" + std::to_string(::getpid()) + ".json");
  {
    std::ofstream out(path);
    out << R"({"path":"/webhooks/8x8","max_body_bytes":4096,"authorization":"${env:SB_TEST_8X8_AUTHORIZATION}"})";
  }
  auto file = core::loadConfigFile(path.string());
  std::filesystem::remove(path);
  BOOST_REQUIRE(file.has_value());
  core::ConfigReader reader(*file->document, file->path, "");
  auto source = EightByEightSource::create(reader, core::ConnectorContext{});
  BOOST_REQUIRE(source.has_value());
  BOOST_TEST((*source)->maxBodyBytes() == 4096u);
  const std::string body = dataFile("flow_submission_seed.json");
  BOOST_TEST(((*source)->handle(post(body, "Basic dXNlcjpwYXNzd29yZA==")).kind == Kind::kAccept));
  BOOST_TEST(((*source)->handle(post(body, kAuth)).kind == Kind::kRefuse));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(phone_numbers_normalise_to_e164) {
  BOOST_TEST(normalizeE164("+15551234567") == "+15551234567");
  BOOST_TEST(normalizeE164("15551234567") == "+15551234567");
  BOOST_TEST(normalizeE164(" +1 (555) 123-4567 ") == "+15551234567");
  BOOST_TEST(normalizeE164("+44 7700.900123") == "+447700900123");
  BOOST_TEST(normalizeE164("US.13491208655302741918") == "");
  BOOST_TEST(normalizeE164("+1234567890123456") == "");  // 16 digits
  BOOST_TEST(normalizeE164("12345") == "");
  BOOST_TEST(normalizeE164("0155512345") == "");
  BOOST_TEST(normalizeE164("+1555+1234567") == "");
  BOOST_TEST(normalizeE164("") == "");
}

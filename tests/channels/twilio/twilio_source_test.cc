// The Twilio source: signature checks (vectors, port variants, public_url, bodySHA256, rotation),
// message classification and metadata, TwiML answer, bad input and config.
// Expected signatures below were computed independently with Python's hmac/hashlib.
#define BOOST_TEST_MODULE channel_twilio_tests
#include <boost/test/unit_test.hpp>

#include <cstdlib>

#include <rapidjson/document.h>

#include "channels/twilio/register.h"
#include "channels/twilio/twilio_signature.h"
#include "channels/twilio/twilio_source.h"
#include "engine/core/config.h"
#include "tests/support/source_tests.h"

namespace core = switchboard::core;
namespace tw = switchboard::channels::twilio;
using switchboard::channels::kEmptyTwiml;
using Kind = core::SourceVerdict::Kind;

namespace {

constexpr const char* kToken = "test_auth_token_1";
constexpr const char* kRotated = "rotated_token_2";
constexpr const char* kSandboxSid = "SM01cd3925943ee3504f8a5c42d88efdf6";

std::string dataFile(const std::string& name) { return switchboard::testing::readTestData("twilio", name); }

switchboard::Result<std::unique_ptr<core::HttpSource>> tryCreate(const std::string& json) {
  return switchboard::testing::createSource(switchboard::channels::registerTwilioConnectors, "twilio", "twilio",
                                            json);
}

std::unique_ptr<core::HttpSource> makeSource(
    const std::string& json =
        R"({"path":"/webhooks/twilio","auth_tokens":["test_auth_token_1"]})") {
  auto r = tryCreate(json);
  BOOST_REQUIRE_MESSAGE(r.has_value(), (r.has_value() ? std::string() : r.error().message));
  return std::move(*r);
}

// A POST as the engine's HTTP server hands it over: https://engine.example.org/webhooks/twilio.
core::HttpRequest post(std::string body, const char* signature,
                       std::string host = "engine.example.org", std::string scheme = "https") {
  core::HttpRequest r;
  r.method = "POST";
  r.scheme = std::move(scheme);
  r.host = std::move(host);
  r.path = "/webhooks/twilio";
  r.headers.push_back({"Content-Type", "application/x-www-form-urlencoded"});
  if (signature != nullptr) r.headers.push_back({"X-Twilio-Signature", signature});
  r.body = std::move(body);
  return r;
}

// A request signed by the code under test (its algorithm is pinned by the vectors elsewhere).
core::HttpRequest signedPost(std::string body, const std::string& token = kToken) {
  std::string sig = tw::computeSignature(token, "https://engine.example.org/webhooks/twilio",
                                         core::parseForm(body));
  return post(std::move(body), sig.c_str());
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

bool refused(const core::SourceVerdict& v) {
  return v.kind == Kind::kRefuse && v.reply.status == 401 && v.messages.empty();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(verification)

BOOST_AUTO_TEST_CASE(canonical_vector_through_the_source) {
  auto source = makeSource(
      R"({"path":"/myapp.php","auth_token":"12345","public_url":"https://mycompany.com/myapp.php"})");
  core::HttpRequest r = post(
      "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%"
      "2B18005551212",
      "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "internal-lb:8080", "http");
  r.path = "/myapp.php";
  r.query = "foo=1&bar=2";
  auto v = source->handle(r);
  // Authenticated; a voice webhook has no MessageSid, so it is kept as rejected, not refused.
  BOOST_TEST((v.kind == Kind::kReject));
  BOOST_TEST(v.reply.status == 422);
  r.headers.back().value = "RSOYDt4T1cUTdK1PDd93/VVr8B8";
  BOOST_TEST(refused(source->handle(r)));
  r.headers.back().value = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
  r.query = "foo=1&bar=3";
  BOOST_TEST(refused(source->handle(r)));
}

BOOST_AUTO_TEST_CASE(sandbox_body_with_and_without_port) {
  auto source = makeSource();
  const std::string body = dataFile("sandbox_inbound.form");
  // Signed over the URL without a port; received with and without ":443" in Host.
  BOOST_TEST((source->handle(post(body, "C53N0Q29PSZZFSE/wgAu6ZjCzHg=")).kind == Kind::kAccept));
  BOOST_TEST(
      (source->handle(post(body, "C53N0Q29PSZZFSE/wgAu6ZjCzHg=", "engine.example.org:443")).kind ==
       Kind::kAccept));
  // Signed over the URL with ":443"; received with and without it.
  BOOST_TEST((source->handle(post(body, "Q4Vc/K5uWK0/o3sHayvz9cWcpZQ=")).kind == Kind::kAccept));
  BOOST_TEST(
      (source->handle(post(body, "Q4Vc/K5uWK0/o3sHayvz9cWcpZQ=", "engine.example.org:443")).kind ==
       Kind::kAccept));
  // A non-default port: signed with it, accepted only on that port.
  BOOST_TEST(
      (source->handle(post(body, "JQ+7W+BF1kg4skA21k/nDcFNnNU=", "127.0.0.1:8080", "http")).kind ==
       Kind::kAccept));
  BOOST_TEST(refused(
      source->handle(post(body, "JQ+7W+BF1kg4skA21k/nDcFNnNU=", "127.0.0.1:9090", "http"))));
  // The https signature does not hold for http.
  BOOST_TEST(refused(
      source->handle(post(body, "C53N0Q29PSZZFSE/wgAu6ZjCzHg=", "engine.example.org", "http"))));
}

BOOST_AUTO_TEST_CASE(missing_wrong_or_tampered_signature_is_refused) {
  auto source = makeSource();
  const std::string body = dataFile("sandbox_inbound.form");
  BOOST_TEST(refused(source->handle(post(body, nullptr))));
  BOOST_TEST(refused(source->handle(post(body, ""))));
  BOOST_TEST(refused(source->handle(post(body, "c53N0Q29PSZZFSE/wgAu6ZjCzHg="))));
  // Signed by a token we do not hold.
  BOOST_TEST(refused(source->handle(post(body, "Ec45digwz4z7HQJQtt3oYKvOBCA="))));
  // One parameter changed after signing.
  std::string tampered = body;
  tampered.replace(tampered.find("Body=Ol%C3%A1"), 13, "Body=Ola");
  BOOST_TEST(refused(source->handle(post(tampered, "C53N0Q29PSZZFSE/wgAu6ZjCzHg="))));
  // An added parameter.
  BOOST_TEST(refused(source->handle(post(body + "&Extra=1", "C53N0Q29PSZZFSE/wgAu6ZjCzHg="))));
  auto v = source->handle(post(body, "nope"));
  BOOST_TEST(v.auditReason.find(kToken) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(token_rotation) {
  const std::string body = dataFile("sandbox_inbound.form");
  auto one = makeSource();
  BOOST_TEST(refused(one->handle(post(body, "Ec45digwz4z7HQJQtt3oYKvOBCA="))));
  auto both = makeSource(
      R"({"path":"/webhooks/twilio","auth_tokens":["test_auth_token_1","rotated_token_2"]})");
  BOOST_TEST((both->handle(post(body, "C53N0Q29PSZZFSE/wgAu6ZjCzHg=")).kind == Kind::kAccept));
  BOOST_TEST((both->handle(post(body, "Ec45digwz4z7HQJQtt3oYKvOBCA=")).kind == Kind::kAccept));
  BOOST_TEST(
      (both->handle(post(body, "8vRAnhDk0qs+adXVpZMSB/vevGc=", "engine.example.org:443")).kind ==
       Kind::kAccept));
  auto rotated = makeSource(R"({"path":"/webhooks/twilio","auth_token":"rotated_token_2"})");
  BOOST_TEST(refused(rotated->handle(post(body, "C53N0Q29PSZZFSE/wgAu6ZjCzHg="))));
  BOOST_TEST((rotated->handle(post(body, "Ec45digwz4z7HQJQtt3oYKvOBCA=")).kind == Kind::kAccept));
}

BOOST_AUTO_TEST_CASE(public_url_overrides_the_host_behind_a_proxy) {
  auto source = makeSource(
      R"({"path":"/webhooks/twilio","auth_tokens":["test_auth_token_1"],"public_url":"https://engine.example.org/webhooks/twilio"})");
  const std::string body = dataFile("sandbox_inbound.form");
  BOOST_TEST(
      (source->handle(post(body, "C53N0Q29PSZZFSE/wgAu6ZjCzHg=", "10.0.0.7:8080", "http")).kind ==
       Kind::kAccept));
  // Without public_url the internal address is what gets signed, so the check fails.
  BOOST_TEST(refused(
      makeSource()->handle(post(body, "C53N0Q29PSZZFSE/wgAu6ZjCzHg=", "10.0.0.7:8080", "http"))));
}

BOOST_AUTO_TEST_CASE(forwarded_host_is_used_when_no_public_url) {
  auto source = makeSource();
  core::HttpRequest r = post(dataFile("sandbox_inbound.form"),
                             "C53N0Q29PSZZFSE/wgAu6ZjCzHg=", "10.0.0.7:8080", "https");
  r.headers.push_back({"X-Forwarded-Host", "engine.example.org"});
  BOOST_TEST((source->handle(r).kind == Kind::kAccept));
}

BOOST_AUTO_TEST_CASE(json_body_with_body_sha256) {
  auto source = makeSource();
  const std::string body =
      R"({"MessageSid":"SM0123456789abcdef0123456789abcdef","From":"whatsapp:+15551234567","To":"whatsapp:+14155238886","Body":"hi"})";
  core::HttpRequest r = post(body, "pFsc+HWOOXd6X0s8hjj9fy2Jk+E=");
  r.headers.front().value = "application/json";
  r.query = "bodySHA256=9aa438cc4cf1a8b688d43c2a5bb6fb2eac540089bd46819062b85f72c13f0948";
  auto v = source->handle(r);
  const core::InboundMessage m = only(v);
  BOOST_TEST(m.idempotencyKey == "SM0123456789abcdef0123456789abcdef");
  BOOST_TEST(m.body == body);
  BOOST_TEST(m.contentType == "application/json");
  BOOST_TEST(meta(m, "kind") == "text");
  BOOST_TEST(meta(m, "sender") == "+15551234567");
  // Upper-case hex in the query is the same hash, but the URL (and so the signature) differs.
  core::HttpRequest upper = r;
  upper.query = "bodySHA256=9AA438CC4CF1A8B688D43C2A5BB6FB2EAC540089BD46819062B85F72C13F0948";
  BOOST_TEST(refused(source->handle(upper)));
  // The body changed: the signature over the URL still holds, the hash does not.
  core::HttpRequest tampered = r;
  tampered.body.replace(tampered.body.find("\"hi\""), 4, "\"ho\"");
  BOOST_TEST(refused(source->handle(tampered)));
  BOOST_TEST(source->handle(tampered).auditReason.find("bodySHA256") != std::string::npos);
  // The hash parameter removed: the body is then read as form parameters and fails.
  core::HttpRequest noHash = r;
  noHash.query.clear();
  BOOST_TEST(refused(source->handle(noHash)));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(messages)

BOOST_AUTO_TEST_CASE(sandbox_inbound_text_metadata_and_twiml) {
  auto source = makeSource();
  const std::string body = dataFile("sandbox_inbound.form");
  auto v = source->handle(post(body, "C53N0Q29PSZZFSE/wgAu6ZjCzHg="));
  const core::InboundMessage m = only(v);
  BOOST_TEST(v.reply.status == 200);
  BOOST_TEST(v.reply.contentType == "text/xml");
  BOOST_TEST(v.reply.body == std::string(kEmptyTwiml));
  BOOST_TEST(v.reply.body == R"(<?xml version="1.0" encoding="UTF-8"?><Response></Response>)");
  BOOST_TEST(m.idempotencyKey == kSandboxSid);
  BOOST_TEST(m.body == body);
  BOOST_TEST(m.contentType == "application/x-www-form-urlencoded");
  BOOST_TEST(meta(m, "provider") == "twilio");
  BOOST_TEST(meta(m, "kind") == "text");
  BOOST_TEST(meta(m, "sender") == "+558282136275");
  BOOST_TEST(meta(m, "sender_raw") == "whatsapp:+558282136275");
  BOOST_TEST(meta(m, "reply_to") == "whatsapp:+558282136275");
  BOOST_TEST(meta(m, "reply_from") == "whatsapp:+14155238886");
  BOOST_TEST(meta(m, "provider_message_id") == kSandboxSid);
  BOOST_TEST(meta(m, "channel") == "whatsapp");
}

BOOST_AUTO_TEST_CASE(hostile_unicode_body_and_repeated_keys_kept_byte_exact) {
  auto source = makeSource();
  const std::string body = dataFile("hostile_inbound.form");
  const core::InboundMessage m = only(source->handle(post(body, "R6UZraY+7mBxIXmXVyjLdBPZ400=")));
  BOOST_TEST(m.body == body);
  BOOST_TEST(m.idempotencyKey == "SMhostile000000000000000000000000001");
  BOOST_TEST(meta(m, "kind") == "text");
  BOOST_TEST(meta(m, "sender") == "+15551234567");
  // The decoded text survives a form round trip exactly.
  bool found = false;
  for (const auto& [k, value] : core::parseForm(m.body)) {
    if (k == "Body") {
      found = true;
      BOOST_TEST(
          value ==
          "Robert'); DROP TABLE patients;-- <script>alert(1)</script> Zo\xC3\xAB \xE6\x9D\x8E");
    }
  }
  BOOST_TEST(found);
}

BOOST_AUTO_TEST_CASE(media_button_and_sms) {
  auto source = makeSource();
  const core::InboundMessage media =
      only(source->handle(signedPost("MessageSid=MM11111111111111111111111111111111&From=whatsapp%"
                                     "3A%2B15551234567&To=whatsapp%3A%2B14155238886"
                                     "&Body=&NumMedia=1&MediaContentType0=image%2Fjpeg&MediaUrl0="
                                     "https%3A%2F%2Fapi.twilio.com%2Fm")));
  BOOST_TEST(meta(media, "kind") == "media");
  BOOST_TEST(meta(media, "num_media") == "1");
  const core::InboundMessage button = only(source->handle(
      signedPost("MessageSid=SM22222222222222222222222222222222&From=whatsapp%3A%2B15551234567&To="
                 "whatsapp%3A%2B14155238886"
                 "&Body=Confirm&ButtonText=Confirm&ButtonPayload=appt-confirm-9&NumMedia=0")));
  BOOST_TEST(meta(button, "kind") == "button");
  BOOST_TEST(meta(button, "button_payload") == "appt-confirm-9");
  const core::InboundMessage sms = only(
      source->handle(signedPost("MessageSid=SM33333333333333333333333333333333&From=%2B15551234567&"
                                "To=%2B14155238886&Body=hello+there&NumMedia=0")));
  BOOST_TEST(meta(sms, "kind") == "text");
  BOOST_TEST(meta(sms, "sender") == "+15551234567");
  BOOST_TEST(meta(sms, "reply_to") == "+15551234567");
  BOOST_TEST(meta(sms, "channel") == "sms");
  const core::InboundMessage bare =
      only(source->handle(signedPost("MessageSid=SM44444444444444444444444444444444&From=messenger%"
                                     "3A123456&To=messenger%3A999&Latitude=1&Longitude=2")));
  BOOST_TEST(meta(bare, "kind") == "other");
  BOOST_TEST(meta(bare, "sender") == "");
  BOOST_TEST(meta(bare, "sender_raw") == "messenger:123456");
}

BOOST_AUTO_TEST_CASE(status_callbacks_concern_the_outbound_message) {
  auto source = makeSource();
  const core::InboundMessage delivered = only(source->handle(signedPost(
      "MessageSid=SM55555555555555555555555555555555&MessageStatus=delivered&SmsStatus=delivered"
      "&To=whatsapp%3A%2B15551234567&From=whatsapp%3A%2B14155238886&AccountSid=ACx&ApiVersion=2010-"
      "04-01")));
  BOOST_TEST(delivered.idempotencyKey == "status:SM55555555555555555555555555555555:delivered");
  BOOST_TEST(meta(delivered, "kind") == "status");
  BOOST_TEST(meta(delivered, "outbound_id") == "SM55555555555555555555555555555555");
  BOOST_TEST(meta(delivered, "status") == "delivered");
  BOOST_TEST(meta(delivered, "error") == "<absent>");
  BOOST_TEST(meta(delivered, "sender") == "+15551234567");  // the patient the message went to
  BOOST_TEST(meta(delivered, "reply_to") == "whatsapp:+15551234567");
  BOOST_TEST(meta(delivered, "reply_from") == "whatsapp:+14155238886");
  const core::InboundMessage failed = only(source->handle(signedPost(
      "MessageSid=SM55555555555555555555555555555555&MessageStatus=failed&ErrorCode=63016"
      "&To=whatsapp%3A%2B15551234567&From=whatsapp%3A%2B14155238886")));
  BOOST_TEST(failed.idempotencyKey == "status:SM55555555555555555555555555555555:failed");
  BOOST_TEST(meta(failed, "status") == "failed");
  BOOST_TEST(meta(failed, "error") == "63016");
  // An inbound message carrying a status field and a Body is a message, not a status.
  const core::InboundMessage inbound = only(source->handle(
      signedPost("MessageSid=SM66666666666666666666666666666666&MessageStatus=received&Body=hi"
                 "&From=whatsapp%3A%2B15551234567&To=whatsapp%3A%2B14155238886")));
  BOOST_TEST(meta(inbound, "kind") == "text");
  BOOST_TEST(inbound.idempotencyKey == "SM66666666666666666666666666666666");
}

BOOST_AUTO_TEST_CASE(get_webhook_signs_the_query) {
  auto source = makeSource();
  core::HttpRequest r = post("", nullptr);
  r.method = "GET";
  r.query = "MessageSid=SM77777777777777777777777777777777&From=whatsapp%3A%2B15551234567&Body=hi";
  const std::string sig =
      tw::computeSignature(kToken, "https://engine.example.org/webhooks/twilio?" + r.query, {});
  r.headers.push_back({"X-Twilio-Signature", sig});
  const core::InboundMessage m = only(source->handle(r));
  BOOST_TEST(m.idempotencyKey == "SM77777777777777777777777777777777");
  BOOST_TEST(m.body == r.query);
  BOOST_TEST(meta(m, "sender") == "+15551234567");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(bad_input)

BOOST_AUTO_TEST_CASE(authenticated_body_without_message_sid_is_rejected_and_kept) {
  auto source = makeSource();
  const std::string body = "From=whatsapp%3A%2B15551234567&Body=hi";
  auto v = source->handle(signedPost(body));
  BOOST_TEST((v.kind == Kind::kReject));
  BOOST_TEST(v.reply.status == 422);
  BOOST_REQUIRE_EQUAL(v.messages.size(), 1u);
  BOOST_TEST(v.messages[0].body == body);
}

BOOST_AUTO_TEST_CASE(malformed_json_with_valid_hash_and_signature_is_rejected_400) {
  auto source = makeSource();
  const std::string body = "{\"MessageSid\":";
  core::HttpRequest r = post(body, nullptr);
  r.headers.front().value = "application/json";
  r.query = "bodySHA256=" + tw::sha256Hex(body);
  r.headers.push_back(
      {"X-Twilio-Signature",
       tw::computeSignature(kToken, "https://engine.example.org/webhooks/twilio?" + r.query, {})});
  auto v = source->handle(r);
  BOOST_TEST((v.kind == Kind::kReject));
  BOOST_TEST(v.reply.status == 400);
  BOOST_REQUIRE_EQUAL(v.messages.size(), 1u);
  BOOST_TEST(v.messages[0].body == body);
}

BOOST_AUTO_TEST_CASE(other_methods_are_refused_or_not_allowed) {
  auto source = makeSource();
  core::HttpRequest r = post("MessageSid=SM1&Body=x", nullptr);
  r.method = "PUT";
  // Only POST bodies are signed parameters; for other methods the signature covers the URL.
  r.headers.push_back(
      {"X-Twilio-Signature",
       tw::computeSignature(kToken, "https://engine.example.org/webhooks/twilio", {})});
  auto v = source->handle(r);
  BOOST_TEST((v.kind == Kind::kRespond));
  BOOST_TEST(v.reply.status == 405);
  r.headers.pop_back();  // unsigned: refused before anything else
  BOOST_TEST(refused(source->handle(r)));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(config)

BOOST_AUTO_TEST_CASE(a_token_is_required_and_public_url_is_checked) {
  auto none = tryCreate(R"({"path":"/webhooks/twilio"})");
  BOOST_REQUIRE(!none.has_value());
  BOOST_TEST(none.error().message.find("/source/auth_tokens") != std::string::npos);
  BOOST_TEST(!tryCreate(R"({"path":"/webhooks/twilio","auth_tokens":[]})").has_value());
  BOOST_TEST(!tryCreate(R"({"path":"/webhooks/twilio","auth_tokens":["a",""]})").has_value());
  BOOST_TEST(!tryCreate(R"({"path":"/webhooks/twilio","auth_tokens":"a"})").has_value());
  auto query = tryCreate(
      R"({"path":"/webhooks/twilio","auth_token":"a","public_url":"https://e.example/webhooks/twilio?x=1"})");
  BOOST_REQUIRE(!query.has_value());
  BOOST_TEST(query.error().message.find("/source/public_url") != std::string::npos);
  BOOST_TEST(
      !tryCreate(R"({"path":"/webhooks/twilio","auth_token":"a","public_url":"e.example/x"})")
           .has_value());
  auto unknown = tryCreate(R"({"path":"/webhooks/twilio","auth_token":"a","authtoken":"b"})");
  BOOST_REQUIRE(!unknown.has_value());
  BOOST_TEST(unknown.error().message.find("authtoken") != std::string::npos);
  BOOST_TEST(tryCreate(R"({"path":"/webhooks/twilio","auth_token":"a","max_body_bytes":2048})")
                 .has_value());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(senders_normalise_to_e164) {
  BOOST_TEST(tw::normalizeSender("whatsapp:+15551234567") == "+15551234567");
  BOOST_TEST(tw::normalizeSender("WhatsApp:+15551234567") == "+15551234567");
  BOOST_TEST(tw::normalizeSender("+15551234567") == "+15551234567");
  BOOST_TEST(tw::normalizeSender("whatsapp:15551234567") == "+15551234567");
  BOOST_TEST(tw::normalizeSender("messenger:1234567890") == "");
  BOOST_TEST(tw::normalizeSender("whatsapp:") == "");
  BOOST_TEST(tw::normalizeSender("") == "");
}

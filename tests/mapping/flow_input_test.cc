// Finding the Flow response in bare, Meta and 8x8 inputs.
#include <boost/test/unit_test.hpp>

#include "engine/mapping/flow_input.h"
#include "test_util.h"

namespace switchboard::mapping {

namespace {
std::string field(const FlowInput& in, const char* name) {
  const auto* v = in.root.json();
  if (!v || !v->HasMember(name) || !(*v)[name].IsString()) return "<none>";
  return (*v)[name].GetString();
}
}  // namespace

BOOST_AUTO_TEST_SUITE(flow_input)

BOOST_AUTO_TEST_CASE(seed_8x8_body) {
  auto in = normalizeFlowInput(
      test::readFile(test::sourceDir() + "/tests/data/mapping/seed-8x8-flow-submission.json"));
  BOOST_REQUIRE_MESSAGE(in.has_value(), (in ? std::string() : in.error().message));
  BOOST_TEST(in->format == "8x8");
  BOOST_TEST(in->sender == "+15551234567");
  BOOST_TEST(in->messageId == "health-xyz-789");
  BOOST_TEST(field(*in, "patient_first_name") == "Emily");
  BOOST_TEST(in->location == "/payload/content/interactive/nfmReply/responseJson");
}

BOOST_AUTO_TEST_CASE(meta_webhook_and_message_item) {
  const std::string body =
      test::readFile(test::sourceDir() + "/tests/data/mapping/meta-flow-submission.json");
  auto in = normalizeFlowInput(body);
  BOOST_REQUIRE_MESSAGE(in.has_value(), (in ? std::string() : in.error().message));
  BOOST_TEST(in->format == "meta-webhook");
  BOOST_TEST(in->sender == "+15551234567");
  BOOST_TEST(field(*in, "time_slot") == "1000");
  auto doc = test::parse(body);
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  doc["entry"][0]["changes"][0]["value"]["messages"][0].Accept(w);
  auto item = normalizeFlowInput(sb.GetString());
  BOOST_REQUIRE(item);
  BOOST_TEST(item->format == "meta-message");
  BOOST_TEST(field(*item, "time_slot") == "1000");
}

BOOST_AUTO_TEST_CASE(lowercase_8x8_v2_with_object_response) {
  auto in = normalizeFlowInput(R"({"eventType":"inbound_message_received","payload":{"umid":"u1",
    "user":{"msisdn":"+447700900123"},"type":"interactive",
    "content":{"interactive":{"type":"nfm_reply","nfm_reply":{"response_json":{"a":"b"}}}}}})");
  BOOST_REQUIRE_MESSAGE(in.has_value(), (in ? std::string() : in.error().message));
  BOOST_TEST(in->sender == "+447700900123");
  BOOST_TEST(field(*in, "a") == "b");
}

BOOST_AUTO_TEST_CASE(bare_response) {
  auto in = normalizeFlowInput(R"({"flow_token":"t","a":"b"})");
  BOOST_REQUIRE(in);
  BOOST_TEST(in->format == "flow-response");
  BOOST_TEST(in->sender.empty());
}

BOOST_AUTO_TEST_CASE(malformed_response_json_names_its_pointer) {
  auto in = normalizeFlowInput(
      R"({"namespace":"ChatApps","eventType":"inbound_message_received","payload":{
    "type":"Interactive","content":{"interactive":{"type":"nfmReply","nfmReply":{"responseJson":"{\"a\": "}}}}})");
  BOOST_REQUIRE(!in);
  BOOST_TEST(static_cast<int>(in.error().code) == static_cast<int>(ErrorCode::kStructure));
  BOOST_TEST(in.error().location == "/payload/content/interactive/nfmReply/responseJson");
  BOOST_TEST(in.error().message.find("is not valid JSON") != std::string::npos);
  auto notObject =
      normalizeFlowInput(R"({"from":"1555","type":"interactive","interactive":{"type":"nfm_reply",
    "nfm_reply":{"response_json":"[1,2]"}}})");
  BOOST_REQUIRE(!notObject);
  BOOST_TEST(notObject.error().message ==
             "/interactive/nfm_reply/response_json is not a JSON object");
}

BOOST_AUTO_TEST_CASE(webhooks_without_a_flow_reply) {
  auto text = normalizeFlowInput(
      R"({"object":"whatsapp_business_account","entry":[{"id":"0","changes":[{"field":"messages",
    "value":{"messages":[{"from":"16315551181","id":"A","type":"text","text":{"body":"hi"}}]}}]}]})");
  BOOST_REQUIRE(!text);
  BOOST_TEST(static_cast<int>(text.error().code) == static_cast<int>(ErrorCode::kInvalid));
  auto status =
      normalizeFlowInput(R"({"eventType":"outbound_message_status_changed","payload":{}})");
  BOOST_REQUIRE(!status);
  BOOST_TEST(status.error().location == "/eventType");
  BOOST_TEST(!normalizeFlowInput("not json"));
  BOOST_TEST(!normalizeFlowInput("[1]"));
}

BOOST_AUTO_TEST_CASE(e164) {
  BOOST_TEST(normalizeE164("15551234567") == "+15551234567");
  BOOST_TEST(normalizeE164("whatsapp:+15551234567") == "+15551234567");
  BOOST_TEST(normalizeE164("+1 (555) 123-4567") == "+15551234567");
  BOOST_TEST(normalizeE164("US.13491208655302741918").empty());  // a BSUID
  BOOST_TEST(normalizeE164("123").empty());
  BOOST_TEST(normalizeE164("").empty());
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace switchboard::mapping

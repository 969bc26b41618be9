// The `conditional-update` stage: conditional creates of the listed types become conditional
// updates (PUT [type]?[search]); other entries, and other payloads, are left or refused.
#include <boost/test/unit_test.hpp>

#include <rapidjson/document.h>
#include <rapidjson/pointer.h>

#include "channels/scheduling/register.h"
#include "engine/core/config.h"

namespace core = switchboard::core;

namespace {

switchboard::Result<std::unique_ptr<core::Stage>> makeStage(const std::string& json) {
  static rapidjson::Document doc;
  doc.Parse(json.c_str());
  BOOST_REQUIRE(!doc.HasParseError());
  core::ConnectorRegistry registry;
  switchboard::channels::registerSchedulingConnectors(registry);
  const auto* factory = registry.stage("conditional-update");
  BOOST_REQUIRE(factory != nullptr);
  core::ConfigReader reader(doc, "conf/channels/scheduling.json", "/transformer/1");
  reader.skip("type");
  return (*factory)(reader, core::ConnectorContext{"scheduling", "/tmp", "/tmp"});
}

std::string at(const rapidjson::Document& d, const char* pointer) {
  const rapidjson::Value* v = rapidjson::Pointer(pointer).Get(d);
  return v == nullptr ? "<absent>" : (v->IsString() ? v->GetString() : "<not a string>");
}

const char* kBundle = R"({"resourceType":"Bundle","type":"transaction","entry":[
  {"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient"},
   "request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:x|P%2C1,urn:y|T1"}},
  {"fullUrl":"urn:uuid:2","resource":{"resourceType":"Location"},
   "request":{"method":"POST","url":"Location","ifNoneExist":"identifier=urn:f|north"}},
  {"fullUrl":"urn:uuid:3","resource":{"resourceType":"Appointment"},
   "request":{"method":"POST","url":"Appointment","ifNoneExist":"identifier=urn:a|A1"}},
  {"fullUrl":"urn:uuid:4","resource":{"resourceType":"Appointment"},
   "request":{"method":"POST","url":"Appointment"}}]})";

}  // namespace

BOOST_AUTO_TEST_SUITE(conditional_update)

BOOST_AUTO_TEST_CASE(listed_conditional_creates_become_conditional_updates) {
  auto stage =
      makeStage(R"({"type":"conditional-update","resource_types":["Patient","Appointment"]})");
  BOOST_REQUIRE(stage.has_value());
  core::PipelineMessage m;
  m.payload = kBundle;
  auto r = (*stage)->process(m);
  BOOST_REQUIRE((r.kind == core::StageResult::Kind::kContinue));
  rapidjson::Document d;
  d.Parse(m.payload.c_str());
  BOOST_REQUIRE(!d.HasParseError());
  BOOST_TEST(at(d, "/entry/0/request/method") == "PUT");
  BOOST_TEST(at(d, "/entry/0/request/url") == "Patient?identifier=urn:x|P%2C1,urn:y|T1");
  BOOST_TEST(at(d, "/entry/0/request/ifNoneExist") == "<absent>");
  BOOST_TEST(at(d, "/entry/0/fullUrl") == "urn:uuid:1");
  // Location is not listed: still a conditional create.
  BOOST_TEST(at(d, "/entry/1/request/method") == "POST");
  BOOST_TEST(at(d, "/entry/1/request/ifNoneExist") == "identifier=urn:f|north");
  BOOST_TEST(at(d, "/entry/2/request/method") == "PUT");
  BOOST_TEST(at(d, "/entry/2/request/url") == "Appointment?identifier=urn:a|A1");
  // A plain create has no search to update by: left alone.
  BOOST_TEST(at(d, "/entry/3/request/method") == "POST");
  BOOST_TEST(at(d, "/entry/3/request/url") == "Appointment");
  BOOST_REQUIRE_EQUAL(m.events.size(), 1u);
  BOOST_TEST(m.events[0].second == "2 entries made conditional updates");
}

BOOST_AUTO_TEST_CASE(a_payload_that_is_not_a_bundle_fails) {
  auto stage = makeStage(R"({"type":"conditional-update","resource_types":["Patient"]})");
  BOOST_REQUIRE(stage.has_value());
  for (const char* payload : {"not json", R"({"resourceType":"Patient"})", "[]",
                              R"({"resourceType":"Bundle","entry":{}})"}) {
    core::PipelineMessage m;
    m.payload = payload;
    auto r = (*stage)->process(m);
    BOOST_TEST((r.kind == core::StageResult::Kind::kFail), payload);
    BOOST_TEST(m.payload == payload);
  }
}

BOOST_AUTO_TEST_CASE(config_needs_resource_types) {
  BOOST_TEST(!makeStage(R"({"type":"conditional-update"})").has_value());
  BOOST_TEST(!makeStage(R"({"type":"conditional-update","resource_types":[]})").has_value());
  BOOST_TEST(!makeStage(R"({"type":"conditional-update","resource_types":["Patient"],"x":1})")
                  .has_value());
}

BOOST_AUTO_TEST_SUITE_END()

// The "mapping" stage through the connector registry: config, metadata variables, failures and
// reload of a changed mapping file (the previous version stays when the new one is broken).
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>

#include "engine/mapping/register.h"
#include "test_util.h"

namespace switchboard::mapping {
namespace fs = std::filesystem;
namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("sb-mapping-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(reinterpret_cast<std::uintptr_t>(this)));
    fs::create_directories(path / "conf");
    fs::create_directories(path / "maps");
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

Result<std::unique_ptr<core::Stage>> makeStage(const std::string& configJson,
                                               const std::string& confDir) {
  core::ConnectorRegistry registry;
  registerMappingStages(registry);
  const auto* factory = registry.stage("mapping");
  BOOST_REQUIRE(factory);
  static rapidjson::Document doc;
  doc.Parse(configJson.c_str());
  core::ConfigReader reader(doc, "channel.json", "/transformer");
  reader.skip("type");
  return (*factory)(reader, core::ConnectorContext{"ch", "", confDir});
}

const char* kMappingV1 =
    R"({"id":"m","input":"flow","resources":[{"key":"p","resource":{"resourceType":"Patient",
  "identifier":[{"system":"urn:switchboard:whatsapp","value":"{{ %sender }}"}],"name":[{"family":"{{ last }}"}],
  "meta":{"source":"{{ %channel }}"},"extension":[{"url":"urn:test:facility","valueString":"{{ %facility }}"},
  {"url":"urn:test:received","valueInstant":"{{ %receivedAt }}"}]}}]})";

}  // namespace

BOOST_AUTO_TEST_SUITE(mapping_stage)

BOOST_AUTO_TEST_CASE(maps_payload_with_metadata_variables) {
  TempDir dir;
  write(dir.path / "maps" / "m.json", kMappingV1);
  auto stage = makeStage(
      R"({"type":"mapping","file":"maps/m.json","variables":{"facility":"Clinic","timezone":"America/New_York"}})",
      (dir.path / "conf").string());
  BOOST_REQUIRE_MESSAGE(stage.has_value(), (stage ? std::string() : stage.error().message));
  core::StoredMessage stored;
  stored.channelId = "whatsapp-in";
  stored.receivedAtMs = 1770732000000;
  core::PipelineMessage pm;
  pm.message = &stored;
  pm.payload = R"({"last":"Chen"})";
  pm.contentType = "application/json";
  core::setMetadata(pm.metadata, "sender", "+15551234567");
  core::setMetadata(pm.metadata, "kind", "flow");
  auto r = (*stage)->process(pm);
  BOOST_REQUIRE(r.kind == core::StageResult::Kind::kContinue);
  BOOST_TEST(pm.contentType == "application/fhir+json");
  auto b = test::parse(pm.payload);
  const auto& p = b["entry"][0]["resource"];
  BOOST_TEST(p["identifier"][0]["value"] == "+15551234567");
  BOOST_TEST(p["meta"]["source"] == "whatsapp-in");
  BOOST_TEST(p["extension"][0]["valueString"] == "Clinic");
  BOOST_TEST(p["extension"][1]["valueInstant"] == "2026-02-10T14:00:00.000Z");
}

BOOST_AUTO_TEST_CASE(failure_and_kinds) {
  TempDir dir;
  write(dir.path / "maps" / "m.json", kMappingV1);
  auto stage = makeStage(R"({"type":"mapping","file":")" + (dir.path / "maps" / "m.json").string() +
                             R"(","kinds":["flow"]})",
                         "");
  BOOST_REQUIRE_MESSAGE(stage.has_value(), (stage ? std::string() : stage.error().message));
  core::PipelineMessage pm;
  pm.payload = "{not json";
  core::setMetadata(pm.metadata, "kind", "flow");
  auto r = (*stage)->process(pm);
  BOOST_REQUIRE(r.kind == core::StageResult::Kind::kFail);
  BOOST_TEST(r.error.message.starts_with("mapping m: input: invalid JSON"));
  core::PipelineMessage status;
  status.payload = "{}";
  core::setMetadata(status.metadata, "kind", "status");
  BOOST_TEST(static_cast<int>((*stage)->process(status).kind) ==
             static_cast<int>(core::StageResult::Kind::kDrop));
}

BOOST_AUTO_TEST_CASE(bad_config_is_rejected_at_deploy) {
  TempDir dir;
  const std::string conf = (dir.path / "conf").string();
  auto missing = makeStage(R"({"type":"mapping","file":"maps/none.json"})", conf);
  BOOST_REQUIRE(!missing);
  BOOST_TEST(missing.error().message.find("/transformer/file") != std::string::npos);
  write(dir.path / "maps" / "m.json", kMappingV1);
  BOOST_TEST(!makeStage(R"({"type":"mapping","file":"maps/m.json","varz":{}})", conf));
  BOOST_TEST(!makeStage(
      R"({"type":"mapping","file":"maps/m.json","variables":{"timezone":"Nowhere/Land"}})", conf));
}

BOOST_AUTO_TEST_CASE(reloads_changed_file_and_keeps_previous_on_error) {
  TempDir dir;
  const fs::path file = dir.path / "maps" / "m.json";
  write(file, kMappingV1);
  auto stage = makeStage(R"({"type":"mapping","file":"maps/m.json","reload_interval_ms":0})",
                         (dir.path / "conf").string());
  BOOST_REQUIRE(stage);
  auto runOnce = [&] {
    core::PipelineMessage pm;
    pm.payload = R"({"last":"Chen"})";
    core::setMetadata(pm.metadata, "sender", "+15551234567");
    auto r = (*stage)->process(pm);
    BOOST_REQUIRE(r.kind == core::StageResult::Kind::kContinue);
    return test::parse(pm.payload);
  };
  BOOST_TEST(runOnce()["entry"][0]["resource"]["resourceType"] == "Patient");
  auto bump = [&] {
    fs::last_write_time(file, fs::last_write_time(file) + std::chrono::seconds(2));
  };
  write(
      file,
      R"({"id":"m2","input":"flow","resources":[{"key":"p","resource":{"resourceType":"Person","name":[{"family":"{{ last }}"}]}}]})");
  bump();
  BOOST_TEST(runOnce()["entry"][0]["resource"]["resourceType"] == "Person");
  write(
      file,
      R"({"id":"m3","resources":[{"key":"p","resource":{"resourceType":"X","a":"{{ broken( }}"}}]})");
  bump();
  BOOST_TEST(runOnce()["entry"][0]["resource"]["resourceType"] ==
             "Person");  // the broken edit is ignored
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace switchboard::mapping

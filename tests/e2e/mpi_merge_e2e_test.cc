// A reviewer's MPI merge reaches the EHR as FHIR, end to end with real parts: the `switchboard`
// binary runs a patient channel (http source, `mpi` stage, `fhir` destination) and the merge
// channel named by "mpi": {"merge_channel"} (passthrough, `fhir` destination); a real FHIR R4
// server (Medplum's FhirRouter over MemoryRepository, validating every resource) is the EHR.
// The EHR knows patients by its own ids and the enterprise identifier only, so the tests read
// everything back from the server: Patient.link replaces / replaced-by between the EHR's own
// records, the retired one inactive, no duplicate created, and an undo restoring both.
// Single-threaded test driver; the engine and the server are child processes on 127.0.0.1.
#define BOOST_TEST_MODULE mpi_merge_e2e
#include <boost/test/unit_test.hpp>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "tests/e2e/engine_process.h"
#include "tests/support/node_peer.h"

namespace fs = std::filesystem;
using namespace switchboard::e2e;
using switchboard::testing::NodePeer;
using switchboard::testing::peerRequest;

namespace {

const std::vector<std::pair<std::string, std::string>> kAdmin = {
    {"Authorization", "Bearer e2e-admin-token"}};
const std::string kEnterprise = "urn:switchboard:mpi:enterprise-id";

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  return d;
}

std::string str(const rapidjson::Value& v, const char* key) {
  return v.IsObject() && v.HasMember(key) && v[key].IsString() ? v[key].GetString() : "";
}

// A submission as the channel receives it: a transaction Bundle creating the Patient.
std::string submission(const std::string& id, const std::string& given, const std::string& dob,
                       const std::string& phone, const std::string& line, const std::string& zip) {
  return R"({"resourceType": "Bundle", "id": ")" + id + R"(", "type": "transaction", "entry": [{
    "fullUrl": "urn:uuid:5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f",
    "resource": {"resourceType": "Patient", "name": [{"family": "O'Neil", "given": [")" +
         given + R"("]}],
      "birthDate": ")" +
         dob + R"(", "gender": "female",
      "telecom": [{"system": "phone", "value": ")" +
         phone + R"("}],
      "address": [{"line": [")" +
         line + R"("], "city": "Austin", "postalCode": ")" + zip + R"("}]},
    "request": {"method": "POST", "url": "Patient"}}]})";
}

// Katherine, then the same woman a month later: one digit of the birth date off, another phone
// and street. The shipped conf/mpi.json sends this pair to review.
const std::string kKatherine =
    submission("sub-1", "Katherine", "1975-05-20", "512 555 0101", "14 Cedar Street", "73301");
const std::string kKatherineMoved =
    submission("sub-2", "Katherine", "1975-05-21", "512 555 0199", "9 Elm Road", "78701");

// A Patient as the EHR holds it.
struct EhrPatient {
  std::string id;  // the EHR's id
  std::string enterpriseId;
  bool hasActive = false;
  bool active = false;
  std::vector<std::pair<std::string, std::string>> links;  // (type, reference)
};

struct MergeWorld {
  NodePeer fhir{"fhir-server.mjs"};
  std::unique_ptr<EngineProcess> engine;

  explicit MergeWorld(const std::string& onPossibleMatch) {
    BOOST_REQUIRE_MESSAGE(fhir.error().empty(), fhir.error());
    engine = std::make_unique<EngineProcess>("mpi-merge-" + onPossibleMatch, R"({
      "http": {"bind": "127.0.0.1", "threads": 8},
      "workers": {"pipeline_threads": 1, "delivery_threads": 2, "lease_ms": 5000, "idle_poll_ms": 50},
      "mpi": {"merge_channel": "mpi-merge"}
    })");
    fs::copy_file(NodePeer::sourceDir() / "conf" / "mpi.json", engine->dir() / "conf" / "mpi.json");
    const std::string retry =
        R"("retry": {"max_attempts": 5, "initial_backoff_ms": 100, "max_backoff_ms": 1000})";
    const std::string ehr = R"({"name": "ehr", "type": "fhir", "base_url": ")" + fhir.baseUrl() +
                            R"(", "prefer": "minimal", "timeout_ms": 10000})";
    engine->addChannel("patients.json", R"({"id": "patients",
      "source": {"type": "http", "path": "/in/patients", "idempotency_pointer": "/id"},
      "transformer": [{"type": "mpi", "on_possible_match": ")" +
                                            onPossibleMatch + R"("}],
      "destinations": [)" + ehr + "], " + retry +
                                            "}");
    // Only the engine itself fills this channel (ingestInternal); its path refuses outsiders.
    engine->addChannel("mpi-merge.json", R"({"id": "mpi-merge",
      "source": {"type": "http", "path": "/internal/mpi-merge", "secret_header": "X-Internal",
                 "secret": "not-for-callers-3f9a"},
      "transformer": {"type": "passthrough"},
      "destinations": [)" + ehr + "], " + retry +
                                             "}");
    BOOST_REQUIRE_MESSAGE(engine->start(), "engine did not start: " + engine->stderrText());
  }

  Response admin(const std::string& method, const std::string& path, const std::string& body = {}) {
    auto headers = kAdmin;
    headers.push_back({"X-Switchboard-User", "ana"});
    if (!body.empty()) headers.push_back({"Content-Type", "application/json"});
    return http(engine->port(), method, path, body, headers);
  }

  long long post(const std::string& body) {
    auto r = http(engine->port(), "POST", "/in/patients", body,
                  {{"Content-Type", "application/fhir+json"}});
    BOOST_REQUIRE_EQUAL(r.status, 200);
    auto it = r.headers.find("X-Switchboard-Message-Ids");
    BOOST_REQUIRE(it != r.headers.end());
    return std::stoll(it->second);
  }

  std::string messageStatus(long long id) {
    return jsonString(admin("GET", "/api/messages/" + std::to_string(id)).body, "status");
  }

  // Status of the message's only delivery ("" until created).
  std::string deliveryStatus(long long id) {
    auto d = parse(admin("GET", "/api/messages/" + std::to_string(id)).body);
    if (!d.IsObject() || !d.HasMember("deliveries") || d["deliveries"].Empty()) return "";
    return str(d["deliveries"][d["deliveries"].Size() - 1], "status");
  }

  // Waits until the message's latest delivery succeeded; fails with the message's history.
  void waitDelivered(long long id) {
    BOOST_REQUIRE_MESSAGE(
        waitFor([&] { return deliveryStatus(id) == "succeeded"; }, 60),
        "message " + std::to_string(id) +
            " not delivered: " + admin("GET", "/api/messages/" + std::to_string(id)).body +
            "\nFHIR server: " + peerRequest(fhir.port(), "GET", "/_control/stats").body);
  }

  // Ids of the merge channel's messages, oldest first.
  std::vector<long long> mergeMessages() {
    auto d = parse(admin("GET", "/api/messages?channel=mpi-merge&limit=100").body);
    std::vector<long long> out;
    if (!d.IsObject() || !d.HasMember("items")) return out;
    for (const auto& m : d["items"].GetArray()) out.insert(out.begin(), m["id"].GetInt64());
    return out;
  }

  // Every Patient on the EHR, by enterprise id.
  std::map<std::string, EhrPatient> ehrPatients() {
    auto d = parse(peerRequest(fhir.port(), "GET", "/Patient?_count=100").body);
    std::map<std::string, EhrPatient> out;
    BOOST_REQUIRE(d.IsObject());
    if (!d.HasMember("entry")) return out;
    for (const auto& e : d["entry"].GetArray()) {
      const auto& r = e["resource"];
      EhrPatient p;
      p.id = str(r, "id");
      if (r.HasMember("identifier")) {
        for (const auto& i : r["identifier"].GetArray()) {
          if (str(i, "system") == kEnterprise) {
            BOOST_TEST(p.enterpriseId.empty());  // one enterprise id per EHR Patient
            p.enterpriseId = str(i, "value");
          }
        }
      }
      p.hasActive = r.HasMember("active");
      p.active = p.hasActive && r["active"].GetBool();
      if (r.HasMember("link")) {
        for (const auto& l : r["link"].GetArray())
          p.links.push_back({str(l, "type"), str(l["other"], "reference")});
      }
      BOOST_REQUIRE_MESSAGE(!out.contains(p.enterpriseId),
                            "two EHR Patients for enterprise " + p.enterpriseId);
      out[p.enterpriseId] = p;
    }
    return out;
  }

  // The only open review item, with both enterprise ids: {item id, submitted's, candidate's}.
  struct Item {
    long long id = 0;
    std::string leftGolden, rightGolden;
  };
  Item onlyOpenItem() {
    auto list = parse(admin("GET", "/api/mpi/reviews").body);
    BOOST_REQUIRE(list.IsObject() && list.HasMember("items"));
    BOOST_REQUIRE_EQUAL(list["items"].Size(), 1u);
    Item item;
    item.id = list["items"][0]["id"].GetInt64();
    auto detail = parse(admin("GET", "/api/mpi/reviews/" + std::to_string(item.id)).body);
    BOOST_REQUIRE(detail.IsObject() && detail.HasMember("left"));
    item.leftGolden = str(detail["left"], "goldenId");
    item.rightGolden = str(detail["right"], "goldenId");
    BOOST_REQUIRE(!item.leftGolden.empty() && !item.rightGolden.empty());
    return item;
  }

  int validationErrors() {
    auto s = parse(peerRequest(fhir.port(), "GET", "/_control/stats").body);
    return s.IsObject() && s.HasMember("validationErrors")
               ? static_cast<int>(s["validationErrors"].Size())
               : -1;
  }
};

// The merge answer's Bundle went through the merge channel: wait for its delivery.
long long waitMergeDelivered(MergeWorld& w, size_t count) {
  BOOST_REQUIRE_MESSAGE(waitFor([&] { return w.mergeMessages().size() >= count; }, 10),
                        "the merge Bundle was not queued: " + w.engine->stderrText());
  const long long id = w.mergeMessages().at(count - 1);
  w.waitDelivered(id);
  return id;
}

// After a merge of `from` into `into`: the EHR's own records point at each other.
void expectMerged(MergeWorld& w, const std::string& into, const std::string& from) {
  auto ehr = w.ehrPatients();
  BOOST_REQUIRE(ehr.contains(into));
  BOOST_REQUIRE(ehr.contains(from));
  const auto& survivor = ehr[into];
  const auto& retired = ehr[from];
  BOOST_TEST(survivor.active);
  BOOST_TEST(retired.hasActive);
  BOOST_TEST(!retired.active);
  BOOST_REQUIRE_EQUAL(survivor.links.size(), 1u);
  BOOST_TEST(survivor.links[0].first == "replaces");
  BOOST_TEST(survivor.links[0].second == "Patient/" + retired.id);
  BOOST_REQUIRE_EQUAL(retired.links.size(), 1u);
  BOOST_TEST(retired.links[0].first == "replaced-by");
  BOOST_TEST(retired.links[0].second == "Patient/" + survivor.id);
}

void expectRestored(MergeWorld& w, const std::string& a, const std::string& b) {
  auto ehr = w.ehrPatients();
  BOOST_REQUIRE(ehr.contains(a));
  BOOST_REQUIRE(ehr.contains(b));
  for (const auto& id : {a, b}) {
    BOOST_TEST(ehr[id].active);
    BOOST_TEST(ehr[id].links.empty());
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(
    held_duplicate_merged_by_a_reviewer_lands_on_the_ehr_patient_and_undo_restores) {
  MergeWorld w("hold");
  const long long first = w.post(kKatherine);
  w.waitDelivered(first);
  auto ehr = w.ehrPatients();
  BOOST_REQUIRE_EQUAL(ehr.size(), 1u);
  const std::string katherine = ehr.begin()->first;
  const std::string katherineEhrId = ehr.begin()->second.id;

  // The near-duplicate is held for review: nothing reaches the EHR.
  const long long second = w.post(kKatherineMoved);
  BOOST_REQUIRE_MESSAGE(waitFor([&] { return w.messageStatus(second) == "error"; }, 30),
                        w.admin("GET", "/api/messages/" + std::to_string(second)).body);
  BOOST_TEST(
      w.admin("GET", "/api/messages/" + std::to_string(second)).body.find("held for review") !=
      std::string::npos);
  BOOST_TEST(w.ehrPatients().size() == 1u);

  auto item = w.onlyOpenItem();
  BOOST_TEST(item.rightGolden == katherine);
  const std::string path = "/api/mpi/reviews/" + std::to_string(item.id);
  // Without the admin token nothing is decided and nothing is sent.
  BOOST_TEST(
      http(w.engine->port(), "POST", path + "/decision", R"({"decision": "merge"})").status == 401);

  auto merged = w.admin("POST", path + "/decision",
                        R"({"decision": "merge", "reason": "same woman, moved"})");
  BOOST_REQUIRE_EQUAL(merged.status, 200);
  BOOST_TEST(parse(merged.body)["bundle"].IsObject());
  // The answer tells the reviewer the EHR update is queued, and as which message.
  auto mergedAnswer = parse(merged.body);
  BOOST_REQUIRE(mergedAnswer.HasMember("ehrUpdate"));
  BOOST_TEST(mergedAnswer["ehrUpdate"]["queued"].GetBool());
  BOOST_TEST(std::string(mergedAnswer["ehrUpdate"]["channel"].GetString()) == "mpi-merge");
  BOOST_TEST(mergedAnswer["ehrUpdate"]["messageId"].GetInt64() > 0);
  waitMergeDelivered(w, 1);
  // The retired enterprise record never reached the EHR before: the conditional update creates
  // it, inactive and replaced-by the survivor, which keeps its EHR id.
  expectMerged(w, katherine, item.leftGolden);
  BOOST_TEST(w.ehrPatients()[katherine].id == katherineEhrId);

  // The held submission, replayed after the decision, lands on the survivor: no new Patient.
  BOOST_REQUIRE_EQUAL(w.admin("POST", "/api/messages/" + std::to_string(second) + "/replay").status,
                      202);
  w.waitDelivered(second);
  BOOST_TEST(w.ehrPatients().size() == 2u);
  expectMerged(w, katherine, item.leftGolden);

  // Undo: both records active again on the EHR, links gone, same EHR ids.
  auto undone = w.admin("POST", path + "/undo", R"({"reason": "two different women after all"})");
  BOOST_REQUIRE_EQUAL(undone.status, 200);
  BOOST_TEST(std::string(parse(undone.body)["item"]["status"].GetString()) == "open");
  waitMergeDelivered(w, 2);
  expectRestored(w, katherine, item.leftGolden);
  BOOST_TEST(w.ehrPatients()[katherine].id == katherineEhrId);
  BOOST_TEST(w.validationErrors() == 0);
  BOOST_TEST(w.engine->terminate() == 0);
}

BOOST_AUTO_TEST_CASE(merge_of_two_patients_already_in_the_ehr_updates_them_in_place) {
  MergeWorld w("create");
  w.waitDelivered(w.post(kKatherine));
  w.waitDelivered(w.post(kKatherineMoved));  // created provisionally as a second patient
  auto before = w.ehrPatients();
  BOOST_REQUIRE_EQUAL(before.size(), 2u);
  auto item = w.onlyOpenItem();
  BOOST_REQUIRE(before.contains(item.leftGolden));
  BOOST_REQUIRE(before.contains(item.rightGolden));

  const std::string path = "/api/mpi/reviews/" + std::to_string(item.id);
  BOOST_REQUIRE_EQUAL(w.admin("POST", path + "/decision", R"({"decision": "merge"})").status, 200);
  waitMergeDelivered(w, 1);
  expectMerged(w, item.rightGolden, item.leftGolden);
  auto after = w.ehrPatients();
  BOOST_TEST(after.size() == 2u);  // updated where they are, nothing created
  BOOST_TEST(after[item.leftGolden].id == before[item.leftGolden].id);
  BOOST_TEST(after[item.rightGolden].id == before[item.rightGolden].id);
  // The survivor carries both sources' phones (survivorship union).
  auto survivor =
      parse(peerRequest(w.fhir.port(), "GET", "/Patient/" + after[item.rightGolden].id).body);
  BOOST_TEST(survivor["telecom"].Size() == 2u);

  // A not-duplicate decision sends nothing.
  BOOST_REQUIRE_EQUAL(w.admin("POST", path + "/undo").status, 200);
  waitMergeDelivered(w, 2);
  expectRestored(w, item.rightGolden, item.leftGolden);
  auto nd =
      w.admin("POST", path + "/decision", R"({"decision": "not-duplicate", "reason": "sisters"})");
  BOOST_REQUIRE_EQUAL(nd.status, 200);
  BOOST_TEST(parse(nd.body)["bundle"].IsNull());
  BOOST_TEST(w.mergeMessages().size() == 2u);
  BOOST_TEST(w.validationErrors() == 0);
  BOOST_TEST(w.engine->terminate() == 0);
}

BOOST_AUTO_TEST_CASE(a_merge_channel_that_is_not_loaded_stops_start_up) {
  EngineProcess engine("mpi-merge-missing", R"({"http": {"bind": "127.0.0.1"}, "mpi": {"merge_channel": "nowhere"}})");
  fs::copy_file(NodePeer::sourceDir() / "conf" / "mpi.json", engine.dir() / "conf" / "mpi.json");
  engine.addChannel("a.json", R"({"id": "a", "source": {"type": "http", "path": "/in/a"},
    "destinations": [{"name": "d", "type": "file", "directory": "o"}]})");
  BOOST_TEST(engine.runToExit() == 2);
  BOOST_TEST(engine.stderrText().find("/mpi/merge_channel") != std::string::npos, engine.stderrText());
}

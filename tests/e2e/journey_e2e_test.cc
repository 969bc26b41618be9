// The first complete journey, end to end with real parts: the `switchboard` binary runs the
// shipped conf/channels (Meta, 8x8, Twilio) and mapping; a real FHIR R4 server (Medplum's
// FhirRouter over MemoryRepository, validating every resource) receives the Bundles; local fakes
// of the vendors' send APIs receive the replies.
#define BOOST_TEST_MODULE journey_e2e
#include <boost/test/unit_test.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <rapidjson/document.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "tests/e2e/engine_process.h"
#include "tests/support/node_peer.h"
#include "tests/support/source_tests.h"

namespace fs = std::filesystem;
using namespace switchboard::e2e;
using switchboard::testing::NodePeer;
using switchboard::testing::peerRequest;

namespace {

const std::string kAdmin = "Bearer e2e-admin-token";
const std::string kMetaSecret = "meta-app-secret-for-e2e";
const std::string kEightAuth = "Bearer 8x8-webhook-key";
const std::string kTwilioToken = "twilio-auth-token-e2e";

using switchboard::testing::readTestFile;

fs::path source() { return NodePeer::sourceDir(); }

std::string hex(const unsigned char* data, unsigned len) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 15];
  }
  return out;
}

std::string metaSignature(const std::string& secret, const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  return "sha256=" + hex(mac, len);
}

std::string twilioSignature(const std::string& token, const std::string& url,
                            std::vector<std::pair<std::string, std::string>> params) {
  std::sort(params.begin(), params.end());
  std::string data = url;
  for (const auto& [k, v] : params) data += k + v;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(EVP_sha1(), token.data(), static_cast<int>(token.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac, &len);
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), mac, static_cast<int>(len));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string formEncode(const std::vector<std::pair<std::string, std::string>>& params) {
  auto enc = [](const std::string& s) {
    std::string out;
    static const char* h = "0123456789ABCDEF";
    for (unsigned char c : s) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out += static_cast<char>(c);
      else {
        out += '%';
        out += h[c >> 4];
        out += h[c & 15];
      }
    }
    return out;
  };
  std::string out;
  for (const auto& [k, v] : params) out += (out.empty() ? "" : "&") + enc(k) + "=" + enc(v);
  return out;
}

// Replaces every occurrence of `from` in `text`.
std::string replaceAll(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  return d;
}

int countOnServer(int port, const std::string& query) {
  auto r = peerRequest(port, "GET", query);
  auto d = parse(r.body);
  if (d.HasParseError() || !d.IsObject()) return -1;
  return d.HasMember("entry") ? static_cast<int>(d["entry"].Size()) : 0;
}

// Everything a journey needs: the FHIR server, the send-API fakes and an engine on the shipped
// configuration with all three vendor channels switched on.
struct Journey {
  NodePeer fhir{"fhir-server.mjs"};
  NodePeer vendors{"vendor-send.mjs",
                   {{"FAKE_META_TOKEN", "meta-access-token"},
                    {"FAKE_8X8_KEY", "8x8-api-key"},
                    {"FAKE_TWILIO_SID", "AC0123456789abcdef0123456789abcdef"},
                    {"FAKE_TWILIO_TOKEN", kTwilioToken}}};
  std::unique_ptr<EngineProcess> engine;

  Journey() {
    BOOST_REQUIRE_MESSAGE(fhir.error().empty(), fhir.error());
    BOOST_REQUIRE_MESSAGE(vendors.error().empty(), vendors.error());
    engine = std::make_unique<EngineProcess>("journey", readTestFile(source() / "conf" / "switchboard.json"));
    const fs::path conf = engine->dir() / "conf";
    for (const auto& entry : fs::directory_iterator(source() / "conf" / "channels")) {
      fs::copy_file(entry.path(), conf / "channels" / entry.path().filename());
    }
    fs::copy_file(source() / "conf" / "mpi.json", conf / "mpi.json");
    fs::create_directory_symlink(source() / "conf" / "replies", conf / "replies");
    fs::create_directory_symlink(source() / "mappings", engine->dir() / "mappings");
    std::map<std::string, std::string> env = {
        {"SWITCHBOARD_FHIR_BASE_URL", fhir.baseUrl()},
        {"SWITCHBOARD_META_APP_SECRET", kMetaSecret},
        {"SWITCHBOARD_META_VERIFY_TOKEN", "verify-me"},
        {"SWITCHBOARD_META_ACCESS_TOKEN", "meta-access-token"},
        {"SWITCHBOARD_META_API_BASE_URL", vendors.baseUrl()},
        {"SWITCHBOARD_8X8_AUTHORIZATION", kEightAuth},
        {"SWITCHBOARD_8X8_API_KEY", "8x8-api-key"},
        {"SWITCHBOARD_8X8_SUBACCOUNT_ID", "clinic-subaccount"},
        {"SWITCHBOARD_8X8_API_BASE_URL", vendors.baseUrl()},
        {"SWITCHBOARD_TWILIO_AUTH_TOKEN", kTwilioToken},
        {"SWITCHBOARD_TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"},
        {"SWITCHBOARD_TWILIO_API_BASE_URL", vendors.baseUrl()},
        {"SWITCHBOARD_CLINIC_PHONE", "+1 555 010 0199"},
    };
    for (const auto& [k, v] : env) engine->setEnv(k, v);
    BOOST_REQUIRE_MESSAGE(engine->start(), "engine did not start: " + engine->stderrText());
  }

  Response post8x8(const std::string& body, const std::string& auth = kEightAuth) {
    return http(engine->port(), "POST", "/webhooks/8x8", body, {{"Authorization", auth}, {"Content-Type", "application/json"}});
  }
  Response postMeta(const std::string& body, const std::string& signature) {
    return http(engine->port(), "POST", "/webhooks/whatsapp", body,
                {{"X-Hub-Signature-256", signature}, {"Content-Type", "application/json"}});
  }
  Response admin(const std::string& path) { return http(engine->port(), "GET", path, {}, {{"Authorization", kAdmin}}); }

  // Messages of a channel as stored (newest first), and one message's detail.
  int messageCount(const std::string& channel) {
    auto d = parse(admin("/api/messages?channel=" + channel + "&limit=500").body);
    return d.IsObject() && d.HasMember("items") ? static_cast<int>(d["items"].Size()) : -1;
  }
  // Status of the named delivery of message `id` ("" while not created).
  std::string deliveryStatus(long long id, const std::string& destination) {
    auto d = parse(admin("/api/messages/" + std::to_string(id)).body);
    if (!d.IsObject() || !d.HasMember("deliveries")) return "";
    for (const auto& del : d["deliveries"].GetArray()) {
      if (std::string(del["destination"].GetString()) == destination) return del["status"].GetString();
    }
    return "";
  }
  std::string messageDetail(long long id) { return admin("/api/messages/" + std::to_string(id)).body; }

  std::vector<std::string> sentReplies(const std::string& provider) {
    auto d = parse(peerRequest(vendors.port(), "GET", "/_control/requests").body);
    std::vector<std::string> out;
    if (!d.IsArray()) return out;
    for (const auto& r : d.GetArray()) {
      if (r.HasMember("provider") && provider == r["provider"].GetString() && r.HasMember("outboundId")) {
        out.push_back(r["body"].GetString());
      }
    }
    return out;
  }
};

long long firstMessageId(const Response& r) {
  auto it = r.headers.find("X-Switchboard-Message-Ids");
  if (it == r.headers.end()) return 0;
  return std::stoll(it->second.substr(0, it->second.find(',')));
}

std::string seed8x8() { return readTestFile(source() / "tests" / "data" / "8x8" / "flow_submission_seed.json"); }

// The seed's 8x8 submission as another submission: new umid, other day (a new Appointment).
std::string another8x8(const std::string& umid, const std::string& date) {
  return replaceAll(replaceAll(seed8x8(), "health-xyz-789", umid), "2026-02-12", date);
}

}  // namespace

BOOST_AUTO_TEST_CASE(flow_submissions_reach_the_ehr_as_valid_fhir_and_the_patient_is_answered) {
  Journey j;
  // 8x8: the seed's Flow submission.
  auto first = j.post8x8(seed8x8());
  BOOST_REQUIRE_EQUAL(first.status, 200);
  const long long id = firstMessageId(first);
  BOOST_REQUIRE(id > 0);
  BOOST_REQUIRE_MESSAGE(waitFor([&] { return j.deliveryStatus(id, "reply") == "succeeded"; }, 60), j.messageDetail(id));
  BOOST_TEST(j.deliveryStatus(id, "ehr") == "succeeded");
  // Mapped, validated against fhir-profiles, matched in the MPI, then sent.
  for (const char* event : {"\"mapped\"", "\"validated\"", "\"mpi\""}) {
    BOOST_TEST(j.messageDetail(id).find(event) != std::string::npos, event);
  }

  // The server holds valid resources with references resolved to its own ids.
  const int port = j.fhir.port();
  BOOST_TEST(countOnServer(port, "/Patient") == 1);
  BOOST_TEST(countOnServer(port, "/Coverage") == 1);
  BOOST_TEST(countOnServer(port, "/Appointment") == 1);
  BOOST_TEST(countOnServer(port, "/QuestionnaireResponse") == 1);
  auto patients = parse(peerRequest(port, "GET", "/Patient").body);
  const std::string patientRef = std::string("Patient/") + patients["entry"][0]["resource"]["id"].GetString();
  BOOST_TEST(std::string(patients["entry"][0]["resource"]["name"][0]["family"].GetString()) == "Chen");
  auto appts = parse(peerRequest(port, "GET", "/Appointment").body);
  const auto& appt = appts["entry"][0]["resource"];
  BOOST_TEST(std::string(appt["status"].GetString()) == "booked");
  BOOST_TEST(std::string(appt["start"].GetString()) == "2026-02-12T10:00:00-05:00");
  bool patientParticipant = false;
  for (const auto& p : appt["participant"].GetArray()) {
    if (p.HasMember("actor") && p["actor"].HasMember("reference") && patientRef == p["actor"]["reference"].GetString()) {
      patientParticipant = true;
    }
  }
  BOOST_TEST(patientParticipant);
  auto coverage = parse(peerRequest(port, "GET", "/Coverage").body);
  BOOST_TEST(std::string(coverage["entry"][0]["resource"]["beneficiary"]["reference"].GetString()) == patientRef);
  BOOST_TEST(std::string(coverage["entry"][0]["resource"]["subscriberId"].GetString()) == "BCBS987654321");
  auto qr = parse(peerRequest(port, "GET", "/QuestionnaireResponse").body);
  BOOST_TEST(std::string(qr["entry"][0]["resource"]["subject"]["reference"].GetString()) == patientRef);

  // The patient got a confirmation through 8x8 naming the day and the appointment number.
  auto replies = j.sentReplies("8x8");
  BOOST_REQUIRE_EQUAL(replies.size(), 1u);
  const std::string apptId = appt["id"].GetString();
  BOOST_TEST(replies[0].find("+15551234567") != std::string::npos);
  BOOST_TEST(replies[0].find(apptId) != std::string::npos, replies[0]);

  // 8x8's delivery receipt for that reply closes the loop: recorded on the original message.
  auto sentRequests = parse(peerRequest(j.vendors.port(), "GET", "/_control/requests").body);
  std::string umid;
  for (const auto& r : sentRequests.GetArray()) {
    if (r.HasMember("outboundId")) umid = r["outboundId"].GetString();
  }
  BOOST_REQUIRE(!umid.empty());
  std::string receipt = replaceAll(readTestFile(source() / "tests" / "data" / "8x8" / "status_read_v9.json"),
                                   "a1b2c3d4-0000-4000-8000-00000000beef", umid);
  BOOST_TEST(j.post8x8(receipt).status == 200);
  BOOST_TEST(waitFor([&] { return j.messageDetail(id).find("\"outbound-status\"") != std::string::npos; }, 30),
             j.messageDetail(id));
  BOOST_TEST(j.messageDetail(id).find("read for " + umid) != std::string::npos);

  // Redelivery of the same webhook: 200, same message, nothing new anywhere.
  auto again = j.post8x8(seed8x8());
  BOOST_TEST(again.status == 200);
  BOOST_TEST(firstMessageId(again) == id);
  BOOST_TEST(j.messageCount("whatsapp-8x8") == 2);  // the submission and the receipt

  // A second submission from the same phone: the Patient is reused, a new Appointment is made.
  auto second = j.post8x8(another8x8("health-xyz-790", "2026-02-19"));
  BOOST_REQUIRE_EQUAL(second.status, 200);
  const long long id2 = firstMessageId(second);
  BOOST_REQUIRE(waitFor([&] { return j.deliveryStatus(id2, "ehr") == "succeeded"; }, 60));
  BOOST_TEST(countOnServer(port, "/Patient") == 1);
  BOOST_TEST(countOnServer(port, "/Appointment") == 2);

  // Meta: the same answers as an nfm_reply, signed with the app secret. Same phone, so the same
  // Patient; its own Appointment on another day; the reply goes through the Cloud API.
  std::string meta = readTestFile(source() / "tests" / "data" / "whatsapp" / "flow_nfm_reply.json");
  meta = replaceAll(meta, "2026-02-12", "2026-02-26");
  auto metaAnswer = j.postMeta(meta, metaSignature(kMetaSecret, meta));
  BOOST_REQUIRE_EQUAL(metaAnswer.status, 200);
  BOOST_REQUIRE(waitFor([&] { return j.messageCount("whatsapp-meta") == 1; }, 10));
  auto metaList = parse(j.admin("/api/messages?channel=whatsapp-meta").body);
  const long long metaId = metaList["items"][0]["id"].GetInt64();
  BOOST_REQUIRE_MESSAGE(waitFor([&] { return j.deliveryStatus(metaId, "reply") == "succeeded"; }, 60), j.messageDetail(metaId));
  BOOST_TEST(countOnServer(port, "/Appointment") == 3);
  BOOST_TEST(j.sentReplies("meta").size() == 1u);

  // Nothing the server refused: every write passed validateResource.
  auto stats = parse(peerRequest(port, "GET", "/_control/stats").body);
  BOOST_TEST(stats["rejected"].GetInt() == 0);
}

BOOST_AUTO_TEST_CASE(an_ehr_outage_delays_but_loses_and_duplicates_nothing) {
  Journey j;
  const int port = j.fhir.port();
  peerRequest(port, "POST", "/_control/fail", R"({"status":503,"count":4,"retryAfter":"1"})");
  std::vector<long long> ids;
  for (int i = 0; i < 5; ++i) {
    auto r = j.post8x8(another8x8("outage-" + std::to_string(i), "2026-03-0" + std::to_string(i + 2)));
    BOOST_REQUIRE_EQUAL(r.status, 200);
    ids.push_back(firstMessageId(r));
  }
  BOOST_REQUIRE(waitFor(
      [&] {
        return std::all_of(ids.begin(), ids.end(), [&](long long id) { return j.deliveryStatus(id, "ehr") == "succeeded"; });
      },
      90));
  auto stats = parse(peerRequest(port, "GET", "/_control/stats").body);
  BOOST_TEST(stats["injected"].GetInt() == 4);
  BOOST_TEST(countOnServer(port, "/Appointment") == 5);
  BOOST_TEST(countOnServer(port, "/Patient") == 1);
  BOOST_TEST(countOnServer(port, "/QuestionnaireResponse") == 5);
}

BOOST_AUTO_TEST_CASE(a_refusal_by_the_ehr_is_a_visible_permanent_failure_and_the_patient_gets_an_apology) {
  Journey j;
  peerRequest(j.fhir.port(), "POST", "/_control/fail", R"({"status":400,"count":1})");
  auto r = j.post8x8(seed8x8());
  BOOST_REQUIRE_EQUAL(r.status, 200);
  const long long id = firstMessageId(r);
  BOOST_REQUIRE_MESSAGE(waitFor([&] { return j.deliveryStatus(id, "ehr") == "dead"; }, 60), j.messageDetail(id));
  const std::string detail = j.messageDetail(id);
  BOOST_TEST(detail.find("injected failure") != std::string::npos);  // the server's OperationOutcome
  BOOST_TEST(countOnServer(j.fhir.port(), "/Appointment") == 0);
  BOOST_REQUIRE(waitFor([&] { return j.deliveryStatus(id, "reply") == "succeeded"; }, 60));
  auto replies = j.sentReplies("8x8");
  BOOST_REQUIRE_EQUAL(replies.size(), 1u);
  BOOST_TEST(replies[0].find("555 010 0199") != std::string::npos, replies[0]);  // the clinic phone

  // Listed among the dead letters, where an admin replays it once the EHR is fixed.
  auto dead = parse(j.admin("/api/deliveries?status=dead").body);
  bool listed = false;
  for (const auto& item : dead["items"].GetArray()) {
    listed = listed || (item["messageId"].GetInt64() == id && std::string(item["destination"].GetString()) == "ehr");
  }
  BOOST_TEST(listed, j.admin("/api/deliveries?status=dead").body);
}

BOOST_AUTO_TEST_CASE(signature_and_auth_failures_are_refused_and_store_nothing) {
  Journey j;
  const std::string meta = readTestFile(source() / "tests" / "data" / "whatsapp" / "flow_nfm_reply.json");
  BOOST_TEST(j.postMeta(meta, metaSignature("another-secret", meta)).status == 401);
  BOOST_TEST(j.postMeta(meta, "").status == 401);
  std::string tampered = meta;
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'a' ? 'b' : 'a';
  BOOST_TEST(j.postMeta(tampered, metaSignature(kMetaSecret, meta)).status == 401);
  BOOST_TEST(j.post8x8(seed8x8(), "Bearer wrong").status == 401);
  BOOST_TEST(j.post8x8(seed8x8(), "").status == 401);

  std::vector<std::pair<std::string, std::string>> params = {
      {"MessageSid", "SM0123456789abcdef0123456789abcdef"}, {"AccountSid", "AC0123456789abcdef0123456789abcdef"},
      {"From", "whatsapp:+15551234567"}, {"To", "whatsapp:+15550100100"}, {"Body", "Hello"}, {"NumMedia", "0"}};
  const std::string url = "http://127.0.0.1:" + std::to_string(j.engine->port()) + "/webhooks/twilio";
  const std::string form = formEncode(params);
  auto bad = http(j.engine->port(), "POST", "/webhooks/twilio", form,
                  {{"X-Twilio-Signature", twilioSignature("wrong-token", url, params)},
                   {"Content-Type", "application/x-www-form-urlencoded"}});
  BOOST_TEST(bad.status == 401);
  BOOST_TEST(j.messageCount("whatsapp-meta") == 0);
  BOOST_TEST(j.messageCount("whatsapp-8x8") == 0);
  BOOST_TEST(j.messageCount("whatsapp-twilio") == 0);

  // The same Twilio request correctly signed is accepted with TwiML (a text message: stored,
  // then filtered because only Flow submissions are mapped).
  auto good = http(j.engine->port(), "POST", "/webhooks/twilio", form,
                   {{"X-Twilio-Signature", twilioSignature(kTwilioToken, url, params)},
                    {"Content-Type", "application/x-www-form-urlencoded"}});
  BOOST_TEST(good.status == 200);
  BOOST_TEST(good.body.find("<Response") != std::string::npos);
  BOOST_TEST(j.messageCount("whatsapp-twilio") == 1);
  // Meta's GET handshake.
  auto hs = http(j.engine->port(), "GET", "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444");
  BOOST_TEST(hs.status == 200);
  BOOST_TEST(hs.body == "1158201444");
  auto hsBad = http(j.engine->port(), "GET", "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1");
  BOOST_TEST(hsBad.status == 403);
}

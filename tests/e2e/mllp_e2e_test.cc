// HL7 v2 over MLLP end to end with real parts: the `switchboard` binary runs a channel with the
// `mllp` source, a passthrough transformer and the `mllp` destination; Medplum's @medplum/hl7
// (tests/e2e/peers/mllp-peer.mjs) is both the sending system (Hl7Client) and the receiving EHR
// (Hl7Server). The client gets AA only for what the engine stored, the server receives the
// stored bytes unchanged, an AE then AA from the server is a retry, an AR a permanent failure,
// and broken HL7 is answered AR and shows among the rejected messages; SIGTERM stops it cleanly
// with a sender's connection open.
// Single-threaded test driver; the engine and the peer are child processes on 127.0.0.1.
#define BOOST_TEST_MODULE mllp_e2e
#include <boost/test/unit_test.hpp>

#include <Poco/Base64Decoder.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
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

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  return d;
}

std::string str(const rapidjson::Value& v, const char* key) {
  return v.IsObject() && v.HasMember(key) && v[key].IsString() ? v[key].GetString() : "";
}

std::string base64Decode(const std::string& text) {
  std::istringstream in(text);
  Poco::Base64Decoder decoder(in);
  std::ostringstream out;
  out << decoder.rdbuf();
  return out.str();
}

std::string jsonArray(const std::vector<std::string>& items) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartArray();
  for (const auto& s : items) w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
  w.EndArray();
  return buffer.GetString();
}

std::string adt(const std::string& controlId) {
  return "MSH|^~\\&|WAGW|CLINIC|EHR|HOSP|20250301101500||ADT^A04^ADT_A01|" + controlId +
         "|P|2.5.1|||AL|NE\r"
         "EVN|A04|20250301101500\r"
         "PID|1||MRN12345^^^HOSP^MR||Doe^Jane^Q||19800115|F|||123 Main "
         "St^^Springfield^IL^62701^USA^H||^PRN^CP^^1^555^1234567\r"
         "PV1|1|O";
}

struct World {
  NodePeer peer{"mllp-peer.mjs"};
  std::unique_ptr<EngineProcess> engine;
  int peerMllpPort = 0;
  int engineMllpPort = 0;

  World() {
    BOOST_REQUIRE_MESSAGE(peer.error().empty(), peer.error());
    auto state = parse(peerRequest(peer.port(), "GET", "/_control/state").body);
    BOOST_REQUIRE(state.IsObject() && state.HasMember("mllpPort"));
    peerMllpPort = state["mllpPort"].GetInt();
    engine = std::make_unique<EngineProcess>("mllp", R"({
      "http": {"bind": "127.0.0.1", "threads": 8},
      "workers": {"pipeline_threads": 1, "delivery_threads": 1, "lease_ms": 5000, "idle_poll_ms": 50}
    })");
    engine->addChannel("adt.json", channelJson("ADT relayed to the EHR"));
    BOOST_REQUIRE_MESSAGE(engine->start(), "engine did not start: " + engine->stderrText());
    std::ifstream in(engine->dataDir() / "mllp-adt.port");
    in >> engineMllpPort;
    BOOST_REQUIRE_GT(engineMllpPort, 0);
  }

  std::string channelJson(const std::string& description) const {
    return R"({"id": "adt", "description": ")" + description + R"(",
      "source": {"type": "mllp", "port": 0},
      "transformer": {"type": "passthrough"},
      "destinations": [{"name": "ehr", "type": "mllp", "host": "127.0.0.1", "port": )" +
           std::to_string(peerMllpPort) + R"(, "ack_timeout_ms": 10000}],
      "retry": {"max_attempts": 5, "initial_backoff_ms": 100, "max_backoff_ms": 500}})";
  }

  // Sends the messages with Medplum's Hl7Client on one connection; returns the ACKs' text.
  std::vector<std::string> send(const std::vector<std::string>& messages) {
    std::string body = R"({"port": )" + std::to_string(engineMllpPort) + R"(, "messages": )" +
                       jsonArray(messages) + "}";
    auto r = peerRequest(peer.port(), "POST", "/_control/send", body);
    BOOST_REQUIRE_MESSAGE(r.status == 200, "peer send failed: " + r.body);
    auto d = parse(r.body);
    std::vector<std::string> acks;
    for (const auto& a : d["acks"].GetArray()) acks.emplace_back(a.GetString());
    return acks;
  }

  void answers(const std::string& json) {
    BOOST_REQUIRE_EQUAL(peerRequest(peer.port(), "POST", "/_control/answers", json).status, 200);
  }

  rapidjson::Document messages(const std::string& query) {
    return parse(http(engine->port(), "GET", "/api/messages?channel=adt" + query, "", kAdmin).body);
  }

  // The id of the message holding control id `controlId` (-1 when none).
  long long messageId(const std::string& controlId) {
    auto list = messages("&limit=100");
    if (!list.IsObject() || !list.HasMember("items")) return -1;
    for (const auto& m : list["items"].GetArray()) {
      if (str(m, "idempotencyKey") == "hl7v2|WAGW|CLINIC|" + controlId) return m["id"].GetInt64();
    }
    return -1;
  }

  rapidjson::Document detail(long long id) {
    return parse(
        http(engine->port(), "GET", "/api/messages/" + std::to_string(id), "", kAdmin).body);
  }

  std::string deliveryStatus(long long id) {
    auto d = detail(id);
    if (!d.IsObject() || !d.HasMember("deliveries") || d["deliveries"].Empty()) return "";
    return str(d["deliveries"][0], "status");
  }

  std::vector<std::string> received() {
    auto state = parse(peerRequest(peer.port(), "GET", "/_control/state").body);
    std::vector<std::string> out;
    for (const auto& r : state["received"].GetArray())
      out.push_back(base64Decode(str(r, "base64")));
    return out;
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_real_client_gets_AA_and_a_real_server_receives_the_stored_bytes_unchanged) {
  World w;
  auto acks = w.send({adt("MSG0001")});
  BOOST_REQUIRE_EQUAL(acks.size(), 1u);
  BOOST_TEST(acks[0].find("\rMSA|AA|MSG0001") != std::string::npos, acks[0]);
  BOOST_TEST(acks[0].starts_with("MSH|^~\\&|EHR|HOSP|WAGW|CLINIC|"), acks[0]);

  const long long id = w.messageId("MSG0001");
  BOOST_REQUIRE_GT(id, 0);
  BOOST_REQUIRE_MESSAGE(waitFor([&] { return w.deliveryStatus(id) == "succeeded"; }, 60),
                        "not delivered; delivery status: " + w.deliveryStatus(id));
  auto d = w.detail(id);
  const std::string stored = str(d["raw"], "body");
  BOOST_TEST(str(d, "contentType") == "application/hl7-v2");
  BOOST_TEST(stored.find("|MSG0001|") != std::string::npos);
  BOOST_TEST(str(d["deliveries"][0], "lastResponse").starts_with("MSA-1 AA MSA-2 MSG0001"));
  auto got = w.received();
  BOOST_REQUIRE_EQUAL(got.size(), 1u);
  BOOST_TEST(got[0] ==
             "\x0b" + stored + "\x1c\r");  // framing around the stored bytes, nothing else

  // The same control id again (a sender that lost our ACK): AA, no second message, nothing sent.
  acks = w.send({adt("MSG0001")});
  BOOST_TEST(acks[0].find("\rMSA|AA|MSG0001") != std::string::npos, acks[0]);
  auto list = w.messages("&limit=100");
  BOOST_TEST(list["items"].Size() == 1u);
  BOOST_TEST(w.received().size() == 1u);

  // Clean shutdown with a sender's idle connection open: SIGTERM ends the engine with status 0,
  // and the connection is closed (not left hanging).
  Poco::Net::StreamSocket idle(
      Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(w.engineMllpPort)));
  BOOST_TEST(w.engine->terminate() == 0);
  BOOST_TEST(w.engine->stdoutText().find("switchboard: stopped") != std::string::npos);
  char byte = 0;
  idle.setReceiveTimeout(Poco::Timespan(10, 0));
  BOOST_TEST(idle.receiveBytes(&byte, 1) == 0);  // end of stream
}

BOOST_AUTO_TEST_CASE(AE_then_AA_from_the_server_is_a_retry_and_AR_a_permanent_failure) {
  World w;
  w.answers(R"(["AE", "AA"])");
  auto acks = w.send({adt("MSG0002")});
  BOOST_TEST(acks[0].find("\rMSA|AA|MSG0002") != std::string::npos, acks[0]);
  const long long retried = w.messageId("MSG0002");
  BOOST_REQUIRE_GT(retried, 0);
  BOOST_REQUIRE(waitFor([&] { return w.deliveryStatus(retried) == "succeeded"; }, 60));
  auto d = w.detail(retried);
  const auto& delivery = d["deliveries"][0];
  BOOST_TEST(delivery["attempts"].GetInt() == 2);
  const auto& history = delivery["attemptHistory"];
  BOOST_REQUIRE_EQUAL(history.Size(), 2u);
  BOOST_TEST(str(history[0], "outcome") == "retry");
  BOOST_TEST(str(history[0], "response").starts_with("MSA-1 AE MSA-2 MSG0002"),
             str(history[0], "response"));
  BOOST_TEST(str(history[0], "response").find("peer busy, send again") != std::string::npos);
  BOOST_TEST(str(history[1], "outcome") == "ok");

  w.answers(R"(["AR"])");
  acks = w.send({adt("MSG0003")});
  BOOST_TEST(acks[0].find("\rMSA|AA|MSG0003") != std::string::npos, acks[0]);
  const long long refused = w.messageId("MSG0003");
  BOOST_REQUIRE_GT(refused, 0);
  BOOST_REQUIRE(waitFor([&] { return w.deliveryStatus(refused) == "dead"; }, 60));
  d = w.detail(refused);
  BOOST_TEST(d["deliveries"][0]["attempts"].GetInt() == 1);
  BOOST_TEST(str(d["deliveries"][0], "deadReason") == "permanent");
  const std::string last = str(d["deliveries"][0], "lastResponse");
  BOOST_TEST(last.starts_with("MSA-1 AR MSA-2 MSG0003"), last);
  BOOST_TEST(last.find("unknown patient at the peer") != std::string::npos, last);
  // Three frames reached the server: MSG0002 twice (AE, then AA) and MSG0003 once.
  BOOST_TEST(w.received().size() == 3u);
}

BOOST_AUTO_TEST_CASE(broken_hl7_is_answered_AR_and_kept_as_rejected) {
  World w;
  Poco::Net::StreamSocket socket(
      Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(w.engineMllpPort)));
  const std::string frame = std::string("\x0b") + "PID|1||no header\r" + "\x1c\r";
  socket.sendBytes(frame.data(), static_cast<int>(frame.size()));
  std::string answer;
  char buffer[4096];
  while (answer.find("\x1c\r") == std::string::npos) {
    int n = socket.receiveBytes(buffer, sizeof buffer);
    if (n <= 0) break;
    answer.append(buffer, static_cast<std::size_t>(n));
  }
  BOOST_TEST(answer.find("\rMSA|AR\r") != std::string::npos, answer);  // no MSA-2: there was no MSH
  BOOST_TEST(answer.find("\rERR||") != std::string::npos, answer);
  auto rejected = w.messages("&status=rejected");
  BOOST_REQUIRE(rejected.IsObject() && rejected.HasMember("items"));
  BOOST_REQUIRE_EQUAL(rejected["items"].Size(), 1u);
  BOOST_TEST(str(rejected["items"][0], "error").find("does not parse") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(
    a_channel_reload_keeps_the_listener_and_the_next_message_is_acked_and_delivered) {
  World w;
  auto acks = w.send({adt("RL1")});
  BOOST_TEST(acks[0].find("\rMSA|AA|RL1") != std::string::npos, acks[0]);
  w.engine->addChannel("adt.json", w.channelJson("ADT relayed to the EHR, reloaded"));
  BOOST_REQUIRE_MESSAGE(
      waitFor([&] { return w.engine->stderrText().find("channels reloaded") != std::string::npos; },
              30),
      w.engine->stderrText());
  // Same port (the reloaded source took the listener over), and the new channel accepts.
  acks = w.send({adt("RL2")});
  BOOST_TEST(acks[0].find("\rMSA|AA|RL2") != std::string::npos, acks[0]);
  const long long id = w.messageId("RL2");
  BOOST_REQUIRE_GT(id, 0);
  BOOST_TEST(waitFor([&] { return w.deliveryStatus(id) == "succeeded"; }, 60));
}

// The `mllp` source inside a running engine (HTTP on 127.0.0.1, SQLite store, the loopback gate)
// and, for the ordering and failure cases, with a scripted gate: frames split across reads, two
// messages in one read, AA only after the commit, AR for broken HL7 and oversized frames with the
// connection still usable, duplicates ACKed without a second message, concurrent connections,
// AE when the message cannot be stored, a reloaded channel taking over its listener.
#define BOOST_TEST_MODULE channel_mllp_source_tests
#include <boost/test/unit_test.hpp>

#include <condition_variable>
#include <fstream>
#include <future>
#include <thread>

#include <unistd.h>

#include "channels/mllp/mllp_source.h"
#include "channels/mllp/register.h"
#include "engine/store/store.h"
#include "hl7v2/message.h"
#include "tests/channels/mllp/mllp_client.h"
#include "tests/support/test_engine.h"

using namespace switchboard;
using testing::adtA04;
using testing::MllpClient;

namespace {

std::string field(const std::string& er7, const char* path) {
  auto m = hl7v2::Message::parse(er7);
  BOOST_REQUIRE_MESSAGE(m.has_value(), "answer does not parse: " + er7);
  return m->get(path).value_or("<bad path>");
}

int readPort(const std::filesystem::path& file) {
  std::ifstream in(file);
  int port = 0;
  in >> port;
  return port;
}

struct EngineFixture {
  testing::TestEngine test{
      testing::TestEngineOptions{.name = "mllp-source",
                                 .channelFile = "adt-in.json",
                                 .channelJson = R"({"id": "adt-in",
        "source": {"type": "mllp", "port": 0, "max_message_bytes": 2048},
        "destinations": [{"name": "out", "type": "file", "directory": "outbox"}]})",
                                 .registerConnectors = channels::registerMllpConnectors,
                                 .configure = nullptr,
                                 .clock = nullptr,
                                 .serve = true}};
  runtime::Engine* engine = &test.engine();
  int mllpPort = 0;

  EngineFixture() {
    // What `switchboard serve` writes once listening; the source's gate reads it.
    std::ofstream(test.dir() / "var" / "switchboard.port") << engine->port() << "\n";
    mllpPort = readPort(test.dir() / "var" / "mllp-adt-in.port");
    BOOST_REQUIRE_GT(mllpPort, 0);
  }

  std::vector<store::MessageSummary> messages(std::optional<std::string> status = std::nullopt) {
    store::MessageQuery q;
    q.channelId = "adt-in";
    q.status = std::move(status);
    q.limit = 100;
    auto list = engine->store().listMessages(q);
    BOOST_REQUIRE(list.has_value());
    return *list;
  }
  std::vector<store::MessageSummary> rejected() { return messages(std::string("rejected")); }
  core::StoredMessage message(std::int64_t id) {
    auto detail = engine->store().getMessage(id);
    BOOST_REQUIRE(detail.has_value());
    return detail->message;
  }
};

std::string meta(const core::StoredMessage& m, const char* key) {
  const std::string* v = core::findMetadata(m.metadata, key);
  return v != nullptr ? *v : std::string("<absent>");
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(frame_split_across_reads_is_committed_byte_exact_then_acked,
                        EngineFixture) {
  MllpClient client(mllpPort);
  BOOST_REQUIRE(client.connected());
  const std::string m = adtA04("MSG0001");
  const std::string framed = hl7v2::frame(m);
  for (char c : framed) BOOST_REQUIRE(client.sendRaw(std::string_view(&c, 1)));
  auto ack = client.read();
  BOOST_REQUIRE(ack.has_value());
  BOOST_TEST(field(*ack, "MSA-1") == "AA");
  BOOST_TEST(field(*ack, "MSA-2") == "MSG0001");
  BOOST_TEST(field(*ack, "MSH-9") == "ACK^A04^ACK");
  BOOST_TEST(field(*ack, "MSH-3") == "EHR");  // applications swapped
  BOOST_TEST(field(*ack, "MSH-5") == "WAGW");
  // The ACK came after the commit: the message is there now.
  auto list = messages();
  BOOST_REQUIRE_EQUAL(list.size(), 1u);
  const auto stored = message(list[0].id);
  BOOST_TEST(stored.body == m);
  BOOST_TEST(stored.contentType == "application/hl7-v2");
  BOOST_TEST(stored.idempotencyKey == "hl7v2|WAGW|CLINIC|MSG0001");
  BOOST_TEST(meta(stored, "kind") == "hl7v2");
  BOOST_TEST(meta(stored, "control_id") == "MSG0001");
  BOOST_TEST(meta(stored, "message_type") == "ADT^A04");
  BOOST_TEST(stored.status != "rejected");
}

BOOST_FIXTURE_TEST_CASE(two_messages_in_one_read_get_two_acks_in_order, EngineFixture) {
  MllpClient client(mllpPort);
  BOOST_REQUIRE(client.sendRaw(hl7v2::frame(adtA04("MSG-A")) + hl7v2::frame(adtA04("MSG-B"))));
  auto first = client.read();
  auto second = client.read();
  BOOST_REQUIRE(first.has_value());
  BOOST_REQUIRE(second.has_value());
  BOOST_TEST(field(*first, "MSA-1") == "AA");
  BOOST_TEST(field(*first, "MSA-2") == "MSG-A");
  BOOST_TEST(field(*second, "MSA-1") == "AA");
  BOOST_TEST(field(*second, "MSA-2") == "MSG-B");
  BOOST_TEST(messages().size() == 2u);
}

BOOST_FIXTURE_TEST_CASE(broken_hl7_is_answered_AR_recorded_and_the_connection_survives,
                        EngineFixture) {
  MllpClient client(mllpPort);
  BOOST_REQUIRE(client.send("this is not HL7\r"));
  auto nack = client.read();
  BOOST_REQUIRE(nack.has_value());
  BOOST_TEST(field(*nack, "MSA-1") == "AR");
  BOOST_TEST(field(*nack, "ERR-3.1") == "100");
  BOOST_TEST(field(*nack, "ERR-4") == "E");
  BOOST_TEST(field(*nack, "ERR-8").find("MSH") != std::string::npos);
  auto bad = rejected();
  BOOST_REQUIRE_EQUAL(bad.size(), 1u);
  BOOST_TEST(bad[0].error.find("does not parse") != std::string::npos);
  BOOST_TEST(message(bad[0].id).body == "this is not HL7\r");

  BOOST_REQUIRE(client.send(adtA04("MSG0002")));
  auto ack = client.read();
  BOOST_REQUIRE(ack.has_value());
  BOOST_TEST(field(*ack, "MSA-1") == "AA");
  BOOST_TEST(field(*ack, "MSA-2") == "MSG0002");
  BOOST_TEST(messages().size() == 2u);
}

BOOST_FIXTURE_TEST_CASE(missing_control_id_is_answered_AR_naming_MSH_10, EngineFixture) {
  MllpClient client(mllpPort);
  BOOST_REQUIRE(client.send(adtA04("")));
  auto nack = client.read();
  BOOST_REQUIRE(nack.has_value());
  BOOST_TEST(field(*nack, "MSA-1") == "AR");
  BOOST_TEST(field(*nack, "ERR-2") == "MSH^1^10");
  BOOST_TEST(field(*nack, "ERR-3.1") == "101");
  auto bad = rejected();
  BOOST_REQUIRE_EQUAL(bad.size(), 1u);
  BOOST_TEST(bad[0].error.find("MSH-10") != std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(duplicate_control_id_is_acked_again_without_a_second_message,
                        EngineFixture) {
  {
    MllpClient client(mllpPort);
    BOOST_REQUIRE(client.send(adtA04("DUP1")));
    auto ack = client.read();
    BOOST_REQUIRE(ack.has_value());
    BOOST_TEST(field(*ack, "MSA-1") == "AA");
    BOOST_REQUIRE(client.send(adtA04("DUP1")));
    ack = client.read();
    BOOST_REQUIRE(ack.has_value());
    BOOST_TEST(field(*ack, "MSA-1") == "AA");
    BOOST_TEST(field(*ack, "MSA-2") == "DUP1");
  }
  MllpClient again(mllpPort);  // a resend after a reconnect, as senders do after a lost ACK
  BOOST_REQUIRE(again.send(adtA04("DUP1")));
  auto ack = again.read();
  BOOST_REQUIRE(ack.has_value());
  BOOST_TEST(field(*ack, "MSA-1") == "AA");
  BOOST_TEST(messages().size() == 1u);
  // The key is scoped by sender: another application's DUP1 is another message.
  BOOST_REQUIRE(again.send(adtA04("DUP1", "LAB")));
  ack = again.read();
  BOOST_REQUIRE(ack.has_value());
  BOOST_TEST(field(*ack, "MSA-1") == "AA");
  BOOST_TEST(messages().size() == 2u);
}

BOOST_FIXTURE_TEST_CASE(oversized_frame_is_answered_AR_recorded_and_the_connection_survives,
                        EngineFixture) {
  MllpClient client(mllpPort);
  std::string big = adtA04("BIG1") + "NTE|1||" + std::string(4000, 'x') + "\r";
  BOOST_REQUIRE(client.send(big));
  auto nack = client.read();
  BOOST_REQUIRE(nack.has_value());
  BOOST_TEST(field(*nack, "MSA-1") == "AR");
  BOOST_TEST(field(*nack, "ERR-3.1") == "207");
  BOOST_TEST(field(*nack, "ERR-8").find("too-long") != std::string::npos);
  auto bad = rejected();
  BOOST_REQUIRE_EQUAL(bad.size(), 1u);
  BOOST_TEST(bad[0].error.find("MLLP frame dropped") != std::string::npos);
  BOOST_TEST(meta(message(bad[0].id), "kind") == "hl7v2-frame-error");

  BOOST_REQUIRE(client.send(adtA04("SMALL1")));
  auto ack = client.read();
  BOOST_REQUIRE(ack.has_value());
  BOOST_TEST(field(*ack, "MSA-1") == "AA");
  BOOST_TEST(field(*ack, "MSA-2") == "SMALL1");
}

BOOST_FIXTURE_TEST_CASE(bytes_outside_frames_are_skipped_without_an_answer, EngineFixture) {
  MllpClient client(mllpPort);
  BOOST_REQUIRE(client.sendRaw("junk\r\n" + hl7v2::frame(adtA04("AFTER-JUNK"))));
  auto ack = client.read();
  BOOST_REQUIRE(ack.has_value());
  BOOST_TEST(field(*ack, "MSA-1") == "AA");
  BOOST_TEST(field(*ack, "MSA-2") == "AFTER-JUNK");  // the first answer is the message's
  BOOST_TEST(messages().size() == 1u);
  BOOST_TEST(rejected().empty());
}

BOOST_FIXTURE_TEST_CASE(concurrent_connections_are_served_and_all_committed, EngineFixture) {
  constexpr int kClients = 4, kEach = 5;
  std::vector<std::future<int>> done;
  for (int c = 0; c < kClients; ++c) {
    done.push_back(std::async(std::launch::async, [this, c] {
      MllpClient client(mllpPort);
      int acked = 0;
      for (int i = 0; i < kEach; ++i) {
        const std::string id = "C" + std::to_string(c) + "-" + std::to_string(i);
        if (!client.send(adtA04(id))) break;
        auto ack = client.read();
        if (!ack) break;
        auto m = hl7v2::Message::parse(*ack);
        if (m && m->get("MSA-1").value_or("") == "AA" && m->get("MSA-2").value_or("") == id)
          ++acked;
      }
      return acked;
    }));
  }
  int total = 0;
  for (auto& f : done) total += f.get();
  BOOST_TEST(total == kClients * kEach);
  BOOST_TEST(messages().size() == static_cast<std::size_t>(kClients * kEach));
}

BOOST_FIXTURE_TEST_CASE(internal_path_refuses_requests_without_the_listener_token, EngineFixture) {
  auto reply = testing::httpPost(engine->port(), "/mllp/adt-in", adtA04("X1"),
                                 {{"Content-Type", "application/hl7-v2"}});
  BOOST_TEST(reply.status == 403);
  reply = testing::httpPost(engine->port(), "/mllp/adt-in", adtA04("X1"),
                            {{"X-Switchboard-Mllp-Gate", "guess"}});
  BOOST_TEST(reply.status == 403);
  BOOST_TEST(messages().empty());
}

namespace {

// A gate standing in for the engine: hands the request to the source's verdict and "commits"
// when the test says so.
struct ScriptedGate {
  std::mutex mutex;
  std::condition_variable cv;
  bool open = true;
  bool failCommit = false;
  int calls = 0;
  channels::mllp::MllpSource* source = nullptr;

  Result<channels::mllp::GateReply> operator()(const core::HttpRequest& request) {
    std::unique_lock<std::mutex> lock(mutex);
    ++calls;
    cv.notify_all();
    cv.wait(lock, [this] { return open; });
    if (failCommit) return fail(ErrorCode::kTransient, "store unavailable");
    auto verdict = source->handle(request);
    return channels::mllp::GateReply{verdict.reply.status, verdict.reply.body,
                                     verdict.kind == core::SourceVerdict::Kind::kAccept ||
                                         verdict.kind == core::SourceVerdict::Kind::kReject};
  }
};

channels::mllp::MllpSourceConfig scriptedConfig(const std::string& channel, int port = 0) {
  channels::mllp::MllpSourceConfig c;
  c.channelId = channel;
  c.listener.port = port;
  c.path = "/mllp/" + channel;
  return c;
}

}  // namespace

BOOST_AUTO_TEST_CASE(ack_is_sent_only_after_the_commit_returns) {
  auto gate = std::make_shared<ScriptedGate>();
  gate->open = false;
  auto source = channels::mllp::MllpSource::start(
      scriptedConfig("held"), [gate](const core::HttpRequest& r) { return (*gate)(r); });
  BOOST_REQUIRE(source.has_value());
  gate->source = source->get();
  MllpClient client((*source)->port());
  BOOST_REQUIRE(client.send(adtA04("HELD1")));
  {
    std::unique_lock<std::mutex> lock(gate->mutex);
    gate->cv.wait(lock, [&] { return gate->calls == 1; });
  }
  // The commit has not returned: no byte may have been answered.
  BOOST_TEST(client.silentFor(300));
  {
    std::lock_guard<std::mutex> lock(gate->mutex);
    gate->open = true;
  }
  gate->cv.notify_all();
  auto ack = client.read();
  BOOST_REQUIRE(ack.has_value());
  BOOST_TEST(field(*ack, "MSA-1") == "AA");
  BOOST_TEST(field(*ack, "MSA-2") == "HELD1");
}

BOOST_AUTO_TEST_CASE(a_message_that_cannot_be_stored_is_answered_AE_and_the_connection_survives) {
  auto gate = std::make_shared<ScriptedGate>();
  gate->failCommit = true;
  auto source = channels::mllp::MllpSource::start(
      scriptedConfig("down"), [gate](const core::HttpRequest& r) { return (*gate)(r); });
  BOOST_REQUIRE(source.has_value());
  gate->source = source->get();
  MllpClient client((*source)->port());
  BOOST_REQUIRE(client.send(adtA04("DOWN1")));
  auto nack = client.read();
  BOOST_REQUIRE(nack.has_value());
  BOOST_TEST(field(*nack, "MSA-1") == "AE");
  BOOST_TEST(field(*nack, "MSA-2") == "DOWN1");
  BOOST_TEST(field(*nack, "ERR-3.1") == "207");
  BOOST_TEST(field(*nack, "ERR-8").find("send it again") != std::string::npos);
  {
    std::lock_guard<std::mutex> lock(gate->mutex);
    gate->failCommit = false;
  }
  BOOST_REQUIRE(client.send(adtA04("DOWN1")));
  auto ack = client.read();
  BOOST_REQUIRE(ack.has_value());
  BOOST_TEST(field(*ack, "MSA-1") == "AA");
}

BOOST_AUTO_TEST_CASE(a_reloaded_channel_takes_over_its_listener) {
  int port = 0;
  {
    auto probe = channels::mllp::listenTcp("127.0.0.1", 0);
    BOOST_REQUIRE(probe.has_value());
    port = channels::mllp::boundPort(*probe);
  }
  auto first = std::make_shared<ScriptedGate>();
  auto second = std::make_shared<ScriptedGate>();
  auto a = channels::mllp::MllpSource::start(
      scriptedConfig("reload", port), [first](const core::HttpRequest& r) { return (*first)(r); });
  BOOST_REQUIRE(a.has_value());
  first->source = a->get();
  // Same channel and address while the old one still runs: no bind error, same socket.
  auto b = channels::mllp::MllpSource::start(
      scriptedConfig("reload", port),
      [second](const core::HttpRequest& r) { return (*second)(r); });
  BOOST_REQUIRE_MESSAGE(b.has_value(), (b ? std::string() : b.error().message));
  second->source = b->get();
  BOOST_TEST((*b)->port() == port);
  // One token for both: the engine's current source accepts what either listener handler sends.
  BOOST_TEST((*b)->gateToken() == (*a)->gateToken());
  a->reset();  // the old channel goes; the listener stays with the new one
  MllpClient client(port);
  BOOST_REQUIRE(client.send(adtA04("R1")));
  auto ack = client.read();
  BOOST_REQUIRE(ack.has_value());
  BOOST_TEST(field(*ack, "MSA-1") == "AA");
  BOOST_TEST(first->calls == 0);
  BOOST_TEST(second->calls == 1);
  client.close();
  b->reset();  // the last holder closes the socket
  MllpClient late(port);
  BOOST_TEST(!late.connected());
}

BOOST_AUTO_TEST_CASE(a_failed_reload_gives_the_listener_back_to_the_running_source) {
  int port = 0;
  {
    auto probe = channels::mllp::listenTcp("127.0.0.1", 0);
    BOOST_REQUIRE(probe.has_value());
    port = channels::mllp::boundPort(*probe);
  }
  auto running = std::make_shared<ScriptedGate>();
  auto discarded = std::make_shared<ScriptedGate>();
  auto a = channels::mllp::MllpSource::start(
      scriptedConfig("revert", port),
      [running](const core::HttpRequest& r) { return (*running)(r); });
  BOOST_REQUIRE(a.has_value());
  running->source = a->get();
  {
    // A reload builds the new source, then fails on another part of the channel and drops it.
    auto b = channels::mllp::MllpSource::start(
        scriptedConfig("revert", port),
        [discarded](const core::HttpRequest& r) { return (*discarded)(r); });
    BOOST_REQUIRE(b.has_value());
    discarded->source = b->get();
  }
  MllpClient client(port);
  BOOST_REQUIRE(client.connected());
  BOOST_REQUIRE(client.send(adtA04("V1")));
  auto ack = client.read();
  BOOST_REQUIRE(ack.has_value());
  BOOST_TEST(field(*ack, "MSA-1") == "AA");
  BOOST_TEST(running->calls == 1);
  BOOST_TEST(discarded->calls == 0);
}

BOOST_AUTO_TEST_CASE(before_the_engine_listens_messages_are_answered_AE) {
  // The loopback gate with no port file yet, then with an earlier run's: nothing can be stored.
  const auto dir =
      std::filesystem::temp_directory_path() / ("sb-mllp-noengine-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto config = scriptedConfig("noengine");
  config.gate.dataDir = dir.string();
  config.gate.timeoutMs = 2000;
  auto source = channels::mllp::MllpSource::start(config);
  BOOST_REQUIRE(source.has_value());
  MllpClient client((*source)->port());
  BOOST_REQUIRE(client.send(adtA04("EARLY1")));
  auto nack = client.read();
  BOOST_REQUIRE(nack.has_value());
  BOOST_TEST(field(*nack, "MSA-1") == "AE");
  BOOST_TEST(field(*nack, "ERR-8").find("not up yet") != std::string::npos);

  // A port file from an earlier run (an hour old) naming a live HTTP port is not used either.
  auto probe = channels::mllp::listenTcp("127.0.0.1", 0);
  BOOST_REQUIRE(probe.has_value());
  const auto portFile = dir / "switchboard.port";
  std::ofstream(portFile) << channels::mllp::boundPort(*probe) << "\n";
  std::filesystem::last_write_time(
      portFile, std::filesystem::file_time_type::clock::now() - std::chrono::hours(1));
  BOOST_REQUIRE(client.send(adtA04("EARLY2")));
  nack = client.read();
  BOOST_REQUIRE(nack.has_value());
  BOOST_TEST(field(*nack, "MSA-1") == "AE");
  BOOST_TEST(field(*nack, "ERR-8").find("not up yet") != std::string::npos);
  source->reset();
  std::filesystem::remove_all(dir);
}

// The `mllp` source inside a running engine (SQLite store; the engine's in-process intake gate)
// and, for the ordering and failure cases, with a scripted gate: frames split across reads, two
// messages in one read, AA only after the commit (a commit held by another writer holds the ACK),
// AR for broken HL7 and oversized frames with the connection still usable, duplicates ACKed
// without a second message (also sent at once on two connections), concurrent connections, AE
// when the message cannot be stored (a failing store; a gate that did not commit), no HTTP path
// into intake, a reloaded channel taking over its listener, the engine's stop closing it.
#define BOOST_TEST_MODULE channel_mllp_source_tests
#include <boost/test/unit_test.hpp>

#include <condition_variable>
#include <fstream>
#include <future>
#include <thread>

#include <sqlite3.h>
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

// Reads the next answer, checks its MSA-1 and (when given) MSA-2, and returns it.
std::string expectAnswer(MllpClient& client, const char* code, const std::string& controlId = {}) {
  auto answer = client.read();
  BOOST_REQUIRE_MESSAGE(answer.has_value(), "no answer");
  BOOST_TEST(field(*answer, "MSA-1") == code);
  if (!controlId.empty()) BOOST_TEST(field(*answer, "MSA-2") == controlId);
  return *answer;
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

// A second connection to the engine's SQLite file: holds the write lock or makes writes fail, as
// another writer or a failing disk would.
struct SideConnection {
  sqlite3* db = nullptr;
  explicit SideConnection(const std::filesystem::path& path) {
    BOOST_REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
  }
  ~SideConnection() { sqlite3_close(db); }
  void exec(const std::string& sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    BOOST_REQUIRE_MESSAGE(rc == SQLITE_OK, sql + ": " + (err != nullptr ? err : "?"));
  }
};

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
  BOOST_TEST(testing::metadataValue(stored, "kind") == "hl7v2");
  BOOST_TEST(testing::metadataValue(stored, "control_id") == "MSG0001");
  BOOST_TEST(testing::metadataValue(stored, "message_type") == "ADT^A04");
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
  BOOST_TEST(testing::metadataValue(message(bad[0].id), "kind") == "hl7v2-frame-error");

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

BOOST_FIXTURE_TEST_CASE(the_ack_waits_for_the_durable_commit, EngineFixture) {
  MllpClient client(mllpPort);
  BOOST_REQUIRE(client.connected());
  {
    // Another writer holds the database: the engine's commit waits for it.
    SideConnection side(test.dir() / "var" / "sb.db");
    side.exec("BEGIN IMMEDIATE");
    BOOST_REQUIRE(client.send(adtA04("HOLD1")));
    BOOST_TEST(client.silentFor(500));  // no answer while the commit cannot happen
    BOOST_TEST(messages().empty());
    side.exec("COMMIT");
  }
  expectAnswer(client, "AA", "HOLD1");
  BOOST_TEST(messages().size() == 1u);
}

BOOST_FIXTURE_TEST_CASE(a_store_failure_is_answered_AE_and_stores_nothing, EngineFixture) {
  SideConnection side(test.dir() / "var" / "sb.db");
  side.exec(
      "CREATE TRIGGER sb_test_fail BEFORE INSERT ON messages "
      "BEGIN SELECT RAISE(ABORT, 'injected store failure'); END");
  MllpClient client(mllpPort);
  BOOST_REQUIRE(client.send(adtA04("FAIL1")));
  auto nack = expectAnswer(client, "AE", "FAIL1");
  BOOST_TEST(field(nack, "ERR-3.1") == "207");
  BOOST_TEST(field(nack, "ERR-8").find("send it again") != std::string::npos);
  BOOST_TEST(messages().empty());
  BOOST_TEST(rejected().empty());
  // Broken HL7 while the store fails: not AR (that would claim it was kept), AE.
  BOOST_REQUIRE(client.send("this is not HL7\r"));
  expectAnswer(client, "AE");

  side.exec("DROP TRIGGER sb_test_fail");
  BOOST_REQUIRE(client.send(adtA04("FAIL1")));  // the sender's resend on the same connection
  expectAnswer(client, "AA", "FAIL1");
  BOOST_TEST(messages().size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_commit_slower_than_commit_timeout_ms_is_answered_AE_then_a_duplicate) {
  testing::TestEngine test{
      testing::TestEngineOptions{.name = "mllp-slow",
                                 .channelFile = "slow.json",
                                 .channelJson = R"({"id": "slow",
        "source": {"type": "mllp", "port": 0, "commit_timeout_ms": 300},
        "destinations": [{"name": "out", "type": "file", "directory": "outbox"}]})",
                                 .registerConnectors = channels::registerMllpConnectors,
                                 .configure = nullptr,
                                 .clock = nullptr,
                                 .serve = true}};
  MllpClient client(readPort(test.dir() / "var" / "mllp-slow.port"));
  {
    SideConnection side(test.dir() / "var" / "sb.db");
    side.exec("BEGIN IMMEDIATE");
    BOOST_REQUIRE(client.send(adtA04("SLOW1")));
    auto nack = expectAnswer(client, "AE");
    BOOST_TEST(field(nack, "ERR-8").find("send it again") != std::string::npos);
    side.exec("COMMIT");
  }
  // The late commit may have stored it meanwhile: the resend is answered as its duplicate.
  BOOST_REQUIRE(client.send(adtA04("SLOW1")));
  expectAnswer(client, "AA");
  store::MessageQuery q;
  q.channelId = "slow";
  auto list = test.engine().store().listMessages(q);
  BOOST_REQUIRE(list.has_value());
  BOOST_TEST(list->size() == 1u);
}

BOOST_FIXTURE_TEST_CASE(one_message_sent_on_two_connections_at_once_is_stored_once, EngineFixture) {
  for (int round = 0; round < 5; ++round) {
    const std::string id = "TWICE" + std::to_string(round);
    MllpClient a(mllpPort), b(mllpPort);
    BOOST_REQUIRE(a.connected() && b.connected());
    BOOST_REQUIRE(a.send(adtA04(id)));
    BOOST_REQUIRE(b.send(adtA04(id)));
    expectAnswer(a, "AA", id);
    expectAnswer(b, "AA", id);
    BOOST_TEST(messages().size() == static_cast<std::size_t>(round + 1));
  }
}

BOOST_FIXTURE_TEST_CASE(the_old_internal_http_path_reaches_no_intake, EngineFixture) {
  // Where the loopback hand-off used to post: nothing is served there any more.
  auto reply = testing::httpPost(engine->port(), "/mllp/adt-in", adtA04("X1"),
                                 {{"Content-Type", "application/hl7-v2"},
                                  {"X-Switchboard-Mllp-Gate", "guess"},
                                  {"X-Switchboard-Mllp-Peer", "127.0.0.1:1"}});
  BOOST_TEST(reply.status == 404);
  BOOST_TEST(reply.ids.empty());
  BOOST_TEST(messages().empty());
  // Nor at an empty path (what the source's path() is).
  BOOST_TEST(!engine->bodyLimit("").has_value());
}

BOOST_FIXTURE_TEST_CASE(the_engines_stop_closes_the_listener, EngineFixture) {
  MllpClient open(mllpPort);
  BOOST_REQUIRE(open.send(adtA04("BEFORE-STOP")));
  expectAnswer(open, "AA");
  engine->stop();
  BOOST_TEST(!open.read(2000).has_value());  // the open connection was closed
  MllpClient late(mllpPort);
  BOOST_TEST(!late.connected());  // and nothing accepts any more
  BOOST_TEST(messages().size() == 1u);
}

BOOST_FIXTURE_TEST_CASE(a_reload_keeps_the_port_and_removing_the_channel_closes_it, EngineFixture) {
  core::ConnectorContext ctx{"", (test.dir() / "var").string(), test.dir().string()};
  auto reloaded = runtime::loadChannels((test.dir() / "channels").string(), test.registry(), ctx);
  BOOST_REQUIRE_MESSAGE(reloaded.has_value(), (reloaded ? "" : reloaded.error().message));
  MllpClient before(mllpPort);  // a connection opened before the reload stays served
  engine->replaceChannels(std::move(*reloaded));
  BOOST_TEST(readPort(test.dir() / "var" / "mllp-adt-in.port") == mllpPort);
  BOOST_REQUIRE(before.send(adtA04("AFTER-RELOAD")));
  expectAnswer(before, "AA");
  MllpClient fresh(mllpPort);
  BOOST_REQUIRE(fresh.send(adtA04("AFTER-RELOAD-2")));
  expectAnswer(fresh, "AA");
  BOOST_TEST(messages().size() == 2u);

  engine->replaceChannels({});  // the channel's file was removed
  BOOST_TEST(!fresh.read(2000).has_value());
  MllpClient late(mllpPort);
  BOOST_TEST(!late.connected());
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

  core::IntakeReply operator()(const core::HttpRequest& request) {
    std::unique_lock<std::mutex> lock(mutex);
    ++calls;
    cv.notify_all();
    cv.wait(lock, [this] { return open; });
    auto verdict = source->handle(request);
    // A failed commit still carries the verdict's reply (an AA): the flag alone must decide.
    return core::IntakeReply{std::move(verdict.reply),
                             !failCommit && (verdict.kind == core::SourceVerdict::Kind::kAccept ||
                                             verdict.kind == core::SourceVerdict::Kind::kReject)};
  }
  void waitForCalls(int n) {
    std::unique_lock<std::mutex> lock(mutex);
    cv.wait(lock, [&] { return calls == n; });
  }
  // Lets the held calls "commit".
  void release() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      open = true;
    }
    cv.notify_all();
  }
};

channels::mllp::MllpSourceConfig scriptedConfig(const std::string& channel, int port = 0) {
  channels::mllp::MllpSourceConfig c;
  c.channelId = channel;
  c.listener.port = port;
  return c;
}

// Opens a source and starts it with `gate` (when given).
std::unique_ptr<channels::mllp::MllpSource> startScripted(
    const channels::mllp::MllpSourceConfig& config, const std::shared_ptr<ScriptedGate>& gate) {
  auto source = channels::mllp::MllpSource::open(config);
  BOOST_REQUIRE_MESSAGE(source.has_value(), (source ? std::string() : source.error().message));
  if (gate) {
    gate->source = source->get();
    auto started = (*source)->start(
        [gate](const core::HttpRequest& r, std::chrono::milliseconds) { return (*gate)(r); });
    BOOST_REQUIRE(started.has_value());
  }
  return std::move(*source);
}

int freePort() {
  auto probe = channels::mllp::listenTcp("127.0.0.1", 0);
  BOOST_REQUIRE(probe.has_value());
  return channels::mllp::boundPort(*probe);
}

}  // namespace

BOOST_AUTO_TEST_CASE(ack_is_sent_only_after_the_commit_returns) {
  auto gate = std::make_shared<ScriptedGate>();
  gate->open = false;
  auto source = startScripted(scriptedConfig("held"), gate);
  MllpClient client(source->port());
  BOOST_REQUIRE(client.send(adtA04("HELD1")));
  gate->waitForCalls(1);
  // The commit has not returned: no byte may have been answered.
  BOOST_TEST(client.silentFor(300));
  gate->release();
  expectAnswer(client, "AA", "HELD1");
}

BOOST_AUTO_TEST_CASE(a_message_that_cannot_be_stored_is_answered_AE_and_the_connection_survives) {
  auto gate = std::make_shared<ScriptedGate>();
  gate->failCommit = true;
  auto source = startScripted(scriptedConfig("down"), gate);
  MllpClient client(source->port());
  BOOST_REQUIRE(client.send(adtA04("DOWN1")));
  auto nack = expectAnswer(client, "AE", "DOWN1");
  BOOST_TEST(field(nack, "ERR-3.1") == "207");
  BOOST_TEST(field(nack, "ERR-8").find("send it again") != std::string::npos);
  {
    std::lock_guard<std::mutex> lock(gate->mutex);
    gate->failCommit = false;
  }
  BOOST_REQUIRE(client.send(adtA04("DOWN1")));
  expectAnswer(client, "AA");
}

BOOST_AUTO_TEST_CASE(a_reloaded_channel_takes_over_its_listener) {
  const int port = freePort();
  auto first = std::make_shared<ScriptedGate>();
  auto second = std::make_shared<ScriptedGate>();
  auto a = startScripted(scriptedConfig("reload", port), first);
  // Same channel and address while the old one still runs: no bind error, same socket; the
  // old one serves until the new one is started.
  auto b = startScripted(scriptedConfig("reload", port), nullptr);
  BOOST_TEST(b->port() == port);
  MllpClient client(port);
  BOOST_REQUIRE(client.send(adtA04("R0")));
  BOOST_REQUIRE(client.read().has_value());
  BOOST_TEST(first->calls == 1);
  second->source = b.get();
  BOOST_REQUIRE(b->start([second](const core::HttpRequest& r, std::chrono::milliseconds) {
                   return (*second)(r);
                 }).has_value());
  a.reset();  // the old channel goes; the listener stays with the new one
  BOOST_REQUIRE(client.send(adtA04("R1")));
  expectAnswer(client, "AA");
  BOOST_TEST(first->calls == 1);
  BOOST_TEST(second->calls == 1);
  client.close();
  b.reset();  // the last holder closes the socket
  MllpClient late(port);
  BOOST_TEST(!late.connected());
}

BOOST_AUTO_TEST_CASE(a_failed_reload_leaves_the_listener_with_the_running_source) {
  const int port = freePort();
  auto running = std::make_shared<ScriptedGate>();
  auto a = startScripted(scriptedConfig("revert", port), running);
  // A reload builds the new source, then fails on another part of the channel and drops it
  // before the engine started it.
  startScripted(scriptedConfig("revert", port), nullptr).reset();
  MllpClient client(port);
  BOOST_REQUIRE(client.connected());
  BOOST_REQUIRE(client.send(adtA04("V1")));
  expectAnswer(client, "AA");
  BOOST_TEST(running->calls == 1);
}

BOOST_AUTO_TEST_CASE(before_start_messages_are_answered_AE_and_stop_closes_the_listener) {
  auto source = startScripted(scriptedConfig("unstarted"), nullptr);
  MllpClient client(source->port());
  BOOST_REQUIRE(client.send(adtA04("EARLY1")));
  auto nack = expectAnswer(client, "AE");
  BOOST_TEST(field(nack, "ERR-8").find("not taking messages yet") != std::string::npos);

  auto gate = std::make_shared<ScriptedGate>();
  gate->source = source.get();
  BOOST_REQUIRE(source
                    ->start([gate](const core::HttpRequest& r, std::chrono::milliseconds) {
                      return (*gate)(r);
                    })
                    .has_value());
  BOOST_REQUIRE(client.send(adtA04("EARLY1")));
  expectAnswer(client, "AA");
  // Started once only.
  BOOST_TEST(!source
                  ->start([](const core::HttpRequest&, std::chrono::milliseconds) {
                    return core::IntakeReply{};
                  })
                  .has_value());

  const int port = source->port();
  source->stop();
  BOOST_TEST(!client.read(2000).has_value());
  MllpClient late(port);
  BOOST_TEST(!late.connected());
  source->stop();  // idempotent; the destructor stops too
}

BOOST_AUTO_TEST_CASE(stop_waits_for_the_message_in_flight) {
  auto gate = std::make_shared<ScriptedGate>();
  gate->open = false;
  auto source = startScripted(scriptedConfig("inflight"), gate);
  MllpClient client(source->port());
  BOOST_REQUIRE(client.send(adtA04("FLIGHT1")));
  gate->waitForCalls(1);
  auto stopped = std::async(std::launch::async, [&] { source->stop(); });
  // The engine may not go while its gate is in use.
  BOOST_TEST((stopped.wait_for(std::chrono::milliseconds(300)) == std::future_status::timeout));
  gate->release();
  stopped.get();
  BOOST_TEST(gate->calls == 1);
}

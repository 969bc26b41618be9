// The engine's spine with a fake clock and a real SQLite store: channel config errors, intake,
// pipeline, deliveries with backoff, permanent failures, dead letters, circuit breaking, replay.
#define BOOST_TEST_MODULE runtime
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "channels/http/http_source.h"
#include "engine/admin/admin_api.h"
#include "engine/app/builtin_connectors.h"
#include "engine/app/commands.h"
#include "engine/runtime/circuit_breaker.h"
#include "engine/runtime/engine.h"
#include "tests/support/test_engine.h"

using namespace switchboard;
namespace fs = std::filesystem;

namespace {

fs::path tempDir(const std::string& name) {
  static int counter = 0;
  fs::path dir = fs::temp_directory_path() /
                 ("sb-runtime-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void writeFile(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

// A destination whose answers are scripted by the test; records what it was sent.
struct Script {
  std::mutex mutex;
  std::deque<core::DeliveryResult> answers;  // empty: answer ok
  std::vector<std::string> sent;
  std::vector<int> attempts;
};

class ScriptedDestination final : public core::Destination {
 public:
  explicit ScriptedDestination(std::shared_ptr<Script> script) : script_(std::move(script)) {}
  std::string endpointKey() const override { return "scripted://peer"; }
  core::DeliveryResult send(const core::DeliveryRequest& request) override {
    std::lock_guard<std::mutex> lock(script_->mutex);
    script_->sent.emplace_back(request.payload);
    script_->attempts.push_back(request.attempt);
    if (script_->answers.empty()) return core::DeliveryResult::ok("fine", 200);
    auto a = script_->answers.front();
    script_->answers.pop_front();
    return a;
  }

 private:
  std::shared_ptr<Script> script_;
};

struct Fixture {
  std::shared_ptr<Script> script = std::make_shared<Script>();
  std::shared_ptr<core::FakeClock> clock = std::make_shared<core::FakeClock>();
  testing::TestEngine test;
  runtime::Engine* engine = &test.engine();
  const fs::path& dir = test.dir();
  core::ConnectorRegistry& registry = test.registry();

  explicit Fixture(const std::string& retry = R"({"max_attempts": 3, "initial_backoff_ms": 1000, "max_backoff_ms": 60000, "jitter": 0})",
                   int breakerThreshold = 100, int handoffMax = 1024)
      : test({.name = "engine",
              .channelFile = "a.json",
              .channelJson = R"({"id": "a", "source": {"type": "http", "path": "/in/a", "idempotency_pointer": "/id"},
      "destinations": [{"name": "peer", "type": "scripted"}], "retry": )" + retry + "}",
              .registerConnectors =
                  [s = script](core::ConnectorRegistry& registry) {
                    app::registerBuiltinConnectors(registry);
                    registry.addDestination("scripted", [s](core::ConfigReader& c, const core::ConnectorContext&)
                                                            -> Result<std::unique_ptr<core::Destination>> {
                      if (auto r = c.finish(); !r) return std::unexpected(r.error());
                      return std::make_unique<ScriptedDestination>(s);
                    });
                  },
              .configure =
                  [breakerThreshold, handoffMax](runtime::EngineConfig& config) {
                    config.nodeId = "test";
                    config.handoffMax = handoffMax;
                    config.breakerFailureThreshold = breakerThreshold;
                    config.breakerOpenMs = 5000;
                  },
              .clock = clock,
              .builtins = false}) {}

  core::HttpResponse post(const std::string& body, const std::string& path = "/in/a") {
    core::HttpRequest r;
    r.method = "POST";
    r.path = path;
    r.body = body;
    r.headers.push_back({"Content-Type", "application/json"});
    return engine->handle(r);
  }
  store::MessageDetail detail(std::int64_t id) {
    auto d = engine->store().getMessage(id);
    BOOST_REQUIRE(d.has_value());
    return *d;
  }
};

std::int64_t firstId(const core::HttpResponse& r) {
  for (const auto& h : r.headers) {
    if (h.name == "X-Switchboard-Message-Ids") return std::stoll(h.value);
  }
  return 0;
}

}  // namespace

BOOST_AUTO_TEST_CASE(backoff_grows_exponentially_with_cap_and_bounded_jitter) {
  runtime::RetryPolicy p;
  p.initialBackoffMs = 100;
  p.maxBackoffMs = 1000;
  p.multiplier = 2;
  p.jitter = 0;
  BOOST_TEST(runtime::backoffMs(p, 1, 0.5) == 100);
  BOOST_TEST(runtime::backoffMs(p, 2, 0.5) == 200);
  BOOST_TEST(runtime::backoffMs(p, 4, 0.5) == 800);
  BOOST_TEST(runtime::backoffMs(p, 9, 0.5) == 1000);
  p.jitter = 0.2;
  BOOST_TEST(runtime::backoffMs(p, 1, 0.0) == 80);
  BOOST_TEST(runtime::backoffMs(p, 1, 0.999999) == 119);
}

BOOST_AUTO_TEST_CASE(circuit_breaker_opens_probes_and_closes) {
  runtime::CircuitBreakers b(3, 1000);
  for (int i = 0; i < 2; ++i) {
    BOOST_TEST(b.allow("e", 0));
    b.record("e", true, 0);
  }
  BOOST_TEST(b.allow("e", 0));
  b.record("e", true, 10);  // third failure opens
  BOOST_TEST(!b.allow("e", 500));
  BOOST_TEST(b.blocked(500).size() == 1u);
  BOOST_TEST(b.allow("e", 1010));   // the probe
  BOOST_TEST(!b.allow("e", 1011));  // only one probe at a time
  b.record("e", true, 1020);        // probe failed: open again
  BOOST_TEST(!b.allow("e", 1500));
  BOOST_TEST(b.allow("e", 2020));
  b.record("e", false, 2030);  // probe succeeded: closed
  BOOST_TEST(b.allow("e", 2031));
  BOOST_TEST(b.blocked(2031).empty());
  BOOST_TEST(b.allow("other", 0));
}

BOOST_AUTO_TEST_CASE(bad_channel_configs_name_file_field_and_expectation) {
  core::ConnectorRegistry registry;
  app::registerBuiltinConnectors(registry);
  core::ConnectorContext ctx{"", "/tmp", "/tmp"};
  struct Case {
    std::string json;
    std::string expect;
  };
  std::vector<Case> cases = {
      {R"({"id": "x", "source": {"type": "nope", "path": "/a"}, "destinations": [{"name": "d", "type": "file", "directory": "o"}]})",
       "/source/type: a source type, one of: http"},
      {R"({"id": "x", "source": {"type": "http", "path": "/a", "pth": 1}, "destinations": [{"name": "d", "type": "file", "directory": "o"}]})",
       "/source/pth: unknown key \"pth\""},
      {R"({"id": "x", "source": {"type": "http", "path": "a"}, "destinations": [{"name": "d", "type": "file", "directory": "o"}]})",
       "/source/path: expected a path starting with '/'"},
      {R"({"id": "x", "source": {"type": "http", "path": "/a"}})", "/destinations: required array is missing"},
      {R"({"id": "x", "source": {"type": "http", "path": "/a"}, "destinations": []})", "/destinations: at least one destination"},
      {R"({"id": "x y", "source": {"type": "http", "path": "/a"}, "destinations": [{"name": "d", "type": "file", "directory": "o"}]})",
       "/id: letters, digits"},
      {R"({"id": "x", "source": {"type": "http", "path": "/a"}, "destinations": [{"name": "d", "type": "file", "directory": "o"}], "retry": {"jitter": 2}})",
       "/retry/jitter: a number from 0 to 1"},
      {R"({"id": "x", "source": {"type": "http", "path": "/a"}, "destinations": [{"name": "d", "type": "file"}]})",
       "/destinations/0/directory: required string is missing"},
      {R"({"id": "x", "source": {"type": "http", "path": "/a", "secret_header": "X-S"}, "destinations": [{"name": "d", "type": "file", "directory": "o"}]})",
       "/source/secret: a non-empty secret"},
      {R"({"id": "x", "source": {"type": "http", "path": "/a"}, "filter": {"type": "json-match", "pointer": "kind"}, "destinations": [{"name": "d", "type": "file", "directory": "o"}]})",
       "/filter/pointer: a valid JSON pointer"},
  };
  fs::path dir = tempDir("configs");
  int i = 0;
  for (const auto& c : cases) {
    fs::path file = dir / ("c" + std::to_string(i++) + ".json");
    writeFile(file, c.json);
    auto r = runtime::loadChannel(file.string(), registry, ctx);
    BOOST_REQUIRE_MESSAGE(!r.has_value(), "accepted: " + c.json);
    BOOST_TEST_CONTEXT(c.json) {
      BOOST_TEST(r.error().message.find(file.string()) != std::string::npos);
      BOOST_TEST(r.error().message.find(c.expect) != std::string::npos, r.error().message);
    }
  }
  // Two channels on one path: the directory fails as a whole.
  fs::path both = tempDir("dup");
  writeFile(both / "a.json", R"({"id": "a", "source": {"type": "http", "path": "/same"}, "destinations": [{"name": "d", "type": "file", "directory": "o"}]})");
  writeFile(both / "b.json", R"({"id": "b", "source": {"type": "http", "path": "/same"}, "destinations": [{"name": "d", "type": "file", "directory": "o"}]})");
  auto all = runtime::loadChannels(both.string(), registry, ctx);
  BOOST_REQUIRE(!all.has_value());
  BOOST_TEST(all.error().message.find("/source/path: a path not already served") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(http_source_checks_secret_json_and_idempotency_key) {
  channels::HttpSourceConfig c;
  c.path = "/x";
  c.secretHeader = "X-Secret";
  c.secret = "right";
  c.idempotencyPointer = "/id";
  channels::HttpJsonSource source(c);
  core::HttpRequest r;
  r.method = "POST";
  r.path = "/x";
  r.body = R"({"id": "k1"})";
  BOOST_TEST(static_cast<int>(source.handle(r).kind) == static_cast<int>(core::SourceVerdict::Kind::kRefuse));
  r.headers.push_back({"X-Secret", "wrong"});
  auto refused = source.handle(r);
  BOOST_TEST(static_cast<int>(refused.kind) == static_cast<int>(core::SourceVerdict::Kind::kRefuse));
  BOOST_TEST(refused.reply.status == 401);
  r.headers.back().value = "right";
  auto ok = source.handle(r);
  BOOST_REQUIRE(static_cast<int>(ok.kind) == static_cast<int>(core::SourceVerdict::Kind::kAccept));
  BOOST_TEST(ok.messages.at(0).idempotencyKey == "k1");
  r.body = R"({"id": 42})";
  BOOST_TEST(source.handle(r).messages.at(0).idempotencyKey == "42");
  r.body = R"({"id": "k1"} trailing)";
  auto bad = source.handle(r);
  BOOST_TEST(static_cast<int>(bad.kind) == static_cast<int>(core::SourceVerdict::Kind::kReject));
  BOOST_TEST(bad.reply.status == 400);
  BOOST_TEST(bad.reply.body.find("malformed JSON") != std::string::npos);
  r.body = R"({"other": 1})";
  auto nokey = source.handle(r);
  BOOST_TEST(nokey.reply.status == 422);
  BOOST_TEST(channels::constantTimeEquals("abc", "abc"));
  BOOST_TEST(!channels::constantTimeEquals("abc", "abd"));
  BOOST_TEST(!channels::constantTimeEquals("abc", "abcd"));
  BOOST_TEST(!channels::constantTimeEquals("", "a"));
}

BOOST_AUTO_TEST_CASE(message_flows_to_destination_once_and_duplicates_are_ignored) {
  Fixture f;
  auto r1 = f.post(R"({"id": "m1", "v": 1})");
  BOOST_TEST(r1.status == 200);
  auto r2 = f.post(R"({"id": "m1", "v": 1})");
  BOOST_TEST(r2.status == 200);
  BOOST_TEST(firstId(r1) == firstId(r2));
  BOOST_TEST(f.engine->runPipelineOnce("w") == 1);
  BOOST_TEST(f.engine->runPipelineOnce("w") == 0);
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 1);
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 0);
  BOOST_REQUIRE_EQUAL(f.script->sent.size(), 1u);
  BOOST_TEST(f.script->sent[0] == R"({"id": "m1", "v": 1})");
  auto d = f.detail(firstId(r1));
  BOOST_TEST(d.message.status == "delivered");
  BOOST_REQUIRE_EQUAL(d.deliveries.size(), 1u);
  BOOST_TEST(d.deliveries[0].delivery.status == "succeeded");
  BOOST_TEST(d.deliveries[0].attempts.size() == 1u);
  std::vector<std::string> types;
  for (const auto& e : d.events) types.push_back(e.type);
  BOOST_TEST((std::find(types.begin(), types.end(), "received") != types.end()));
  BOOST_TEST((std::find(types.begin(), types.end(), "sent") != types.end()));
}

BOOST_AUTO_TEST_CASE(transient_failures_back_off_then_succeed) {
  Fixture f;
  f.script->answers.push_back(core::DeliveryResult::retry("HTTP 503", 503));
  f.script->answers.push_back(core::DeliveryResult::retry("timeout"));
  auto id = firstId(f.post(R"({"id": "m"})"));
  f.engine->runPipelineOnce("w");
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 1);
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 0);  // not due before the backoff
  f.clock->advance(999);
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 0);
  f.clock->advance(2);
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 1);  // second attempt fails, waits 2000 ms
  f.clock->advance(1500);
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 0);
  f.clock->advance(600);
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 1);
  BOOST_TEST((f.script->attempts == std::vector<int>{1, 2, 3}));
  auto d = f.detail(id);
  BOOST_TEST(d.deliveries.at(0).delivery.status == "succeeded");
  BOOST_TEST(d.deliveries.at(0).attempts.size() == 3u);
  BOOST_TEST(d.deliveries.at(0).attempts.at(0).statusCode == 503);
}

BOOST_AUTO_TEST_CASE(retry_after_from_the_peer_is_honoured) {
  Fixture f;
  auto r = core::DeliveryResult::retry("HTTP 429", 429);
  r.retryAfter = std::chrono::milliseconds(30000);
  f.script->answers.push_back(r);
  f.post(R"({"id": "m"})");
  f.engine->runPipelineOnce("w");
  f.engine->runDeliveriesOnce("w");
  f.clock->advance(29000);
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 0);
  f.clock->advance(1001);
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 1);
}

BOOST_AUTO_TEST_CASE(exhausted_and_permanent_failures_become_dead_letters_and_replay_works) {
  Fixture f;
  for (int i = 0; i < 3; ++i) f.script->answers.push_back(core::DeliveryResult::retry("HTTP 500", 500));
  f.script->answers.push_back(core::DeliveryResult::fail("HTTP 400 bad request", 400));
  auto a = firstId(f.post(R"({"id": "a"})"));
  f.engine->runPipelineOnce("w");
  for (int i = 0; i < 3; ++i) {
    f.engine->runDeliveriesOnce("w");
    f.clock->advance(100000);
  }
  auto da = f.detail(a);
  BOOST_TEST(da.deliveries.at(0).delivery.status == "dead");
  BOOST_TEST(da.deliveries.at(0).delivery.deadReason == "max_attempts");
  BOOST_TEST(da.message.status == "dead");

  auto b = firstId(f.post(R"({"id": "b"})"));
  f.engine->runPipelineOnce("w");
  f.engine->runDeliveriesOnce("w");
  auto db = f.detail(b);
  BOOST_TEST(db.deliveries.at(0).delivery.status == "dead");
  BOOST_TEST(db.deliveries.at(0).delivery.deadReason == "permanent");
  BOOST_TEST(db.deliveries.at(0).delivery.lastStatusCode == 400);

  store::DeliveryQuery q;
  q.status = "dead";
  auto dead = f.engine->store().listDeliveries(q);
  BOOST_REQUIRE(dead.has_value());
  BOOST_TEST(dead->size() == 2u);

  // Replay the delivery: the peer now accepts.
  BOOST_REQUIRE(f.engine->store().replayDelivery(db.deliveries.at(0).delivery.id, f.clock->nowMs(), "test").has_value());
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 1);
  BOOST_TEST(f.detail(b).deliveries.at(0).delivery.status == "succeeded");
  BOOST_TEST(f.detail(b).message.status == "delivered");

  // Replay the whole message: the pipeline runs again and a second delivery is made.
  BOOST_REQUIRE(f.engine->store().replayMessage(a, f.clock->nowMs(), "test").has_value());
  BOOST_TEST(f.engine->runPipelineOnce("w") == 1);
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 1);
  auto again = f.detail(a);
  BOOST_TEST(again.deliveries.size() == 2u);
  BOOST_TEST(again.message.status == "delivered");
}

BOOST_AUTO_TEST_CASE(max_age_stops_retrying) {
  Fixture f(R"({"max_attempts": 100, "max_age_seconds": 10, "initial_backoff_ms": 4000, "jitter": 0})");
  for (int i = 0; i < 10; ++i) f.script->answers.push_back(core::DeliveryResult::retry("HTTP 503", 503));
  auto id = firstId(f.post(R"({"id": "old"})"));
  f.engine->runPipelineOnce("w");
  f.engine->runDeliveriesOnce("w");  // t=0, next at 4s
  f.clock->advance(4000);
  f.engine->runDeliveriesOnce("w");  // t=4s, next would be 12s > max age
  auto d = f.detail(id);
  BOOST_TEST(d.deliveries.at(0).delivery.status == "dead");
  BOOST_TEST(d.deliveries.at(0).delivery.deadReason == "max_age");
}

BOOST_AUTO_TEST_CASE(open_circuit_pauses_an_endpoint_without_spending_attempts) {
  Fixture f(R"({"max_attempts": 50, "initial_backoff_ms": 1, "max_backoff_ms": 1, "jitter": 0})", 2);
  for (int i = 0; i < 2; ++i) f.script->answers.push_back(core::DeliveryResult::retry("down", 503));
  for (int i = 0; i < 5; ++i) f.post(R"({"id": "c)" + std::to_string(i) + "\"}");
  f.engine->runPipelineOnce("w");
  f.engine->runDeliveriesOnce("w");  // two failures open the circuit; the rest are skipped
  std::size_t sentWhileOpen = f.script->sent.size();
  BOOST_TEST(sentWhileOpen == 2u);
  f.clock->advance(10);
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 0);  // paused: nothing claimed, nothing sent
  BOOST_TEST(f.script->sent.size() == sentWhileOpen);
  f.clock->advance(5000);  // open period over: a probe goes out and succeeds, circuit closes
  int handled = 0;
  for (int i = 0; i < 5; ++i) handled += f.engine->runDeliveriesOnce("w");
  BOOST_TEST(f.script->sent.size() == 7u);  // 2 failed + 5 successful, nobody twice after success
  store::DeliveryQuery q;
  q.status = "succeeded";
  BOOST_TEST(f.engine->store().listDeliveries(q)->size() == 5u);
}

// Intake hands what it committed straight to the pipeline: stored leased to this engine (no other
// worker or engine claims it), processed without a claim, and back to the store's claims when the
// hand-off is full, when its lease ran low before a worker got to it, or when the engine stops.
BOOST_AUTO_TEST_CASE(accepted_messages_are_handed_to_the_pipeline_under_a_lease) {
  Fixture f;
  auto a = firstId(f.post(R"({"id": "h1"})"));
  auto b = firstId(f.post(R"({"id": "h2"})"));
  f.post(R"({"id": "h1"})");  // a duplicate is not handed over twice
  BOOST_TEST(f.engine->metricsText().find("switchboard_pipeline_handed_over 2\n") != std::string::npos);
  BOOST_TEST(f.engine->store().claimMessages("other", 10, f.clock->nowMs(), 1000)->empty());
  BOOST_TEST(f.engine->runPipelineOnce("w") == 2);
  BOOST_TEST(f.engine->metricsText().find("switchboard_pipeline_handed_over 0\n") != std::string::npos);
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 2);
  for (auto id : {a, b}) {
    auto d = f.detail(id);
    BOOST_TEST(d.message.status == "delivered");
    BOOST_TEST(d.deliveries.size() == 1u);
  }
  BOOST_TEST(f.script->sent.size() == 2u);
  BOOST_TEST(f.engine->runPipelineOnce("w") == 0);
}

BOOST_AUTO_TEST_CASE(without_the_hand_off_accepted_messages_wait_unclaimed_in_the_store) {
  Fixture f(R"({"max_attempts": 3})", 100, 0);
  auto a = firstId(f.post(R"({"id": "u1"})"));
  auto claimed = f.engine->store().claimMessages("other", 10, f.clock->nowMs(), 1000);
  BOOST_REQUIRE(claimed.has_value());
  BOOST_REQUIRE_EQUAL(claimed->size(), 1u);
  BOOST_TEST(claimed->at(0).id == a);
}

BOOST_AUTO_TEST_CASE(beyond_the_hand_off_limit_messages_are_claimed_from_the_store) {
  Fixture f(R"({"max_attempts": 3})", 100, 1);
  for (int i = 0; i < 3; ++i) f.post(R"({"id": "l)" + std::to_string(i) + "\"}");
  BOOST_TEST(f.engine->runPipelineOnce("w") == 1);  // the one handed over
  BOOST_TEST(f.engine->runPipelineOnce("w") == 2);  // the two stored unclaimed
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 3);
  BOOST_TEST(f.script->sent.size() == 3u);
}

BOOST_AUTO_TEST_CASE(a_handed_over_message_whose_lease_ran_low_is_claimed_once_it_expires) {
  Fixture f;
  auto a = firstId(f.post(R"({"id": "late"})"));
  const auto lease = f.engine->config().leaseMs;
  f.clock->advance(lease * 6 / 10);  // under half of the lease left: not processed under it
  BOOST_TEST(f.engine->runPipelineOnce("w") == 0);
  BOOST_TEST(f.detail(a).message.status == "received");
  f.clock->advance(lease * 4 / 10);  // expired: claimable
  BOOST_TEST(f.engine->runPipelineOnce("w") == 1);
  auto d = f.detail(a);
  BOOST_TEST(d.message.status == "processed");
  bool expired = false;
  for (const auto& e : d.events) expired = expired || e.type == "lease-expired";
  BOOST_TEST(expired);
}

BOOST_AUTO_TEST_CASE(stopping_returns_handed_over_messages_to_the_store) {
  Fixture f;
  auto a = firstId(f.post(R"({"id": "s1"})"));
  f.engine->stop();
  auto claimed = f.engine->store().claimMessages("other", 10, f.clock->nowMs(), 1000);
  BOOST_REQUIRE(claimed.has_value());
  BOOST_REQUIRE_EQUAL(claimed->size(), 1u);
  BOOST_TEST(claimed->at(0).id == a);
}

namespace {
// A transformer that logs process() and settle() calls in order; settle fails while told to.
struct SettleLog {
  std::mutex mutex;
  std::vector<std::string> calls;
  bool failSettle = false;
};

class SettlingStage final : public core::Stage {
 public:
  explicit SettlingStage(std::shared_ptr<SettleLog> log) : log_(std::move(log)) {}
  core::StageResult process(core::PipelineMessage& pm) const override {
    std::lock_guard<std::mutex> lock(log_->mutex);
    log_->calls.push_back("process " + pm.payload);
    return core::StageResult::proceed();
  }
  Result<void> settle() const override {
    std::lock_guard<std::mutex> lock(log_->mutex);
    log_->calls.push_back("settle");
    if (log_->failSettle) return fail(ErrorCode::kTransient, "disk said no");
    return {};
  }

 private:
  std::shared_ptr<SettleLog> log_;
};

struct SettleFixture {
  std::shared_ptr<SettleLog> log = std::make_shared<SettleLog>();
  std::shared_ptr<Script> script = std::make_shared<Script>();
  std::shared_ptr<core::FakeClock> clock = std::make_shared<core::FakeClock>();
  testing::TestEngine test;
  runtime::Engine* engine;

  // pipelineWindowMs: workers.pipeline_window_ms (0: off); serve: threads running.
  explicit SettleFixture(int pipelineWindowMs = 0, bool serve = false, int claimBatch = 64)
      : test(
            {.name = "settle",
             .channelFile = "s.json",
             .channelJson =
                 R"({"id": "s", "source": {"type": "http", "path": "/in/s", "idempotency_pointer": "/id"},
         "transformer": [{"type": "settling"}], "destinations": [{"name": "peer", "type": "scripted"}]})",
             .registerConnectors =
                 [l = log, s = script](core::ConnectorRegistry& registry) {
                   app::registerBuiltinConnectors(registry);
                   registry.addStage(
                       "settling",
                       [l](core::ConfigReader& c,
                           const core::ConnectorContext&) -> Result<std::unique_ptr<core::Stage>> {
                         if (auto r = c.finish(); !r) return std::unexpected(r.error());
                         return std::make_unique<SettlingStage>(l);
                       });
                   registry.addDestination("scripted",
                                           [s](core::ConfigReader& c, const core::ConnectorContext&)
                                               -> Result<std::unique_ptr<core::Destination>> {
                                             if (auto r = c.finish(); !r)
                                               return std::unexpected(r.error());
                                             return std::make_unique<ScriptedDestination>(s);
                                           });
                 },
             .configure =
                 [pipelineWindowMs, claimBatch](runtime::EngineConfig& config) {
                   config.nodeId = "test";
                   config.pipelineWindowMs = pipelineWindowMs;
                   config.claimBatch = claimBatch;
                 },
             .clock = clock,
             .serve = serve,
             .builtins = false}),
        engine(&test.engine()) {}

  std::int64_t post(const std::string& body) {
    core::HttpRequest r;
    r.method = "POST";
    r.path = "/in/s";
    r.body = body;
    r.headers.push_back({"Content-Type", "application/json"});
    return firstId(engine->handle(r));
  }
  std::string status(std::int64_t id) { return engine->store().getMessage(id)->message.status; }
};
}  // namespace

BOOST_AUTO_TEST_CASE(stages_settle_once_per_batch_before_the_outcomes_commit) {
  SettleFixture f;
  auto a = f.post(R"({"id": "1"})");
  auto b = f.post(R"({"id": "2"})");
  BOOST_TEST(f.engine->runPipelineOnce("w") == 2);
  const std::vector<std::string> want{"process {\"id\": \"1\"}", "process {\"id\": \"2\"}", "settle"};
  BOOST_TEST(f.log->calls == want, boost::test_tools::per_element());
  BOOST_TEST(f.status(a) == "processed");
  BOOST_TEST(f.status(b) == "processed");
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 2);
}

namespace {
// Posts to a running SettleFixture engine and waits (up to `limit`) for `n` settles in all.
bool waitForSettles(SettleFixture& f, long n, std::chrono::milliseconds limit) {
  auto settles = [&] {
    std::lock_guard<std::mutex> lock(f.log->mutex);
    return std::count(f.log->calls.begin(), f.log->calls.end(), "settle");
  };
  const auto until = std::chrono::steady_clock::now() + limit;
  while (settles() < n && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return settles() >= n;
}
}  // namespace

// workers.pipeline_window_ms: the first message after a quiet spell runs at once; messages that
// come while the pipeline is busy wait for the oldest to be a window old and run, settle and
// finish as one batch; a claim batch ends the wait. The windows are far longer than a pass, so a
// wait that should not happen shows as a timeout.
BOOST_AUTO_TEST_CASE(a_busy_pipeline_waits_its_window_and_runs_what_came_as_one_batch) {
  const std::vector<std::string> want{"process {\"id\": \"1\"}", "settle",
                                      "process {\"id\": \"2\"}", "process {\"id\": \"3\"}",
                                      "settle"};
  {
    SettleFixture f(5000, true);
    f.post(R"({"id": "1"})");
    BOOST_REQUIRE_MESSAGE(waitForSettles(f, 1, std::chrono::milliseconds(4000)),
                          "an idle pipeline waited for its window");
    f.post(R"({"id": "2"})");
    f.post(R"({"id": "3"})");
    BOOST_REQUIRE(waitForSettles(f, 2, std::chrono::seconds(30)));
    std::lock_guard<std::mutex> lock(f.log->mutex);
    BOOST_TEST(f.log->calls == want, boost::test_tools::per_element());
  }
  // A claim batch handed over ends the wait: two messages with claim_batch 2 run together at
  // once, not after a ten-minute window.
  SettleFixture f(600000, true, 2);
  f.post(R"({"id": "1"})");
  BOOST_REQUIRE(waitForSettles(f, 1, std::chrono::seconds(30)));
  f.post(R"({"id": "2"})");
  f.post(R"({"id": "3"})");
  BOOST_REQUIRE_MESSAGE(waitForSettles(f, 2, std::chrono::seconds(30)),
                        "a full batch waited for the window");
  std::lock_guard<std::mutex> lock(f.log->mutex);
  BOOST_TEST(f.log->calls == want, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_stage_that_cannot_settle_leaves_its_messages_to_run_again) {
  SettleFixture f;
  auto a = f.post(R"({"id": "1"})");
  f.log->failSettle = true;
  BOOST_TEST(f.engine->runPipelineOnce("w") == 0);
  BOOST_TEST(f.status(a) == "received");  // nothing committed: no outcome, no delivery
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 0);
  BOOST_TEST(f.script->sent.empty());
  // Still leased by the pipeline: no one else takes it before the lease ends ...
  BOOST_TEST(f.engine->store().claimMessages("other", 10, f.clock->nowMs(), 1000)->empty());
  f.log->failSettle = false;
  f.clock->advance(f.engine->config().leaseMs);
  // ... then it runs through the stages again and settles.
  BOOST_TEST(f.engine->runPipelineOnce("w") == 1);
  BOOST_TEST(f.status(a) == "processed");
  const std::vector<std::string> want{"process {\"id\": \"1\"}", "settle", "process {\"id\": \"1\"}", "settle"};
  BOOST_TEST(f.log->calls == want, boost::test_tools::per_element());
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 1);
  BOOST_TEST(f.script->sent.size() == 1u);
}

// An engine whose channel "chain" (HTTP at /in/chain) sends to the scripted "ehr" and then,
// after it, the scripted "reply", as the shipped channels send to the EHR and then the patient.
testing::TestEngineOptions replyAfterEhr(const std::string& name, std::shared_ptr<Script> script,
                                         std::shared_ptr<core::Clock> clock, bool serve) {
  return {.name = name,
          .channelFile = "chain.json",
          .channelJson = R"({"id": "chain", "source": {"type": "http", "path": "/in/chain", "idempotency_pointer": "/id"},
            "destinations": [{"name": "ehr", "type": "scripted"}, {"name": "reply", "type": "scripted", "after": "ehr"}]})",
          .registerConnectors =
              [script](core::ConnectorRegistry& registry) {
                app::registerBuiltinConnectors(registry);
                registry.addDestination("scripted", [script](core::ConfigReader& c, const core::ConnectorContext&)
                                                        -> Result<std::unique_ptr<core::Destination>> {
                  if (auto r = c.finish(); !r) return std::unexpected(r.error());
                  return std::make_unique<ScriptedDestination>(script);
                });
              },
          .configure = [](runtime::EngineConfig& config) { config.nodeId = "test"; },
          .clock = std::move(clock),
          .serve = serve,
          .builtins = false};
}

BOOST_AUTO_TEST_CASE(a_delivery_pass_claims_its_next_batch_with_its_attempts) {
  auto script = std::make_shared<Script>();
  auto clock = std::make_shared<core::FakeClock>();
  testing::TestEngine test(replyAfterEhr("ahead", script, clock, false));
  auto& engine = test.engine();
  core::HttpRequest r;
  r.method = "POST";
  r.path = "/in/chain";
  r.body = R"({"id": "1"})";
  r.headers.push_back({"Content-Type", "application/json"});
  auto id = firstId(engine.handle(r));
  BOOST_TEST(engine.runPipelineOnce("w") == 1);
  std::vector<store::DeliveryRecord> ahead;
  BOOST_TEST(engine.runDeliveriesOnce("w", ahead) == 1);  // the ehr, claimed; its reply claimed with its attempt
  BOOST_REQUIRE_EQUAL(ahead.size(), 1u);
  BOOST_TEST(ahead[0].destination == "reply");
  BOOST_TEST(ahead[0].upstreamStatus == "succeeded");
  // Already leased to w: another worker finds nothing.
  BOOST_TEST(engine.runDeliveriesOnce("x") == 0);
  BOOST_TEST(engine.runDeliveriesOnce("w", ahead) == 1);  // the reply, from `ahead`
  BOOST_TEST(ahead.empty());
  BOOST_TEST(script->sent.size() == 2u);
  BOOST_TEST(engine.store().getMessage(id)->message.status == "delivered");
}

BOOST_AUTO_TEST_CASE(a_running_engine_hands_due_deliveries_to_an_idle_worker) {
  auto script = std::make_shared<Script>();
  testing::TestEngine test(replyAfterEhr("dhand", script, nullptr, true));
  auto& engine = test.engine();
  auto handedTotal = [&] {
    const std::string text = engine.metricsText();
    const std::string key = "\nswitchboard_deliveries_handed_over_total ";
    auto at = text.find(key);
    BOOST_REQUIRE(at != std::string::npos);
    return std::stoll(text.substr(at + key.size()));
  };
  BOOST_TEST(handedTotal() == 0);
  // One message after another, each delivered before the next: the workers are idle between.
  for (int i = 0; i < 3; ++i) {
    auto r = testing::httpPost(engine.port(), "/in/chain", R"({"id": "m)" + std::to_string(i) + "\"}",
                               {{"Content-Type", "application/json"}});
    BOOST_REQUIRE(r.status == 200);
    const auto id = std::stoll(r.ids);
    std::string status;
    for (int t = 0; t < 500 && status != "delivered"; ++t) {
      status = engine.store().getMessage(id)->message.status;
      if (status != "delivered") std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    BOOST_TEST(status == "delivered");
  }
  BOOST_TEST(script->sent.size() == 6u);  // each message's ehr and reply, once
  // Each message's ehr delivery (the reply waits for it, so it is claimed with its attempt).
  BOOST_TEST(handedTotal() >= 1);
  BOOST_TEST(handedTotal() <= 3);
}

BOOST_AUTO_TEST_CASE(rejected_input_is_recorded_and_answered_precisely) {
  Fixture f;
  auto r = f.post("{not json");
  BOOST_TEST(r.status == 400);
  BOOST_TEST(r.body.find("\"code\":\"structure\"") != std::string::npos);
  auto d = f.detail(firstId(r));
  BOOST_TEST(d.message.status == "rejected");
  BOOST_TEST(d.message.body == "{not json");
  BOOST_TEST(f.engine->runPipelineOnce("w") == 0);  // rejected messages are not processed
  BOOST_TEST(!f.engine->store().replayMessage(d.message.id, f.clock->nowMs(), "x").has_value());
}

BOOST_AUTO_TEST_CASE(filters_drop_messages_with_an_event) {
  Fixture f;
  // Replace the channel with one that filters on /kind.
  fs::path dir = tempDir("filter");
  writeFile(dir / "f.json", R"({"id": "a", "source": {"type": "http", "path": "/in/a"},
    "filter": {"type": "json-match", "pointer": "/kind", "equals": ["order"]},
    "destinations": [{"name": "peer", "type": "scripted"}]})");
  core::ConnectorContext ctx{"", (f.dir / "var").string(), dir.string()};
  auto ch = runtime::loadChannels(dir.string(), f.registry, ctx);
  BOOST_REQUIRE(ch.has_value());
  runtime::EngineConfig config;
  config.nodeId = "t2";
  auto store = store::openStore("sqlite:" + (dir / "sb.db").string());
  BOOST_REQUIRE(store.has_value());
  runtime::Engine engine(config, std::move(*store), std::move(*ch), f.clock, std::make_shared<core::SeededRandom>(1));
  core::HttpRequest req;
  req.method = "POST";
  req.path = "/in/a";
  req.body = R"({"kind": "note"})";
  auto id = firstId(engine.handle(req));
  req.body = R"({"kind": "order"})";
  auto id2 = firstId(engine.handle(req));
  engine.runPipelineOnce("w");
  BOOST_TEST(engine.store().getMessage(id)->message.status == "filtered");
  BOOST_TEST(engine.store().getMessage(id2)->message.status == "processed");
}

BOOST_AUTO_TEST_CASE(admin_api_requires_the_token_and_serves_the_browser) {
  Fixture f;
  auto id = firstId(f.post(R"({"id": "adm"})"));
  f.engine->runPipelineOnce("w");
  f.engine->runDeliveriesOnce("w");
  admin::AdminApi api(f.engine->store(), [&] { return f.engine->channels(); }, "tok", f.clock, nullptr);
  core::HttpRequest r;
  r.method = "GET";
  r.path = "/api/messages";
  BOOST_TEST(api.handle(r).status == 401);
  r.headers.push_back({"Authorization", "Bearer nope"});
  BOOST_TEST(api.handle(r).status == 401);
  r.headers.back().value = "Bearer tok";
  auto list = api.handle(r);
  BOOST_TEST(list.status == 200);
  BOOST_TEST(list.body.find("\"status\":\"delivered\"") != std::string::npos);
  r.query = "status=received";
  BOOST_TEST(api.handle(r).body.find("\"items\":[]") != std::string::npos);
  r.query = "limit=0";
  BOOST_TEST(api.handle(r).status == 400);
  r.query = "from=yesterday";
  BOOST_TEST(api.handle(r).status == 400);
  r.query = "";
  r.path = "/api/messages/" + std::to_string(id);
  auto one = api.handle(r);
  BOOST_TEST(one.status == 200);
  BOOST_TEST(one.body.find("\"attemptHistory\"") != std::string::npos);
  BOOST_TEST(one.body.find("\"raw\":{\"body\":\"{\\\"id\\\": \\\"adm\\\"}\"}") != std::string::npos);
  r.path = "/api/messages/999999";
  BOOST_TEST(api.handle(r).status == 404);
  r.path = "/api/messages/" + std::to_string(id) + "/replay";
  BOOST_TEST(api.handle(r).status == 405);
  r.method = "POST";
  BOOST_TEST(api.handle(r).status == 202);
  r.method = "GET";
  r.path = "/api/channels";
  auto ch = api.handle(r);
  BOOST_TEST(ch.body.find("\"path\":\"/in/a\"") != std::string::npos);
  r.path = "/api/audit";
  BOOST_TEST(api.handle(r).body.find("replay-message") != std::string::npos);
  admin::AdminApi disabled(f.engine->store(), [&] { return f.engine->channels(); }, "", f.clock, nullptr);
  BOOST_TEST(disabled.handle(r).status == 403);
  BOOST_TEST(admin::parseTimeParam("2026-11-22T10:00:00Z").value() == 1795341600000LL);
  BOOST_TEST(admin::parseTimeParam("1795341600000").value() == 1795341600000LL);
}

BOOST_AUTO_TEST_CASE(metrics_expose_counts_in_prometheus_format) {
  Fixture f;
  f.post(R"({"id": "x1"})");
  f.post(R"({"id": "x1"})");
  f.post("[broken");
  f.engine->runPipelineOnce("w");
  f.engine->runDeliveriesOnce("w");
  std::string m = f.engine->metricsText();
  BOOST_TEST(m.find("switchboard_intake_requests_total{channel=\"a\",outcome=\"accepted\"} 1") != std::string::npos);
  BOOST_TEST(m.find("switchboard_intake_requests_total{channel=\"a\",outcome=\"duplicate\"} 1") != std::string::npos);
  BOOST_TEST(m.find("switchboard_intake_requests_total{channel=\"a\",outcome=\"rejected\"} 1") != std::string::npos);
  BOOST_TEST(m.find("switchboard_messages{channel=\"a\",status=\"delivered\"} 1") != std::string::npos);
  BOOST_TEST(m.find("switchboard_delivery_latency_seconds_count{channel=\"a\",destination=\"peer\"} 1") != std::string::npos);
  BOOST_TEST(m.find("# TYPE switchboard_queue_depth gauge") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(attempts_of_repeatable_sends_are_recorded_without_a_flush_of_their_own) {
  Fixture f;
  auto flushes = [&] {
    auto stats = f.engine->store().stats();
    BOOST_REQUIRE(stats.has_value() && stats->logFlushes.has_value());
    return *stats->logFlushes;
  };
  auto idem = firstId(f.post(R"({"id": "rep-1"})"));
  f.engine->runPipelineOnce("w");
  auto before = flushes();
  core::DeliveryResult repeatable = core::DeliveryResult::ok("conditional creates", 200);
  repeatable.repeatable = true;
  f.script->answers.push_back(repeatable);
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 1);
  BOOST_TEST(flushes() == before);
  BOOST_TEST(f.detail(idem).message.status == "delivered");

  auto plain = firstId(f.post(R"({"id": "rep-2"})"));  // the next durable commit: intake
  BOOST_TEST(flushes() == before + 1);
  f.engine->runPipelineOnce("w");
  BOOST_TEST(f.engine->runDeliveriesOnce("w") == 1);  // answered ok, not repeatable
  BOOST_TEST(flushes() == before + 2);
  BOOST_TEST(f.detail(plain).message.status == "delivered");
  BOOST_TEST(f.engine->metricsText().find("switchboard_store_log_flushes_total " + std::to_string(before + 2)) !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(metadata_match_keeps_only_listed_values) {
  core::ConnectorRegistry registry;
  app::registerBuiltinConnectors(registry);
  core::ConnectorContext ctx{"", "/tmp", "/tmp"};
  rapidjson::Document d;
  d.Parse(R"({"key": "kind", "equals": ["flow"]})");
  core::ConfigReader reader(d, "c.json", "/filter");
  auto stage = (*registry.stage("metadata-match"))(reader, ctx);
  BOOST_REQUIRE(stage.has_value());
  core::PipelineMessage flow;
  flow.metadata = {{"kind", "flow"}};
  BOOST_TEST(static_cast<int>((*stage)->process(flow).kind) == static_cast<int>(core::StageResult::Kind::kContinue));
  core::PipelineMessage status;
  status.metadata = {{"kind", "status"}};
  auto dropped = (*stage)->process(status);
  BOOST_TEST(static_cast<int>(dropped.kind) == static_cast<int>(core::StageResult::Kind::kDrop));
  BOOST_TEST(dropped.note.find("kind=status") != std::string::npos);
  core::PipelineMessage none;
  BOOST_TEST(static_cast<int>((*stage)->process(none).kind) == static_cast<int>(core::StageResult::Kind::kDrop));

  rapidjson::Document empty;
  empty.Parse(R"({"key": "kind"})");
  core::ConfigReader bad(empty, "c.json", "/filter");
  BOOST_TEST(!(*registry.stage("metadata-match"))(bad, ctx).has_value());
}

BOOST_AUTO_TEST_CASE(channels_requiring_unset_environment_stay_off) {
  core::ConnectorRegistry registry;
  app::registerBuiltinConnectors(registry);
  core::ConnectorContext ctx{"", "/tmp", "/tmp"};
  fs::path dir = tempDir("requires-env");
  ::unsetenv("SB_TEST_REQUIRED_SECRET");
  writeFile(dir / "a.json", R"({"id": "a", "requires_env": ["SB_TEST_REQUIRED_SECRET"],
    "source": {"type": "http", "path": "/a", "secret_header": "X-S", "secret": "${env:SB_TEST_REQUIRED_SECRET:-}"},
    "destinations": [{"name": "d", "type": "file", "directory": "o"}]})");
  auto off = runtime::loadChannel((dir / "a.json").string(), registry, ctx);
  BOOST_REQUIRE(off.has_value());
  BOOST_TEST(off->get() == nullptr);
  ::setenv("SB_TEST_REQUIRED_SECRET", "s3cret", 1);
  auto on = runtime::loadChannel((dir / "a.json").string(), registry, ctx);
  BOOST_REQUIRE_MESSAGE(on.has_value(), (on.has_value() ? std::string() : on.error().message));
  BOOST_TEST(on->get() != nullptr);
  ::unsetenv("SB_TEST_REQUIRED_SECRET");
}

#if defined(SWITCHBOARD_HAVE_MAPPING) && defined(SWITCHBOARD_HAVE_FHIR)
BOOST_AUTO_TEST_CASE(mapping_files_are_linted_at_load_and_a_failing_reload_keeps_the_previous_version) {
  core::ConnectorRegistry registry;
  app::registerBuiltinConnectors(registry);
  fs::path dir = tempDir("mapping-lint");
  fs::create_directories(dir / "conf" / "channels");
  const std::string good = R"({"id": "t", "input": "flow", "resources": [{"key": "patient",
    "resource": {"resourceType": "Patient", "name": [{"family": "{{ last }}"}]}}]})";
  const std::string typo = R"({"id": "t", "input": "flow", "resources": [{"key": "patient",
    "resource": {"resourceType": "Patient", "nmae": [{"family": "{{ last }}"}]}}]})";
  writeFile(dir / "m.json", typo);
  writeFile(dir / "conf" / "channels" / "a.json", R"({"id": "a", "source": {"type": "http", "path": "/a"},
    "transformer": {"type": "mapping", "file": ")" + (dir / "m.json").string() + R"(", "reload_interval_ms": 0},
    "destinations": [{"name": "d", "type": "file", "directory": "o"}]})");
  core::ConnectorContext ctx{"", (dir / "var").string(), (dir / "conf").string()};
  auto refused = runtime::loadChannel((dir / "conf" / "channels" / "a.json").string(), registry, ctx);
  BOOST_REQUIRE(!refused.has_value());
  BOOST_TEST(refused.error().message.find("Patient.nmae") != std::string::npos, refused.error().message);

  writeFile(dir / "m.json", good);
  auto loaded = runtime::loadChannel((dir / "conf" / "channels" / "a.json").string(), registry, ctx);
  BOOST_REQUIRE_MESSAGE(loaded.has_value(), (loaded ? std::string() : loaded.error().message));
  const auto& stage = (*loaded)->transformers.at(0).second;
  core::StoredMessage stored;
  stored.id = 1;
  stored.channelId = "a";
  core::PipelineMessage pm;
  pm.message = &stored;
  pm.payload = R"({"last": "Chen"})";
  BOOST_REQUIRE(static_cast<int>(stage->process(pm).kind) == static_cast<int>(core::StageResult::Kind::kContinue));
  BOOST_TEST(pm.payload.find("\"family\":\"Chen\"") != std::string::npos, pm.payload);

  // An edit that fails lint is rejected at reload: the previous mapping keeps working.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  writeFile(dir / "m.json", typo);
  core::PipelineMessage again;
  again.message = &stored;
  again.payload = R"({"last": "Chen"})";
  BOOST_REQUIRE(static_cast<int>(stage->process(again).kind) == static_cast<int>(core::StageResult::Kind::kContinue));
  BOOST_TEST(again.payload.find("\"family\":\"Chen\"") != std::string::npos, again.payload);
  BOOST_TEST(again.payload.find("nmae") == std::string::npos);
}
#endif

// `switchboard lint` says what loading a mapping would refuse: a misspelt directive passes the
// profile lint (it is not part of a resource) but not the loader. The same file without the typo,
// beside the same ConceptMaps, lints clean.
BOOST_AUTO_TEST_CASE(lint_reports_what_loading_the_mapping_refuses) {
  const char* root = std::getenv("SWITCHBOARD_SOURCE_DIR");
  BOOST_REQUIRE_MESSAGE(root != nullptr,
                        "SWITCHBOARD_SOURCE_DIR is not set (run the test through ctest)");
  const fs::path mappings = fs::path(root) / "mappings";
  const fs::path dir = fs::temp_directory_path() / ("sb-lint-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy(mappings / "conceptmaps", dir / "conceptmaps", fs::copy_options::recursive);
  std::string text = testing::readTestFile(mappings / "scheduling-appointment-event.json");
  auto write = [&](const std::string& name, const std::string& body) {
    std::ofstream(dir / name, std::ios::binary) << body;
    return (dir / name).string();
  };
  const std::string clean = write("clean.json", text);
  const auto at = text.find("\"conditional\"");
  BOOST_REQUIRE(at != std::string::npos);
  text.replace(at, std::string("\"conditional\"").size(), "\"conditonal\"");
  const std::string typo = write("typo.json", text);
  auto lint = [](const std::string& file) {
    std::string name = "lint";
    std::vector<char*> argv{name.data(), const_cast<char*>(file.c_str())};
    return app::runLintCommand(static_cast<int>(argv.size()), argv.data());
  };
  BOOST_TEST(lint(clean) == 0);
  BOOST_TEST(lint(typo) == 1);
  fs::remove_all(dir);
}

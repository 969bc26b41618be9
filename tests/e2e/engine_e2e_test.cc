// The engine as users meet it: the built binary, real HTTP, a real SQLite (or PostgreSQL) store,
// crashes with kill -9, SIGTERM, a peer that fails then recovers, backpressure, bad input.
#define BOOST_TEST_MODULE engine_e2e
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/e2e/engine_process.h"

using namespace switchboard::e2e;
namespace fs = std::filesystem;

namespace {

const char* kEngine = R"({
  "http": {"bind": "127.0.0.1", "threads": 32},
  "workers": {"pipeline_threads": 2, "delivery_threads": 2, "lease_ms": 1500, "idle_poll_ms": 50},
  "circuit_breaker": {"failure_threshold": 3, "open_ms": 300}
})";

std::string fileChannel(const std::string& id, const std::string& path) {
  return R"({"id": ")" + id + R"(", "source": {"type": "http", "path": ")" + path +
         R"(", "idempotency_pointer": "/id", "max_body_bytes": 4096},
    "destinations": [{"name": "out", "type": "file", "directory": "outbox/)" + id + R"("}]})";
}

std::string httpChannel(const std::string& id, const std::string& path, int peerPort, const std::string& retry) {
  return R"({"id": ")" + id + R"(", "source": {"type": "http", "path": ")" + path +
         R"(", "idempotency_pointer": "/id"},
    "destinations": [{"name": "peer", "type": "http", "url": "http://127.0.0.1:)" + std::to_string(peerPort) +
         R"(/ingest", "timeout_ms": 2000}], "retry": )" + retry + "}";
}

// id -> number of delivered files holding it.
std::map<std::string, int> outboxIds(const fs::path& dir) {
  std::map<std::string, int> ids;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return ids;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.starts_with(".tmp")) continue;
    std::ifstream in(e.path());
    std::stringstream ss;
    ss << in.rdbuf();
    ids[jsonString(ss.str(), "id")] += 1;
  }
  return ids;
}

const std::vector<std::pair<std::string, std::string>> kAdmin = {{"Authorization", "Bearer e2e-admin-token"}};

}  // namespace

BOOST_AUTO_TEST_CASE(invalid_config_stops_startup_naming_file_and_field) {
  EngineProcess engine("badconfig", kEngine);
  engine.addChannel("good.json", fileChannel("good", "/in/good"));
  engine.addChannel("typo.json", R"({"id": "typo", "source": {"type": "http", "path": "/in/typo", "max_body_byte": 10},
    "destinations": [{"name": "out", "type": "file", "directory": "x"}]})");
  int code = engine.runToExit();
  BOOST_TEST(code == 2);
  std::string err = engine.stderrText();
  BOOST_TEST(err.find("typo.json") != std::string::npos, err);
  BOOST_TEST(err.find("/source/max_body_byte: unknown key") != std::string::npos, err);
  BOOST_TEST(!fs::exists(engine.dataDir() / "switchboard.port"));

  EngineProcess missingSecret("nosecret", kEngine);
  missingSecret.addChannel("s.json", R"({"id": "s", "source": {"type": "http", "path": "/in/s", "secret_header": "X-Key",
    "secret": "${env:SB_E2E_UNSET_SECRET}"}, "destinations": [{"name": "out", "type": "file", "directory": "x"}]})");
  BOOST_TEST(missingSecret.runToExit() == 2);
  BOOST_TEST(missingSecret.stderrText().find("SB_E2E_UNSET_SECRET") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(serves_health_metrics_admin_and_answers_bad_input_precisely) {
  EngineProcess engine("basic", kEngine);
  engine.addChannel("a.json", fileChannel("a", "/in/a"));
  engine.addChannel("s.json", R"({"id": "s", "source": {"type": "http", "path": "/in/s", "secret_header": "X-Key",
    "secret": "${env:SB_E2E_SECRET}"}, "destinations": [{"name": "out", "type": "file", "directory": "outbox/s"}]})");
  engine.setEnv("SB_E2E_SECRET", "open-sesame");
  BOOST_REQUIRE_MESSAGE(engine.start(), engine.stderrText());
  int port = engine.port();

  auto ok = http(port, "POST", "/in/a", R"({"id": "p1", "name": "Zoë Ł'Étoile 山田"})");
  BOOST_TEST(ok.status == 200);
  auto dup = http(port, "POST", "/in/a", R"({"id": "p1", "name": "Zoë Ł'Étoile 山田"})");
  BOOST_TEST(dup.status == 200);
  BOOST_TEST(dup.headers["X-Switchboard-Message-Ids"] == ok.headers["X-Switchboard-Message-Ids"]);

  auto malformed = http(port, "POST", "/in/a", R"({"id": "p2", )");
  BOOST_TEST(malformed.status == 400);
  BOOST_TEST(malformed.body.find("OperationOutcome") != std::string::npos);
  auto big = http(port, "POST", "/in/a", "{\"id\":\"big\",\"x\":\"" + std::string(5000, 'a') + "\"}");
  BOOST_TEST(big.status == 413);
  BOOST_TEST(big.body.find("too-long") != std::string::npos);
  BOOST_TEST(http(port, "POST", "/in/nowhere", "{}").status == 404);
  BOOST_TEST(http(port, "POST", "/in/s", R"({"a":1})").status == 401);
  BOOST_TEST(http(port, "POST", "/in/s", R"({"a":1})", {{"X-Key", "open-sesamE"}}).status == 401);
  BOOST_TEST(http(port, "POST", "/in/s", R"({"a":1})", {{"X-Key", "open-sesame"}}).status == 200);
  BOOST_TEST(http(port, "GET", "/in/a").status == 405);

  BOOST_TEST(waitFor([&] { return outboxIds(engine.dataDir() / "outbox" / "a")["p1"] == 1; }, 20));
  auto health = http(port, "GET", "/healthz");
  BOOST_TEST(health.status == 200);
  BOOST_TEST(health.body.find("\"store\":\"sqlite\"") != std::string::npos);
  auto metrics = http(port, "GET", "/metrics");
  BOOST_TEST(metrics.status == 200);
  BOOST_TEST(metrics.body.find("switchboard_intake_requests_total{channel=\"a\",outcome=\"duplicate\"} 1") != std::string::npos);
  BOOST_TEST(metrics.body.find("switchboard_intake_requests_total{channel=\"s\",outcome=\"refused\"} 2") != std::string::npos);
  BOOST_TEST(metrics.body.find("switchboard_intake_requests_total{channel=\"a\",outcome=\"too_large\"} 1") != std::string::npos);

  BOOST_TEST(http(port, "GET", "/api/messages").status == 401);
  // The file lands before the attempt is committed: wait for the roll-up, not just the file.
  BOOST_TEST(waitFor([&] {
    return http(port, "GET", "/api/messages?channel=a", "", kAdmin).body.find("\"status\":\"delivered\"") != std::string::npos;
  }, 20));
  auto list = http(port, "GET", "/api/messages?channel=a", "", kAdmin);
  BOOST_TEST(list.status == 200);
  BOOST_TEST(list.body.find("\"status\":\"rejected\"") != std::string::npos);
  BOOST_TEST(list.body.find("\"status\":\"delivered\"") != std::string::npos);
  std::string id = ok.headers["X-Switchboard-Message-Ids"];
  auto detail = http(port, "GET", "/api/messages/" + id, "", kAdmin);
  BOOST_TEST(detail.status == 200);
  BOOST_TEST(detail.body.find("Zo\xC3\xAB") != std::string::npos);
  BOOST_TEST(detail.body.find("\"outcome\":\"ok\"") != std::string::npos);
  auto audit = http(port, "GET", "/api/audit", "", kAdmin);
  BOOST_TEST(audit.body.find("authentication-refused") != std::string::npos);
  BOOST_TEST(audit.body.find("open-sesame") == std::string::npos);  // secrets never recorded
  BOOST_TEST(audit.body.find("body-too-large") != std::string::npos);

  auto replay = http(port, "POST", "/api/messages/" + id + "/replay", "", kAdmin);
  BOOST_TEST(replay.status == 202);
  BOOST_TEST(waitFor([&] { return outboxIds(engine.dataDir() / "outbox" / "a")["p1"] == 2; }, 20));
  auto channels = http(port, "GET", "/api/channels", "", kAdmin);
  BOOST_TEST(channels.body.find("\"path\":\"/in/s\"") != std::string::npos);
  BOOST_TEST(channels.body.find("open-sesame") == std::string::npos);
  BOOST_TEST(engine.terminate() == 0);
}

BOOST_AUTO_TEST_CASE(kill_9_under_load_loses_nothing_and_delivers_nothing_twice) {
  EngineProcess engine("kill9", kEngine);
  engine.addChannel("a.json", fileChannel("a", "/in/a"));
  BOOST_REQUIRE_MESSAGE(engine.start(), engine.stderrText());
  const int kMessages = 600;
  const int kThreads = 8;
  std::vector<std::atomic<int>> acked(kMessages);
  std::atomic<int> ackCount{0};
  std::atomic<int> next{0};
  std::vector<std::thread> clients;
  int port = engine.port();
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&] {
      HttpClient client(port);
      for (int i = next++; i < kMessages; i = next++) {
        auto r = client.post("/in/a", "{\"id\":\"m" + std::to_string(i) + "\",\"n\":" + std::to_string(i) + "}");
        if (r.status == 200) {
          acked[i] = 1;
          ++ackCount;
        }
      }
    });
  }
  // Kill while requests, pipeline work and deliveries are all in flight.
  BOOST_REQUIRE(waitFor([&] { return ackCount.load() >= 250; }, 60));
  engine.kill9();
  for (auto& c : clients) c.join();
  int ackedBeforeCrash = ackCount.load();
  BOOST_TEST_MESSAGE("acknowledged before kill -9: " << ackedBeforeCrash << " of " << kMessages);
  BOOST_TEST(ackedBeforeCrash < kMessages);  // the crash really interrupted the run

  BOOST_REQUIRE_MESSAGE(engine.start(), engine.stderrText());
  // Providers retry what was not acknowledged, and sometimes redeliver what was.
  HttpClient client(engine.port());
  for (int i = 0; i < kMessages; ++i) {
    if (!acked[i] || i % 7 == 0) {
      auto r = client.post("/in/a", "{\"id\":\"m" + std::to_string(i) + "\",\"n\":" + std::to_string(i) + "}");
      BOOST_REQUIRE_EQUAL(r.status, 200);
    }
  }
  fs::path outbox = engine.dataDir() / "outbox" / "a";
  BOOST_REQUIRE(waitFor([&] { return outboxIds(outbox).size() == static_cast<std::size_t>(kMessages); }, 90));
  // Give any straggler (an expired lease taken over) time to show up as a duplicate.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  auto ids = outboxIds(outbox);
  BOOST_TEST(ids.size() == static_cast<std::size_t>(kMessages));
  int duplicated = 0;
  for (const auto& [id, n] : ids) duplicated += n > 1 ? 1 : 0;
  BOOST_TEST(duplicated == 0);
  auto list = http(engine.port(), "GET", "/api/messages?channel=a&status=delivered&limit=500", "", kAdmin);
  BOOST_TEST(list.status == 200);
  BOOST_TEST(engine.terminate() == 0);
}

BOOST_AUTO_TEST_CASE(failing_destination_recovers_and_receives_every_message_exactly_once) {
  std::atomic<bool> down{true};
  Peer peer([&](const Peer::Hit& hit) {
    if (jsonString(hit.body, "id") == "poison") return 400;
    return down.load() ? 503 : 200;
  });
  EngineProcess engine("flaky", kEngine);
  engine.addChannel("a.json", httpChannel("a", "/in/a", peer.port(),
                                          R"({"max_attempts": 1000, "initial_backoff_ms": 50, "max_backoff_ms": 300})"));
  BOOST_REQUIRE_MESSAGE(engine.start(), engine.stderrText());
  const int kMessages = 60;
  for (int i = 0; i < kMessages; ++i) {
    BOOST_REQUIRE_EQUAL(http(engine.port(), "POST", "/in/a", "{\"id\":\"f" + std::to_string(i) + "\"}").status, 200);
  }
  auto poison = http(engine.port(), "POST", "/in/a", R"({"id":"poison"})");
  BOOST_REQUIRE_EQUAL(poison.status, 200);
  BOOST_REQUIRE(waitFor([&] { return peer.hits().size() >= 10; }, 30));
  // While the peer is down the circuit opens.
  BOOST_TEST(waitFor([&] {
    return http(engine.port(), "GET", "/metrics").body.find("switchboard_circuit_state{endpoint=\"http://127.0.0.1:" +
                                                            std::to_string(peer.port()) + "\"} 1") != std::string::npos;
  }, 10));
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  down = false;
  auto delivered = [&] {
    std::map<std::string, int> ok;
    for (const auto& h : peer.hits()) {
      if (h.status == 200) ok[jsonString(h.body, "id")] += 1;
    }
    return ok;
  };
  BOOST_REQUIRE(waitFor([&] { return delivered().size() == static_cast<std::size_t>(kMessages); }, 60));
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  auto ok = delivered();
  BOOST_TEST(ok.size() == static_cast<std::size_t>(kMessages));
  for (const auto& [id, n] : ok) BOOST_TEST(n == 1, "message " << id << " accepted " << n << " times");
  int failures = 0;
  for (const auto& h : peer.hits()) failures += h.status == 503 ? 1 : 0;
  BOOST_TEST(failures > 0);
  // The poison message is a dead letter with its peer response, and can be replayed.
  auto dead = http(engine.port(), "GET", "/api/deliveries?status=dead", "", kAdmin);
  BOOST_TEST(dead.body.find("\"deadReason\":\"permanent\"") != std::string::npos);
  BOOST_TEST(dead.body.find("\"lastStatusCode\":400") != std::string::npos);
  std::string poisonId = poison.headers["X-Switchboard-Message-Ids"];
  peer.setPolicy([](const Peer::Hit&) { return 200; });
  BOOST_TEST(http(engine.port(), "POST", "/api/messages/" + poisonId + "/replay", "", kAdmin).status == 202);
  BOOST_TEST(waitFor([&] { return delivered().count("poison") == 1; }, 20));
  BOOST_TEST(engine.terminate() == 0);
}

BOOST_AUTO_TEST_CASE(backpressure_answers_503_with_retry_after) {
  Peer peer([](const Peer::Hit&) { return 503; });
  EngineProcess engine("backpressure", R"({
    "http": {"bind": "127.0.0.1"},
    "intake": {"max_backlog": 20, "retry_after_seconds": 7},
    "workers": {"idle_poll_ms": 50}
  })");
  engine.addChannel("a.json", httpChannel("a", "/in/a", peer.port(), R"({"max_attempts": 1000, "initial_backoff_ms": 60000})"));
  BOOST_REQUIRE_MESSAGE(engine.start(), engine.stderrText());
  int accepted = 0, throttled = 0;
  std::string retryAfter;
  for (int i = 0; i < 60; ++i) {
    auto r = http(engine.port(), "POST", "/in/a", "{\"id\":\"b" + std::to_string(i) + "\"}");
    if (r.status == 200) ++accepted;
    if (r.status == 503) {
      ++throttled;
      retryAfter = r.headers["Retry-After"];
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  BOOST_TEST(accepted >= 20);
  BOOST_TEST(accepted < 60);
  BOOST_TEST(throttled > 0);
  BOOST_TEST(retryAfter == "7");
  BOOST_TEST(engine.terminate() == 0);
}

BOOST_AUTO_TEST_CASE(sigterm_is_graceful_and_work_resumes_after_restart) {
  EngineProcess engine("sigterm", kEngine);
  engine.addChannel("a.json", fileChannel("a", "/in/a"));
  BOOST_REQUIRE_MESSAGE(engine.start(), engine.stderrText());
  for (int i = 0; i < 200; ++i) {
    BOOST_REQUIRE_EQUAL(http(engine.port(), "POST", "/in/a", "{\"id\":\"t" + std::to_string(i) + "\"}").status, 200);
  }
  BOOST_TEST(engine.terminate() == 0);
  BOOST_TEST(engine.stdoutText().find("stopped") != std::string::npos);
  BOOST_REQUIRE(engine.start());
  fs::path outbox = engine.dataDir() / "outbox" / "a";
  BOOST_REQUIRE(waitFor([&] { return outboxIds(outbox).size() == 200u; }, 60));
  for (const auto& [id, n] : outboxIds(outbox)) BOOST_TEST(n == 1, id);
  BOOST_TEST(engine.terminate() == 0);
}

BOOST_AUTO_TEST_CASE(two_engines_share_one_postgresql_database) {
  const char* pg = std::getenv("SWITCHBOARD_TEST_PG");
  BOOST_REQUIRE_MESSAGE(pg != nullptr && *pg != '\0',
                        "SWITCHBOARD_TEST_PG is not set: run the suite through scripts/test, which starts PostgreSQL");
  std::string run = std::to_string(::getpid());
  std::string engineJson = R"({"http": {"bind": "127.0.0.1"}, "store": {"url": ")" + std::string(pg) +
                           R"("}, "workers": {"pipeline_threads": 2, "delivery_threads": 2, "lease_ms": 2000, "idle_poll_ms": 20}})";
  EngineProcess a("pg-a", engineJson), b("pg-b", engineJson);
  fs::path shared = a.dir() / "shared-outbox";
  std::string channel = R"({"id": "pg)" + run + R"(", "source": {"type": "http", "path": "/in/pg", "idempotency_pointer": "/id"},
    "destinations": [{"name": "out", "type": "file", "directory": ")" + shared.string() + R"("}]})";
  a.addChannel("pg.json", channel);
  b.addChannel("pg.json", channel);
  BOOST_REQUIRE_MESSAGE(a.start(), a.stderrText());
  BOOST_REQUIRE_MESSAGE(b.start(), b.stderrText());
  const int kMessages = 300;
  std::thread ta([&] {
    HttpClient c(a.port());
    for (int i = 0; i < kMessages; i += 2) c.post("/in/pg", "{\"id\":\"g" + std::to_string(i) + "\"}");
  });
  std::thread tb([&] {
    HttpClient c(b.port());
    for (int i = 1; i < kMessages; i += 2) c.post("/in/pg", "{\"id\":\"g" + std::to_string(i) + "\"}");
    // The same messages again through the other engine: deduplicated across processes.
    HttpClient other(a.port());
    for (int i = 1; i < kMessages; i += 10) other.post("/in/pg", "{\"id\":\"g" + std::to_string(i) + "\"}");
  });
  ta.join();
  tb.join();
  BOOST_REQUIRE(waitFor([&] { return outboxIds(shared).size() == static_cast<std::size_t>(kMessages); }, 60));
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  auto ids = outboxIds(shared);
  BOOST_TEST(ids.size() == static_cast<std::size_t>(kMessages));
  for (const auto& [id, n] : ids) BOOST_TEST(n == 1, id);
  auto health = http(a.port(), "GET", "/healthz");
  BOOST_TEST(health.body.find("\"store\":\"postgresql\"") != std::string::npos);
  BOOST_TEST(a.terminate() == 0);
  BOOST_TEST(b.terminate() == 0);
}

BOOST_AUTO_TEST_CASE(channel_configs_reload_on_change_and_a_broken_edit_keeps_the_previous_set) {
  EngineProcess engine("reload", kEngine);
  engine.addChannel("a.json", fileChannel("a", "/in/a"));
  BOOST_REQUIRE_MESSAGE(engine.start(), engine.stderrText());
  int port = engine.port();
  BOOST_TEST(http(port, "POST", "/in/b", R"({"id": "b1"})").status == 404);

  // A new channel file is picked up without a restart.
  engine.addChannel("b.json", fileChannel("b", "/in/b"));
  BOOST_TEST(waitFor([&] { return http(port, "POST", "/in/b", R"({"id": "b1"})").status == 200; }, 20));
  BOOST_TEST(waitFor([&] { return outboxIds(engine.dataDir() / "outbox" / "b")["b1"] == 1; }, 20));

  // A broken edit is rejected with its error; both channels keep working.
  engine.addChannel("b.json", R"({"id": "b", "source": {"type": "http", "path": "/in/b"}, "destinations": [{"name": "out", "type": "nope"}]})");
  BOOST_TEST(waitFor([&] { return engine.stderrText().find("channel reload rejected") != std::string::npos; }, 20));
  BOOST_TEST(engine.stderrText().find("b.json") != std::string::npos);
  BOOST_TEST(http(port, "POST", "/in/a", R"({"id": "a1"})").status == 200);
  BOOST_TEST(http(port, "POST", "/in/b", R"({"id": "b2"})").status == 200);

  // Removing a channel file takes its path away.
  std::filesystem::remove(engine.dir() / "conf" / "channels" / "b.json");
  BOOST_TEST(waitFor([&] { return http(port, "POST", "/in/b", R"({"id": "b3"})").status == 404; }, 20));
  BOOST_TEST(http(port, "POST", "/in/a", R"({"id": "a2"})").status == 200);
  BOOST_TEST(engine.terminate() == 0);
}

namespace {
// The enterprise id the mpi stage stamped on the delivered Patient whose "id" is `id`.
std::string enterpriseIdOf(const fs::path& dir, const std::string& id) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::ifstream in(e.path());
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    if (jsonString(text, "id") != id) continue;
    const std::string marker = R"("system":"urn:switchboard:mpi:enterprise-id","value":")";
    auto at = text.find(marker);
    if (at == std::string::npos) return "none";
    at += marker.size();
    return text.substr(at, text.find('"', at) - at);
  }
  return {};
}
}  // namespace

BOOST_AUTO_TEST_CASE(mpi_stage_links_patients_and_its_api_sits_behind_the_admin_token) {
  EngineProcess engine("mpi", kEngine);
  const char* src = std::getenv("SWITCHBOARD_SOURCE_DIR");
  BOOST_REQUIRE(src != nullptr);
  fs::copy_file(fs::path(src) / "conf" / "mpi.json", engine.dir() / "conf" / "mpi.json");
  engine.addChannel("patients.json", R"({"id": "patients", "source": {"type": "http", "path": "/in/patients",
    "idempotency_pointer": "/id"}, "transformer": [{"type": "passthrough"}, {"type": "mpi", "on_possible_match": "hold"}],
    "destinations": [{"name": "out", "type": "file", "directory": "outbox/patients"}]})");
  BOOST_REQUIRE_MESSAGE(engine.start(), engine.stderrText());
  int port = engine.port();
  auto patient = [](const std::string& id, const std::string& given, const std::string& birthDate) {
    return R"({"resourceType": "Patient", "id": ")" + id + R"(", "name": [{"family": "Chen", "given": [")" + given +
           R"("]}], "birthDate": ")" + birthDate + R"(", "gender": "female",
      "telecom": [{"system": "phone", "value": "+15551234567"}, {"system": "email", "value": "emily.chen@example.com"}],
      "address": [{"line": ["12 Harbour St"], "city": "Springfield", "postalCode": "62701"}]})";
  };
  const fs::path outbox = engine.dataDir() / "outbox" / "patients";
  BOOST_TEST(http(port, "POST", "/in/patients", patient("p1", "Emily", "1992-08-22")).status == 200);
  BOOST_TEST(waitFor([&] { return !enterpriseIdOf(outbox, "p1").empty(); }, 20));
  const std::string first = enterpriseIdOf(outbox, "p1");
  BOOST_TEST(first != "none");
  // The same person again (another submission): linked to the same enterprise record.
  BOOST_TEST(http(port, "POST", "/in/patients", patient("p2", "Emily", "1992-08-22")).status == 200);
  BOOST_TEST(waitFor([&] { return !enterpriseIdOf(outbox, "p2").empty(); }, 20));
  BOOST_TEST(enterpriseIdOf(outbox, "p2") == first);
  // A twin sister on the same phone and address: never silently linked to Emily.
  auto twin = http(port, "POST", "/in/patients", patient("p3", "Grace", "1992-08-22"));
  BOOST_TEST(twin.status == 200);
  std::string twinId = twin.headers["X-Switchboard-Message-Ids"];
  BOOST_TEST(waitFor([&] {
    auto d = http(port, "GET", "/api/messages/" + twinId, "", kAdmin);
    return d.body.find("\"status\":\"error\"") != std::string::npos ||
           d.body.find("\"status\":\"delivered\"") != std::string::npos;
  }, 20));
  BOOST_TEST(enterpriseIdOf(outbox, "p3") != first);

  // The MPI's REST API is behind the admin token.
  const std::string query = R"({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": )" +
                            patient("q", "Emily", "1992-08-22") + "}]}";
  BOOST_TEST(http(port, "POST", "/fhir/Patient/$match", query).status == 401);
  auto match = http(port, "POST", "/fhir/Patient/$match", query, {kAdmin[0], {"Content-Type", "application/fhir+json"}});
  BOOST_TEST(match.status == 200);
  BOOST_TEST(match.body.find("\"searchset\"") != std::string::npos);
  BOOST_TEST(match.body.find("match-grade") != std::string::npos);
  BOOST_TEST(match.body.find(first) != std::string::npos);
  BOOST_TEST(http(port, "GET", "/api/mpi/reviews", "").status == 401);
  BOOST_TEST(http(port, "GET", "/api/mpi/reviews", "", kAdmin).status == 200);
  BOOST_TEST(http(port, "GET", "/api/mpi/reviews/999999", "", kAdmin).status == 404);
  BOOST_TEST(engine.terminate() == 0);
}

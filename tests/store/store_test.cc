// The message store contract, run against one backend per ctest entry:
//   store_sqlite      a fresh SQLite file in a temp dir
//   store_postgresql  SWITCHBOARD_TEST_PG (started by scripts/test); fails when it is not set
#define BOOST_TEST_MODULE store
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include "engine/store/codec.h"
#include "engine/store/migrations.h"
#include "engine/store/store.h"

using namespace switchboard;
using store::Store;
using core::Millis;

namespace {

std::string backendUnderTest() {
  const char* b = std::getenv("SWITCHBOARD_STORE_BACKEND");
  return b ? b : "sqlite";
}

// A fresh database for each test case.
struct Db {
  std::filesystem::path dir;
  std::string url;

  Db() {
    if (backendUnderTest() == "postgresql") {
      const char* pg = std::getenv("SWITCHBOARD_TEST_PG");
      BOOST_REQUIRE_MESSAGE(pg != nullptr && *pg != 0,
                            "SWITCHBOARD_TEST_PG is not set: run through scripts/test, which starts PostgreSQL");
      url = pg;
      soci::session s(*soci::factory_postgresql(), url.substr(13));
      s << "DROP TABLE IF EXISTS attempts, events, deliveries, payloads, message_bodies, messages, "
           "audit, external_refs, "
           "schema_migrations CASCADE";
    } else {
      dir = std::filesystem::temp_directory_path() /
            ("sb-store-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
      std::filesystem::remove_all(dir);
      url = "sqlite:" + (dir / "nested" / "sb.db").string();
    }
  }
  ~Db() {
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
  std::unique_ptr<Store> open(int pool = 4) {
    auto s = store::openStore(url, pool);
    BOOST_REQUIRE_MESSAGE(s.has_value(), (s ? std::string() : s.error().message));
    return std::move(*s);
  }
  // A session of its own on the test's database, beside the store (raw SQL).
  std::unique_ptr<soci::session> raw() const {
    if (backendUnderTest() == "postgresql") {
      return std::make_unique<soci::session>(*soci::factory_postgresql(), url.substr(13));
    }
    std::filesystem::create_directories(dir / "nested");
    return std::make_unique<soci::session>(*soci::factory_sqlite3(),
                                           (dir / "nested" / "sb.db").string());
  }
  store::Dialect dialect() const {
    return backendUnderTest() == "postgresql" ? store::Dialect::kPostgresql
                                              : store::Dialect::kSqlite;
  }
  static int& counter() {
    static int c = 0;
    return c;
  }
};

store::NewMessage msg(std::string channel, std::string key, std::string body, Millis at = 1000) {
  store::NewMessage m;
  m.channelId = std::move(channel);
  m.idempotencyKey = std::move(key);
  m.body = std::move(body);
  m.contentType = "application/json";
  m.receivedAtMs = at;
  m.metadata = {{"sender", "+15550001111"}, {"kind", "text"}};
  return m;
}

std::int64_t ingestOne(Store& s, store::NewMessage m) {
  auto r = s.ingest({std::move(m)});
  BOOST_REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message));
  return r->at(0).messageId;
}

store::ProcessOutcome processed(std::vector<std::string> destinations, Millis due = 0) {
  store::ProcessOutcome o;
  o.status = "processed";
  o.events.emplace_back("transformed", "passthrough");
  for (auto& d : destinations) o.deliveries.push_back({d, "payload for " + d, "application/json", due});
  return o;
}

store::AttemptRecord attempt(std::string outcome, std::string newStatus, Millis at, Millis next = 0,
                             std::string deadReason = {}) {
  store::AttemptRecord a;
  a.startedAtMs = at;
  a.durationMs = 5;
  a.outcome = std::move(outcome);
  a.statusCode = a.outcome == "ok" ? 200 : 503;
  a.response = "peer said " + a.outcome;
  a.newStatus = std::move(newStatus);
  a.nextAttemptAtMs = next;
  a.deadReason = std::move(deadReason);
  return a;
}

std::vector<std::string> eventTypes(const store::MessageDetail& d) {
  std::vector<std::string> out;
  for (const auto& e : d.events) out.push_back(e.type);
  return out;
}

bool has(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

BOOST_AUTO_TEST_CASE(reports_its_backend_and_reopens_without_reapplying_migrations) {
  Db db;
  auto s = db.open();
  BOOST_TEST(s->backend() == backendUnderTest());
  ingestOne(*s, msg("c", "k1", "{}"));
  s.reset();
  auto again = db.open();  // migrations already applied: must not fail or lose data
  auto list = again->listMessages({});
  BOOST_REQUIRE(list.has_value());
  BOOST_TEST(list->size() == 1u);
}

// SQLite: the write-ahead log is checkpointed (by a thread of its own from 1,000 pages, by the
// committing writer from 4,000) and reused from its start; without that it would hold all 32 MiB
// written here.
BOOST_AUTO_TEST_CASE(the_sqlite_log_is_checkpointed_and_reused) {
  if (backendUnderTest() != "sqlite") return;
  Db db;
  auto s = db.open();
  const std::string body(16 * 1024, 'x');
  for (int b = 0; b < 128; ++b) {
    std::vector<store::NewMessage> batch;
    for (int i = 0; i < 16; ++i) {
      batch.push_back(msg("c", std::to_string(b) + "-" + std::to_string(i), body));
    }
    BOOST_REQUIRE(s->ingest(batch).has_value());
  }
  const auto wal = std::filesystem::path(db.url.substr(7) + "-wal");
  BOOST_TEST(std::filesystem::file_size(wal) < 20u * 1024 * 1024);  // 4,000 pages and a batch
  auto list = s->listMessages({});
  BOOST_REQUIRE(list.has_value());
}

BOOST_AUTO_TEST_CASE(rejects_unknown_store_urls) {
  auto s = store::openStore("mysql://x");
  BOOST_REQUIRE(!s.has_value());
  BOOST_TEST(s.error().message.find("sqlite:") != std::string::npos);
  BOOST_TEST(!store::openStore("sqlite:").has_value());
}

BOOST_AUTO_TEST_CASE(ingest_deduplicates_by_channel_and_key_within_and_across_batches) {
  Db db;
  auto s = db.open();
  auto first = s->ingest({msg("a", "k1", "1"), msg("a", "k2", "2"), msg("a", "k1", "1 again"), msg("b", "k1", "3"),
                          msg("a", "", "no key"), msg("a", "", "no key")});
  BOOST_REQUIRE(first.has_value());
  const auto& o = *first;
  BOOST_TEST(!o[0].duplicate);
  BOOST_TEST(!o[1].duplicate);
  BOOST_TEST(o[2].duplicate);
  BOOST_TEST(o[2].messageId == o[0].messageId);
  BOOST_TEST(!o[3].duplicate);  // same key, other channel
  BOOST_TEST(o[3].messageId != o[0].messageId);
  BOOST_TEST(!o[4].duplicate);  // empty keys never deduplicate
  BOOST_TEST(!o[5].duplicate);
  BOOST_TEST(o[4].messageId != o[5].messageId);

  auto second = s->ingest({msg("a", "k2", "2 later"), msg("a", "k3", "new")});
  BOOST_REQUIRE(second.has_value());
  BOOST_TEST((*second)[0].duplicate);
  BOOST_TEST((*second)[0].messageId == o[1].messageId);
  BOOST_TEST(!(*second)[1].duplicate);

  auto all = s->listMessages({});
  BOOST_REQUIRE(all.has_value());
  BOOST_TEST(all->size() == 6u);
  auto d = s->getMessage(o[0].messageId);
  BOOST_REQUIRE(d.has_value());
  BOOST_TEST(d->message.body == "1");  // the first body wins
  BOOST_TEST(eventTypes(*d) == std::vector<std::string>{"received"});
}

BOOST_AUTO_TEST_CASE(bodies_and_metadata_round_trip_byte_for_byte) {
  Db db;
  auto s = db.open();
  const std::string binary("\x00\xff\xfe{\"a\":\"\x80\"}\x00tail", 17);
  const std::string unicode = "{\"name\":\"Zoë Ångström 李小龍 🙂\",\"q\":\"'; DROP TABLE messages; --\"}";
  auto m1 = msg("c", "bin", binary);
  m1.metadata = {{"z", "last"}, {"a", "first"}, {"bad", std::string("x\xffy", 3)}};
  auto id1 = ingestOne(*s, m1);
  auto id2 = ingestOne(*s, msg("c", "uni", unicode));
  auto d1 = s->getMessage(id1);
  BOOST_REQUIRE(d1.has_value());
  BOOST_TEST(d1->message.body.size() == binary.size());
  BOOST_TEST((d1->message.body == binary));
  BOOST_REQUIRE_EQUAL(d1->message.metadata.size(), 3u);
  BOOST_TEST(d1->message.metadata[0].first == "z");  // order kept
  BOOST_TEST(d1->message.metadata[1].first == "a");
  BOOST_TEST(d1->message.metadata[2].second == "x\xEF\xBF\xBDy");  // invalid byte replaced, not dropped
  auto d2 = s->getMessage(id2);
  BOOST_REQUIRE(d2.has_value());
  BOOST_TEST(d2->message.body == unicode);
  auto list = s->listMessages({});
  BOOST_REQUIRE(list.has_value());
  for (const auto& m : *list) {
    if (m.id == id1) BOOST_TEST(m.size == static_cast<std::int64_t>(binary.size()));
    if (m.id == id2) BOOST_TEST(m.size == static_cast<std::int64_t>(unicode.size()));
  }
  // A binary payload survives the delivery path too.
  auto claimed = s->claimMessages("w", 10, 2000, 30000);
  BOOST_REQUIRE(claimed.has_value());
  store::ProcessOutcome o;
  o.status = "processed";
  o.deliveries.push_back({"d", binary, "application/octet-stream", 0});
  BOOST_REQUIRE(s->finishMessage(id1, "w", o, 2000).has_value());
  auto deliveries = s->claimDeliveries("w", 10, 2000, 30000, {});
  BOOST_REQUIRE(deliveries.has_value());
  BOOST_REQUIRE_EQUAL(deliveries->size(), 1u);
  BOOST_TEST((deliveries->at(0).payload == binary));
  BOOST_TEST(deliveries->at(0).metadata.size() == 3u);
}

// Sibling deliveries of one message usually carry the same payload (the mapped Bundle for the EHR
// and for the reply composed after it): it is stored once, and each delivery loads it.
BOOST_AUTO_TEST_CASE(siblings_with_the_same_payload_share_its_row_and_each_loads_it) {
  Db db;
  auto s = db.open();
  const std::string bundle = "{\"resourceType\":\"Bundle\",\"name\":\"Zoë\"}";
  const std::string binary("\x00\xff bytes", 8);
  auto a = ingestOne(*s, msg("c", "1", "a"));
  auto b = ingestOne(*s, msg("c", "2", "b"));
  BOOST_REQUIRE(s->claimMessages("w", 10, 1000, 30000).has_value());
  store::ProcessOutcome oa;
  oa.status = "processed";
  oa.deliveries.push_back({"fhir", bundle, "application/fhir+json", 0});
  oa.deliveries.push_back({"reply", bundle, "application/fhir+json", 0, "fhir"});
  oa.deliveries.push_back({"audit", binary, "application/octet-stream", 0});
  oa.deliveries.push_back({"copy", bundle, "application/fhir+json", 0});  // not next to its twin
  BOOST_REQUIRE(s->finishMessage(a, "w", oa, 1000).has_value());
  store::ProcessOutcome ob;
  ob.status = "processed";
  ob.deliveries.push_back(
      {"fhir", bundle, "application/fhir+json", 0});  // another message: own row
  BOOST_REQUIRE(s->finishMessage(b, "w", ob, 1000).has_value());
  long long rows = 0;
  *db.raw() << "SELECT count(*) FROM payloads", soci::into(rows);
  BOOST_TEST(rows == 4);  // a: bundle, binary, bundle again (not adjacent); b: bundle
  auto detail = s->getMessage(a);
  BOOST_REQUIRE(detail.has_value());
  BOOST_REQUIRE_EQUAL(detail->deliveries.size(), 4u);
  BOOST_TEST(detail->deliveries[0].delivery.payload == bundle);
  BOOST_TEST(detail->deliveries[1].delivery.payload == bundle);
  BOOST_TEST((detail->deliveries[2].delivery.payload == binary));
  BOOST_TEST(detail->deliveries[3].delivery.payload == bundle);
  auto claimed = s->claimDeliveries("w", 10, 1000, 30000, {});
  BOOST_REQUIRE(claimed.has_value());
  BOOST_TEST(claimed->size() == 4u);  // the reply waits for its sibling
  for (const auto& d : *claimed) {
    BOOST_TEST(d.destination != "reply");
    BOOST_TEST((d.payload == (d.destination == "audit" ? binary : bundle)));
  }
  auto listed = s->listDeliveries({});
  BOOST_REQUIRE(listed.has_value());
  BOOST_TEST(listed->size() == 5u);
}

// A database an older build left (schema version 3: bodies inline in messages, payloads inline in
// deliveries) opens with every body and payload intact; later messages and deliveries get rows of
// their own.
BOOST_AUTO_TEST_CASE(a_version_3_store_upgrades_with_its_bodies_payloads_and_parked_replies) {
  Db db;
  const std::string binary("\x00\xff old", 6);
  {
    auto raw = db.raw();
    auto applied = store::applyMigrations(*raw, db.dialect(), 3);
    BOOST_REQUIRE_MESSAGE(applied.has_value(), (applied ? std::string() : applied.error().message));
    *raw << "INSERT INTO messages (channel_id, idempotency_key, received_at, content_type, body, "
            "body_encoding, "
            "body_size, metadata, status, error, updated_at) VALUES ('c', 'old', 1000, "
            "'application/json', '{}', '', "
            "2, '[[\"sender\",\"+15550001111\"]]', 'processed', '', 1000)";
    *raw << "INSERT INTO messages (channel_id, idempotency_key, received_at, content_type, body, "
            "body_encoding, "
            "body_size, metadata, status, error, updated_at) VALUES ('c', 'old-binary', 1000, "
            "'application/octet-stream', 'AP8=', 'base64', 2, '[]', 'received', '', 1000)";
    long long message = 0;
    *raw << "SELECT id FROM messages WHERE idempotency_key = 'old'", soci::into(message);
    const std::string encoded = store::encodeBody(binary).text;
    *raw << "INSERT INTO deliveries (message_id, run, channel_id, destination, status, created_at, "
            "next_attempt_at, "
            "payload, payload_encoding, content_type) VALUES (:m, 0, 'c', 'fhir', 'pending', 1000, "
            "1000, "
            "'{\"old\":\"Zoë\"}', '', 'application/fhir+json')",
        soci::use(message);
    *raw << "INSERT INTO deliveries (message_id, run, channel_id, destination, status, created_at, "
            "next_attempt_at, "
            "payload, payload_encoding, content_type) VALUES (:m, 0, 'c', 'file', 'pending', 1000, "
            "1000, :p, "
            "'base64', 'application/octet-stream')",
        soci::use(message), soci::use(encoded);
    // A reply parked behind the fhir delivery (pending in version 3; "waiting" from version 6).
    *raw << "INSERT INTO deliveries (message_id, run, channel_id, destination, status, created_at, "
            "next_attempt_at, "
            "payload, payload_encoding, content_type, after_destination) VALUES (:m, 0, 'c', "
            "'reply', 'pending', "
            "1000, 1000, 'r', '', 'text/plain', 'fhir')",
        soci::use(message);
  }
  auto s = db.open();
  auto old = s->listMessages({});
  BOOST_REQUIRE(old.has_value());
  BOOST_REQUIRE_EQUAL(old->size(), 2u);
  auto first = s->getMessage(old->at(1).id);
  BOOST_REQUIRE(first.has_value());
  BOOST_TEST(first->message.body == "{}");
  BOOST_REQUIRE_EQUAL(first->deliveries.size(), 3u);
  BOOST_TEST(first->deliveries[2].delivery.status == "waiting");
  auto waiting = s->claimMessages("w", 10, 2000, 30000);  // the received one, with its body
  BOOST_REQUIRE(waiting.has_value());
  BOOST_REQUIRE_EQUAL(waiting->size(), 1u);
  BOOST_TEST((waiting->at(0).body == std::string("\x00\xff", 2)));
  auto claimed = s->claimDeliveries("w", 10, 2000, 30000, {});
  BOOST_REQUIRE(claimed.has_value());
  BOOST_REQUIRE_EQUAL(claimed->size(), 2u);
  BOOST_TEST(claimed->at(0).payload == "{\"old\":\"Zoë\"}");
  BOOST_TEST((claimed->at(1).payload == binary));
  BOOST_TEST(claimed->at(0).metadata.size() == 1u);
  auto fresh = ingestOne(*s, msg("c", "new", "n"));
  BOOST_REQUIRE(s->claimMessages("w", 10, 2000, 30000).has_value());
  auto freshDetail = s->getMessage(fresh);
  BOOST_REQUIRE(freshDetail.has_value());
  BOOST_TEST(freshDetail->message.body == "n");
  BOOST_REQUIRE(s->finishMessage(fresh, "w", processed({"fhir"}), 2000).has_value());
  auto listed = s->listDeliveries({});
  BOOST_REQUIRE(listed.has_value());
  BOOST_REQUIRE_EQUAL(listed->size(), 4u);
  BOOST_TEST(listed->at(0).payload == "payload for fhir");  // newest first
  BOOST_TEST(listed->at(1).payload == "r");
  BOOST_TEST((listed->at(2).payload == binary));
  BOOST_TEST(listed->at(3).payload == "{\"old\":\"Zoë\"}");
  // The old fhir delivery ends: the reply parked behind it is due.
  BOOST_REQUIRE(
      s->recordAttempt(claimed->at(0).id, "w", attempt("ok", "succeeded", 2000)).has_value());
  auto due = s->claimDeliveries("w", 10, 2000, 30000, {});
  BOOST_REQUIRE(due.has_value());
  BOOST_TEST(std::count_if(due->begin(), due->end(), [](const auto& d) {
               return d.destination == "reply" && d.upstreamStatus == "succeeded";
             }) == 1);  // beside the new message's fhir delivery
}

BOOST_AUTO_TEST_CASE(rejected_messages_are_kept_with_their_error_and_cannot_be_replayed) {
  Db db;
  auto s = db.open();
  auto m = msg("c", "", "{not json");
  m.status = "rejected";
  m.error = "malformed JSON at offset 1";
  auto id = ingestOne(*s, m);
  auto d = s->getMessage(id);
  BOOST_REQUIRE(d.has_value());
  BOOST_TEST(d->message.status == "rejected");
  BOOST_TEST(d->message.error == "malformed JSON at offset 1");
  BOOST_TEST(eventTypes(*d) == std::vector<std::string>{"rejected"});
  auto claimed = s->claimMessages("w", 10, 5000, 1000);
  BOOST_REQUIRE(claimed.has_value());
  BOOST_TEST(claimed->empty());
  auto replay = s->replayMessage(id, 5000, "admin");
  BOOST_REQUIRE(!replay.has_value());
  BOOST_TEST((replay.error().code == ErrorCode::kConflict));
  auto missing = s->replayMessage(id + 1000, 5000, "admin");
  BOOST_REQUIRE(!missing.has_value());
  BOOST_TEST((missing.error().code == ErrorCode::kNotFound));
  BOOST_TEST(!s->getMessage(id + 1000).has_value());
}

BOOST_AUTO_TEST_CASE(leases_exclude_other_workers_until_they_expire) {
  Db db;
  auto s = db.open();
  auto a = ingestOne(*s, msg("c", "1", "a"));
  auto b = ingestOne(*s, msg("c", "2", "b"));
  auto first = s->claimMessages("w1", 1, 1000, 500);
  BOOST_REQUIRE(first.has_value());
  BOOST_REQUIRE_EQUAL(first->size(), 1u);
  BOOST_TEST(first->at(0).id == a);  // oldest first
  BOOST_TEST(first->at(0).body == "a");
  auto second = s->claimMessages("w2", 10, 1100, 500);
  BOOST_REQUIRE(second.has_value());
  BOOST_REQUIRE_EQUAL(second->size(), 1u);
  BOOST_TEST(second->at(0).id == b);
  BOOST_TEST(s->claimMessages("w3", 10, 1200, 500)->empty());

  // w1 dies; its lease on a runs out at 1500 and w3 takes the message over.
  auto takeover = s->claimMessages("w3", 10, 1500, 500);
  BOOST_REQUIRE(takeover.has_value());
  BOOST_REQUIRE_EQUAL(takeover->size(), 1u);
  BOOST_TEST(takeover->at(0).id == a);
  BOOST_TEST(has(eventTypes(*s->getMessage(a)), "lease-expired"));

  // The late w1 cannot finish what it no longer owns; w3 can.
  auto late = s->finishMessage(a, "w1", processed({"d"}), 1600);
  BOOST_REQUIRE(!late.has_value());
  BOOST_TEST((late.error().code == ErrorCode::kConflict));
  BOOST_REQUIRE(s->finishMessage(a, "w3", processed({"d"}), 1600).has_value());
  BOOST_TEST(s->getMessage(a)->deliveries.size() == 1u);  // not two

  // Graceful release: w2's message is claimable at once.
  BOOST_REQUIRE(s->releaseLeases("w2").has_value());
  auto released = s->claimMessages("w4", 10, 1601, 500);
  BOOST_REQUIRE(released.has_value());
  BOOST_REQUIRE_EQUAL(released->size(), 1u);
  BOOST_TEST(released->at(0).id == b);
}

// Intake's hand-off: messages stored already claimed by the engine that took them in; the
// stored form is exactly what a claim would have loaded.
BOOST_AUTO_TEST_CASE(ingest_under_a_lease_stores_messages_claimed_as_a_claim_would_load_them) {
  Db db;
  auto s = db.open();
  auto good = msg("c", "1", "a");
  good.metadata.push_back({"bad", std::string("x\xffy", 3)});
  good.contentType = std::string("text/\xff", 6);
  auto bad = msg("c", "2", "{not json");
  bad.status = "rejected";
  bad.error = "malformed";
  std::vector<store::NewMessage> batch{good, bad, msg("c", "1", "a again")};
  auto r = s->ingest(batch, store::IntakeLease{"n/intake", 1500});
  BOOST_REQUIRE(r.has_value());
  BOOST_REQUIRE_EQUAL(r->size(), 3u);
  BOOST_TEST(r->at(2).duplicate);
  // Nobody else claims the leased message before its lease ends; the rejected one is no work.
  BOOST_TEST(s->claimMessages("w", 10, 1499, 500)->empty());
  // The intake owner finishes it without claiming it.
  auto handed = store::storedForm(std::move(good), r->at(0).messageId);
  BOOST_REQUIRE(s->finishMessage(handed.id, "n/intake", processed({"d"}), 1200).has_value());
  auto d = s->getMessage(handed.id);
  BOOST_REQUIRE(d.has_value());
  BOOST_TEST(d->message.status == "processed");
  BOOST_TEST(handed.status == "received");
  BOOST_TEST(handed.body == "a");
  BOOST_TEST(handed.idempotencyKey == d->message.idempotencyKey);
  BOOST_TEST(handed.contentType == d->message.contentType);  // sanitised alike
  BOOST_TEST((handed.metadata == d->message.metadata));
  BOOST_TEST(handed.receivedAtMs == d->message.receivedAtMs);
  BOOST_TEST(!has(eventTypes(*d), "lease-expired"));

  // A leased message its owner never finishes is claimed once the lease has run out.
  auto later = s->ingest({msg("c", "3", "b")}, store::IntakeLease{"n/intake", 2000});
  BOOST_REQUIRE(later.has_value());
  BOOST_TEST(s->claimMessages("w", 10, 1999, 500)->empty());
  auto taken = s->claimMessages("w", 10, 2000, 500);
  BOOST_REQUIRE(taken.has_value());
  BOOST_REQUIRE_EQUAL(taken->size(), 1u);
  BOOST_TEST(taken->at(0).id == later->at(0).messageId);
  BOOST_TEST(has(eventTypes(*s->getMessage(taken->at(0).id)), "lease-expired"));
  auto lost = s->finishMessage(taken->at(0).id, "n/intake", processed({"d"}), 2100);
  BOOST_REQUIRE(!lost.has_value());
  BOOST_TEST((lost.error().code == ErrorCode::kConflict));
}

BOOST_AUTO_TEST_CASE(finishing_under_a_delivery_lease_stores_ready_deliveries_as_a_claim_would_load_them) {
  Db db;
  auto s = db.open();
  auto m = msg("c", "1", "a");
  m.metadata.push_back({"sender", "+15550001111"});
  auto r = s->ingest({m}, store::IntakeLease{"n/intake", 5000});
  BOOST_REQUIRE(r.has_value());
  auto handed = store::storedForm(std::move(m), r->at(0).messageId);
  store::ProcessOutcome o = processed({"ehr"}, 1000);
  o.deliveries[0].payload = std::string("caf\xc3\xa9 \xff", 7);  // not UTF-8: stored encoded
  o.deliveries[0].contentType = std::string("application/\xff", 13);
  o.deliveries.push_back({"reply", "thanks", "text/plain", 1000, "ehr"});  // waits for ehr
  o.deliveries.push_back({"later", "x", "text/plain", 9000, ""});         // not due yet
  std::vector<store::Store::LeasedDelivery> leased;
  std::vector<store::Store::FinishItem> items{{handed.id, o, store::IntakeLease{"n/d0", 1500}, &leased}};
  auto f = s->finishMessages("n/intake", items, 1000);
  BOOST_REQUIRE(f.has_value());
  BOOST_REQUIRE(f->at(0).has_value());
  BOOST_REQUIRE_EQUAL(leased.size(), 1u);  // only the ehr delivery: due now, waiting for nobody
  BOOST_TEST(leased[0].index == 0u);
  // Nobody else claims it before the lease ends ...
  BOOST_TEST(s->claimDeliveries("w", 10, 1499, 500, {})->empty());
  const store::DeliveryRecord mine = store::storedForm(o.deliveries[0], leased[0].id, handed, 1000);
  // ... and once it has, the claim loads exactly what was handed over.
  auto taken = s->claimDeliveries("w", 10, 1500, 500, {});
  BOOST_REQUIRE_EQUAL(taken->size(), 1u);
  const store::DeliveryRecord& c = taken->at(0);
  BOOST_TEST(c.id == mine.id);
  BOOST_TEST(c.messageId == mine.messageId);
  BOOST_TEST(c.channelId == mine.channelId);
  BOOST_TEST(c.destination == mine.destination);
  BOOST_TEST(c.status == mine.status);
  BOOST_TEST(c.attempts == mine.attempts);
  BOOST_TEST(c.createdAtMs == mine.createdAtMs);
  BOOST_TEST(c.nextAttemptAtMs == mine.nextAttemptAtMs);
  BOOST_TEST(c.payload == mine.payload);
  BOOST_TEST(c.contentType == mine.contentType);  // sanitised alike
  BOOST_TEST((c.metadata == mine.metadata));
  BOOST_TEST(c.after == mine.after);
  BOOST_TEST(c.leaseUntilMs == 2000);
  // The lease's owner lost it: its attempt record is refused.
  auto late = s->recordAttempts("n/d0", {{mine.id, attempt("ok", "succeeded", 1600)}}, true);
  BOOST_REQUIRE(late.has_value());
  BOOST_TEST(!late->at(0).has_value());
}

BOOST_AUTO_TEST_CASE(filtered_and_failed_messages_create_no_deliveries) {
  Db db;
  auto s = db.open();
  auto a = ingestOne(*s, msg("c", "1", "a"));
  auto b = ingestOne(*s, msg("c", "2", "b"));
  BOOST_REQUIRE_EQUAL(s->claimMessages("w", 10, 1000, 500)->size(), 2u);
  store::ProcessOutcome filtered;
  filtered.status = "filtered";
  filtered.events.emplace_back("filtered", "json-match: kind is note");
  store::ProcessOutcome failed;
  failed.status = "error";
  failed.error = "mapping: /appointment_date: not a date";
  failed.events.emplace_back("failed", failed.error);
  BOOST_REQUIRE(s->finishMessage(a, "w", filtered, 1001).has_value());
  BOOST_REQUIRE(s->finishMessage(b, "w", failed, 1001).has_value());
  auto da = s->getMessage(a);
  auto dbm = s->getMessage(b);
  BOOST_TEST(da->message.status == "filtered");
  BOOST_TEST(dbm->message.status == "error");
  BOOST_TEST(dbm->message.error == failed.error);
  BOOST_TEST(da->deliveries.empty());
  BOOST_TEST(s->backlog().value() == 0);
  // An errored message can be replayed once the mapping is fixed.
  BOOST_REQUIRE(s->replayMessage(b, 2000, "mapping fixed").has_value());
  BOOST_TEST(s->getMessage(b)->message.status == "received");
  BOOST_TEST(s->backlog().value() == 1);
}

BOOST_AUTO_TEST_CASE(deliveries_retry_succeed_and_roll_the_message_up) {
  Db db;
  auto s = db.open();
  auto id = ingestOne(*s, msg("c", "1", "a"));
  s->claimMessages("w", 10, 1000, 500);
  BOOST_REQUIRE(s->finishMessage(id, "w", processed({"ehr", "reply"}, 1000), 1000).has_value());
  BOOST_TEST(s->getMessage(id)->message.status == "processed");
  BOOST_TEST(s->backlog().value() == 2);

  auto due = s->claimDeliveries("w", 10, 1000, 500, {});
  BOOST_REQUIRE(due.has_value());
  BOOST_REQUIRE_EQUAL(due->size(), 2u);
  BOOST_TEST(s->claimDeliveries("w2", 10, 1000, 500, {})->empty());  // leased
  const auto ehr = due->at(0).destination == "ehr" ? due->at(0) : due->at(1);
  const auto reply = due->at(0).destination == "ehr" ? due->at(1) : due->at(0);
  BOOST_TEST(ehr.payload == "payload for ehr");
  BOOST_TEST(ehr.channelId == "c");

  BOOST_REQUIRE(s->recordAttempt(ehr.id, "w", attempt("retry", "pending", 1000, 5000)).has_value());
  BOOST_REQUIRE(s->recordAttempt(reply.id, "w", attempt("ok", "succeeded", 1000)).has_value());
  BOOST_TEST(s->getMessage(id)->message.status == "processed");  // ehr still pending
  // A lost lease is refused.
  auto stale = s->recordAttempt(reply.id, "w", attempt("ok", "succeeded", 1000));
  BOOST_REQUIRE(!stale.has_value());
  BOOST_TEST((stale.error().code == ErrorCode::kConflict));

  BOOST_TEST(s->claimDeliveries("w", 10, 4999, 500, {})->empty());  // not due yet
  auto again = s->claimDeliveries("w", 10, 5000, 500, {});
  BOOST_REQUIRE_EQUAL(again->size(), 1u);
  BOOST_TEST(again->at(0).attempts == 1);
  BOOST_REQUIRE(s->recordAttempt(ehr.id, "w", attempt("ok", "succeeded", 5000)).has_value());
  auto d = s->getMessage(id);
  BOOST_TEST(d->message.status == "delivered");
  BOOST_REQUIRE_EQUAL(d->deliveries.size(), 2u);
  for (const auto& dd : d->deliveries) {
    BOOST_TEST(dd.delivery.status == "succeeded");
    if (dd.delivery.destination == "ehr") {
      BOOST_REQUIRE_EQUAL(dd.attempts.size(), 2u);
      BOOST_TEST(dd.attempts[0].outcome == "retry");
      BOOST_TEST(dd.attempts[0].attempt == 1);
      BOOST_TEST(dd.attempts[1].attempt == 2);
      BOOST_TEST(dd.delivery.lastStatusCode == 200);
    }
  }
  const auto types = eventTypes(*d);
  BOOST_TEST(has(types, "delivery-created"));
  BOOST_TEST(has(types, "retry-scheduled"));
  BOOST_TEST(has(types, "sent"));
  BOOST_TEST(s->backlog().value() == 0);
}

BOOST_AUTO_TEST_CASE(a_finish_keeps_its_events_in_order_with_their_deliveries) {
  // A finish's events go in as multi-row statements of up to 8 rows: 10 pipeline events and 3
  // deliveries take two statements, and the history must read exactly as written.
  Db db;
  auto s = db.open();
  auto id = ingestOne(*s, msg("c", "1", "a"));
  s->claimMessages("w", 10, 1000, 500);
  store::ProcessOutcome o = processed({"d1", "d2", "d3"}, 1000);
  o.events.clear();
  for (int i = 0; i < 10; ++i)
    o.events.emplace_back("stage-" + std::to_string(i), "detail 'x' " + std::to_string(i));
  BOOST_REQUIRE(s->finishMessage(id, "w", o, 1000).has_value());
  auto d = s->getMessage(id);
  BOOST_REQUIRE(d.has_value());
  std::vector<std::string> got;
  std::vector<std::int64_t> deliveryIds;
  for (const auto& e : d->events) {
    if (e.type == "received") continue;
    got.push_back(e.type + ":" + e.detail);
    if (e.deliveryId) deliveryIds.push_back(*e.deliveryId);
    BOOST_TEST(e.atMs == 1000);
  }
  std::vector<std::string> want;
  for (int i = 0; i < 10; ++i)
    want.push_back("stage-" + std::to_string(i) + ":detail 'x' " + std::to_string(i));
  for (const char* dest : {"d1", "d2", "d3"})
    want.push_back(std::string("delivery-created:") + dest);
  BOOST_TEST(got == want, boost::test_tools::per_element());
  BOOST_REQUIRE_EQUAL(d->deliveries.size(), 3u);
  BOOST_REQUIRE_EQUAL(deliveryIds.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) BOOST_TEST(deliveryIds[i] == d->deliveries[i].delivery.id);
  for (std::size_t i = 1; i < d->events.size(); ++i)
    BOOST_TEST(d->events[i].id > d->events[i - 1].id);
}

BOOST_AUTO_TEST_CASE(paused_destinations_are_skipped_and_others_still_flow) {
  Db db;
  auto s = db.open();
  auto id = ingestOne(*s, msg("c", "1", "a"));
  s->claimMessages("w", 10, 1000, 500);
  BOOST_REQUIRE(s->finishMessage(id, "w", processed({"down", "up"}, 1000), 1000).has_value());
  auto got = s->claimDeliveries("w", 10, 1000, 500, {"c/down", "other/x"});
  BOOST_REQUIRE(got.has_value());
  BOOST_REQUIRE_EQUAL(got->size(), 1u);
  BOOST_TEST(got->at(0).destination == "up");
  auto later = s->claimDeliveries("w", 10, 1000, 500, {});
  BOOST_REQUIRE_EQUAL(later->size(), 1u);
  BOOST_TEST(later->at(0).destination == "down");
}

BOOST_AUTO_TEST_CASE(dead_letters_replay_and_message_replay_start_a_new_run) {
  Db db;
  auto s = db.open();
  auto id = ingestOne(*s, msg("c", "1", "a"));
  s->claimMessages("w", 10, 1000, 500);
  BOOST_REQUIRE(s->finishMessage(id, "w", processed({"ehr"}, 1000), 1000).has_value());
  auto d1 = s->claimDeliveries("w", 10, 1000, 500, {})->at(0);
  BOOST_REQUIRE(s->recordAttempt(d1.id, "w", attempt("fail", "dead", 1000, 0, "permanent")).has_value());
  auto detail = s->getMessage(id);
  BOOST_TEST(detail->message.status == "dead");
  BOOST_TEST(detail->deliveries.at(0).delivery.deadReason == "permanent");
  store::DeliveryQuery dead;
  dead.status = "dead";
  BOOST_TEST(s->listDeliveries(dead)->size() == 1u);

  auto notDead = s->replayDelivery(d1.id + 999, 2000, "x");
  BOOST_TEST((!notDead.has_value() && notDead.error().code == ErrorCode::kNotFound));
  BOOST_REQUIRE(s->replayDelivery(d1.id, 2000, "admin").has_value());
  BOOST_TEST(s->getMessage(id)->message.status == "processed");
  auto twice = s->replayDelivery(d1.id, 2000, "admin");
  BOOST_TEST((!twice.has_value() && twice.error().code == ErrorCode::kConflict));
  auto retried = s->claimDeliveries("w", 10, 2000, 500, {});
  BOOST_REQUIRE_EQUAL(retried->size(), 1u);
  BOOST_TEST(retried->at(0).attempts == 1);  // attempts kept
  BOOST_REQUIRE(s->recordAttempt(d1.id, "w", attempt("ok", "succeeded", 2000)).has_value());
  BOOST_TEST(s->getMessage(id)->message.status == "delivered");

  // Whole-message replay: old delivery stays as history; the roll-up looks at the new run only.
  BOOST_REQUIRE(s->replayMessage(id, 3000, "resend").has_value());
  BOOST_TEST(s->claimMessages("w", 10, 3000, 500)->size() == 1u);
  BOOST_REQUIRE(s->finishMessage(id, "w", processed({"ehr"}, 3000), 3000).has_value());
  auto d2 = s->claimDeliveries("w", 10, 3000, 500, {})->at(0);
  BOOST_TEST(d2.id != d1.id);
  BOOST_REQUIRE(s->recordAttempt(d2.id, "w", attempt("ok", "succeeded", 3000)).has_value());
  auto final = s->getMessage(id);
  BOOST_TEST(final->message.status == "delivered");
  BOOST_TEST(final->deliveries.size() == 2u);
  BOOST_TEST(has(eventTypes(*final), "replayed"));
}

BOOST_AUTO_TEST_CASE(lists_filter_page_and_count) {
  Db db;
  auto s = db.open();
  for (int i = 0; i < 7; ++i) ingestOne(*s, msg(i % 2 ? "odd" : "even", "k" + std::to_string(i), "{}", 1000 + i * 100));
  store::MessageQuery q;
  q.channelId = "even";
  auto even = s->listMessages(q);
  BOOST_TEST(even->size() == 4u);
  q = {};
  q.fromMs = 1200;
  q.toMs = 1500;
  auto window = s->listMessages(q);
  BOOST_REQUIRE_EQUAL(window->size(), 3u);
  BOOST_TEST(window->at(0).receivedAtMs == 1400);  // newest first
  q = {};
  q.limit = 3;
  auto page1 = s->listMessages(q);
  BOOST_REQUIRE_EQUAL(page1->size(), 3u);
  q.beforeId = page1->back().id;
  auto page2 = s->listMessages(q);
  BOOST_REQUIRE_EQUAL(page2->size(), 3u);
  BOOST_TEST(page2->front().id < page1->back().id);
  q.status = "delivered";
  BOOST_TEST(s->listMessages(q)->empty());

  auto stats = s->stats();
  BOOST_REQUIRE(stats.has_value());
  std::int64_t total = 0;
  for (const auto& c : stats->messages) {
    BOOST_TEST(c.status == "received");
    total += c.count;
    if (c.channelId == "odd") BOOST_TEST(c.count == 3);
  }
  BOOST_TEST(total == 7);
  BOOST_TEST(s->backlog().value() == 7);

  BOOST_REQUIRE(s->audit({5, "admin", "replay", "message 1", "reason: test"}).has_value());
  BOOST_REQUIRE(s->audit({6, "source:c", "signature-rejected", "c", "bad signature"}).has_value());
  auto audit = s->listAudit(10);
  BOOST_REQUIRE_EQUAL(audit->size(), 2u);
  BOOST_TEST(audit->at(0).action == "signature-rejected");  // newest first
  BOOST_TEST(audit->at(1).actor == "admin");
}

BOOST_AUTO_TEST_CASE(concurrent_workers_on_two_store_handles_never_claim_the_same_message) {
  Db db;
  auto s1 = db.open(3);
  auto s2 = db.open(3);
  std::vector<store::NewMessage> batch;
  for (int i = 0; i < 400; ++i) batch.push_back(msg("c", "k" + std::to_string(i), "{\"i\":" + std::to_string(i) + "}"));
  BOOST_REQUIRE(s1->ingest(batch).has_value());
  std::mutex mu;
  std::vector<std::int64_t> claimed;
  std::atomic<int> errors{0};
  auto worker = [&](Store* s, std::string owner) {
    for (;;) {
      auto got = s->claimMessages(owner, 7, 1000, 60000);
      if (!got) {
        ++errors;
        continue;
      }
      if (got->empty()) return;
      for (const auto& m : *got) {
        BOOST_CHECK(s->finishMessage(m.id, owner, processed({"d"}, 1000), 1000).has_value());
        std::lock_guard lock(mu);
        claimed.push_back(m.id);
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) threads.emplace_back(worker, s1.get(), "a" + std::to_string(i));
  for (int i = 0; i < 3; ++i) threads.emplace_back(worker, s2.get(), "b" + std::to_string(i));
  for (auto& t : threads) t.join();
  BOOST_TEST(errors.load() == 0);
  BOOST_TEST(claimed.size() == 400u);
  BOOST_TEST(std::set<std::int64_t>(claimed.begin(), claimed.end()).size() == 400u);

  // Deliveries too: each claimed once, each message delivered.
  std::vector<std::int64_t> sent;
  auto sender = [&](Store* s, std::string owner) {
    for (;;) {
      auto got = s->claimDeliveries(owner, 5, 1000, 60000, {});
      if (!got) {
        ++errors;
        continue;
      }
      if (got->empty()) return;
      for (const auto& d : *got) {
        BOOST_CHECK(s->recordAttempt(d.id, owner, attempt("ok", "succeeded", 1000)).has_value());
        std::lock_guard lock(mu);
        sent.push_back(d.id);
      }
    }
  };
  threads.clear();
  for (int i = 0; i < 3; ++i) threads.emplace_back(sender, s1.get(), "a" + std::to_string(i));
  for (int i = 0; i < 3; ++i) threads.emplace_back(sender, s2.get(), "b" + std::to_string(i));
  for (auto& t : threads) t.join();
  BOOST_TEST(sent.size() == 400u);
  BOOST_TEST(std::set<std::int64_t>(sent.begin(), sent.end()).size() == 400u);
  store::MessageQuery q;
  q.status = "delivered";
  q.limit = 1000;
  BOOST_TEST(s1->listMessages(q)->size() == 400u);
}

BOOST_AUTO_TEST_CASE(codec_base64_round_trips_and_rejects_garbage) {
  for (std::string s : {std::string(), std::string("a"), std::string("ab"), std::string("abc"),
                        std::string("\x00\x01\x02\xff", 4)}) {
    auto back = store::base64Decode(store::base64Encode(s));
    BOOST_REQUIRE(back.has_value());
    BOOST_TEST((*back == s));
  }
  BOOST_TEST(store::base64Encode("hello") == "aGVsbG8=");
  BOOST_TEST(!store::base64Decode("a===").has_value());
  BOOST_TEST(!store::base64Decode("ab!d").has_value());
  BOOST_TEST(store::isStorableText("Zoë 🙂"));
  BOOST_TEST(!store::isStorableText(std::string("a\0b", 3)));
  BOOST_TEST(!store::isStorableText("\xed\xa0\x80"));  // surrogate
  BOOST_TEST(!store::isStorableText("\xc0\xaf"));      // overlong
}

// The engine's committer: an intake batch and the pipeline's finishes (of several owners) in one
// transaction; a finish whose lease is not its owner's is refused alone; with no intake batch the
// finishes still commit.
BOOST_AUTO_TEST_CASE(one_commit_carries_an_intake_batch_and_finishes_of_several_owners) {
  Db db;
  auto s = db.open();
  auto a = ingestOne(*s, msg("c", "1", "a"));
  auto b = ingestOne(*s, msg("c", "2", "b"));
  BOOST_REQUIRE_EQUAL(s->claimMessages("w1", 1, 1000, 500)->size(), 1u);  // a
  BOOST_REQUIRE_EQUAL(s->claimMessages("w2", 1, 1000, 500)->size(), 1u);  // b
  std::vector<Store::FinishItem> first{{a, processed({"d"}, 1000)}, {b, processed({"d"}, 1000)}};
  std::vector<Store::FinishItem> second{{b, processed({"d"}, 1000)}};
  auto r = s->commit({msg("c", "3", "c"), msg("c", "1", "a again")}, store::IntakeLease{"n/intake", 1500},
                     {{"w1", &first, 1000}, {"w2", &second, 1000}});
  BOOST_REQUIRE(r.has_value());
  BOOST_REQUIRE_EQUAL(r->ingested.size(), 2u);
  BOOST_TEST(!r->ingested[0].duplicate);
  BOOST_TEST(r->ingested[1].duplicate);
  BOOST_TEST(r->ingested[1].messageId == a);
  BOOST_REQUIRE_EQUAL(r->finished.size(), 2u);
  BOOST_REQUIRE_EQUAL(r->finished[0].size(), 2u);
  BOOST_TEST(r->finished[0][0].has_value());
  BOOST_TEST(!r->finished[0][1].has_value());  // b is w2's
  BOOST_TEST((r->finished[0][1].error().code == ErrorCode::kConflict));
  BOOST_TEST(r->finished[1].at(0).has_value());
  BOOST_TEST(s->getMessage(a)->deliveries.size() == 1u);
  BOOST_TEST(s->getMessage(b)->deliveries.size() == 1u);  // once, by w2
  const auto c = r->ingested[0].messageId;
  BOOST_TEST(s->getMessage(c)->message.status == "received");
  BOOST_TEST(s->claimMessages("w3", 10, 1499, 500)->empty());  // c is leased to n/intake

  std::vector<Store::FinishItem> third{{c, processed({}, 1200)}};
  auto alone = s->commit({}, std::nullopt, {{"n/intake", &third, 1200}});
  BOOST_REQUIRE(alone.has_value());
  BOOST_TEST(alone->ingested.empty());
  BOOST_TEST(alone->finished.at(0).at(0).has_value());
  BOOST_TEST(s->getMessage(c)->message.status == "processed");
}

BOOST_AUTO_TEST_CASE(batched_finish_and_attempts_commit_together_and_refuse_lost_leases_per_item) {
  Db db;
  auto s = db.open();
  auto a = ingestOne(*s, msg("c", "1", "a"));
  auto b = ingestOne(*s, msg("c", "2", "b"));
  auto c = ingestOne(*s, msg("c", "3", "c"));
  BOOST_REQUIRE_EQUAL(s->claimMessages("w", 2, 1000, 500)->size(), 2u);  // a and b
  auto r = s->finishMessages("w", {{a, processed({"d"}, 1000)}, {c, processed({"d"}, 1000)}, {b, processed({"d"}, 1000)}},
                             1000);
  BOOST_REQUIRE(r.has_value());
  BOOST_REQUIRE_EQUAL(r->size(), 3u);
  BOOST_TEST(r->at(0).has_value());
  BOOST_TEST(!r->at(1).has_value());  // c was never claimed by w
  BOOST_TEST((r->at(1).error().code == ErrorCode::kConflict));
  BOOST_TEST(r->at(2).has_value());
  BOOST_TEST(s->getMessage(c)->deliveries.empty());
  BOOST_TEST(s->getMessage(c)->message.status == "received");

  auto due = s->claimDeliveries("w", 10, 1000, 500, {});
  BOOST_REQUIRE_EQUAL(due->size(), 2u);
  std::vector<store::Store::AttemptItem> items;
  items.push_back({due->at(0).id, attempt("ok", "succeeded", 1000)});
  items.push_back({due->at(1).id + 1000, attempt("ok", "succeeded", 1000)});  // unknown: conflict
  items.push_back({due->at(1).id, attempt("retry", "pending", 1000, 9000)});
  auto rec = s->recordAttempts("w", items, true);
  BOOST_REQUIRE(rec.has_value());
  BOOST_TEST(rec->at(0).has_value());
  BOOST_TEST(!rec->at(1).has_value());
  BOOST_TEST(rec->at(2).has_value());
  BOOST_TEST(s->getMessage(due->at(0).messageId)->message.status == "delivered");
  BOOST_TEST(s->getMessage(due->at(1).messageId)->message.status == "processed");

  // Without a flush of its own (a repeatable send): the same record, visible at once.
  auto retried = s->claimDeliveries("w", 10, 9000, 500, {});
  BOOST_REQUIRE_EQUAL(retried->size(), 1u);
  auto unflushed = s->recordAttempts("w", {{retried->at(0).id, attempt("ok", "succeeded", 9000)}}, false);
  BOOST_REQUIRE(unflushed.has_value());
  BOOST_TEST(unflushed->at(0).has_value());
  BOOST_TEST(s->getMessage(retried->at(0).messageId)->message.status == "delivered");
}

// Two messages "a" and "b", each finished by "w" at 1000 with an "ehr" delivery due at once and
// a "reply" after it.
std::pair<std::int64_t, std::int64_t> twoMessagesWithAReplyAfterTheEhr(Store& s) {
  auto a = ingestOne(s, msg("c", "1", "a"));
  auto b = ingestOne(s, msg("c", "2", "b"));
  BOOST_REQUIRE_EQUAL(s.claimMessages("w", 10, 1000, 500)->size(), 2u);
  for (auto id : {a, b}) {
    store::ProcessOutcome o = processed({"ehr"}, 1000);
    o.deliveries.push_back({"reply", "thanks", "application/json", 1000, "ehr"});
    BOOST_REQUIRE(s.finishMessage(id, "w", o, 1000).has_value());
  }
  return {a, b};
}

BOOST_AUTO_TEST_CASE(a_delivery_after_a_sibling_waits_for_it_and_sees_its_outcome) {
  Db db;
  auto s = db.open();
  auto [a, b] = twoMessagesWithAReplyAfterTheEhr(*s);
  auto first = s->claimDeliveries("w", 10, 1000, 500, {});
  BOOST_REQUIRE_EQUAL(first->size(), 2u);  // both ehr deliveries, no reply yet
  for (const auto& d : *first) BOOST_TEST(d.destination == "ehr");
  const auto& ehrA = first->at(0).messageId == a ? first->at(0) : first->at(1);
  const auto& ehrB = first->at(0).messageId == a ? first->at(1) : first->at(0);
  auto ok = attempt("ok", "succeeded", 1000);
  ok.response = R"([{"status":"201 Created","location":"Appointment/7"}])";
  BOOST_REQUIRE(s->recordAttempt(ehrA.id, "w", ok).has_value());
  BOOST_REQUIRE(s->recordAttempt(ehrB.id, "w", attempt("retry", "pending", 1000, 9000)).has_value());

  // A reply is parked as "waiting" (outside the claimable rows) until its EHR delivery ends.
  auto statusOf = [&](std::int64_t message, const std::string& destination) {
    for (const auto& d : s->getMessage(message)->deliveries) {
      if (d.delivery.destination == destination) return d.delivery.status;
    }
    return std::string("none");
  };
  BOOST_TEST(statusOf(a, "reply") == "pending");
  BOOST_TEST(statusOf(b, "reply") == "waiting");
  BOOST_TEST(s->getMessage(b)->message.status == "processed");
  BOOST_TEST(*s->backlog() == 3);  // b's ehr (due again at 9000), both replies

  auto replies = s->claimDeliveries("w", 10, 1000, 500, {});
  BOOST_REQUIRE_EQUAL(replies->size(), 1u);  // b's ehr is still pending (retrying): its reply waits
  BOOST_TEST(replies->at(0).destination == "reply");
  BOOST_TEST(replies->at(0).messageId == a);
  BOOST_TEST(replies->at(0).after == "ehr");
  BOOST_TEST(replies->at(0).upstreamStatus == "succeeded");
  BOOST_TEST(replies->at(0).upstreamResponse == ok.response);
  BOOST_REQUIRE(s->recordAttempt(replies->at(0).id, "w", attempt("ok", "succeeded", 1000)).has_value());
  BOOST_TEST(s->getMessage(a)->message.status == "delivered");

  auto retry = s->claimDeliveries("w", 10, 9000, 500, {});
  BOOST_REQUIRE_EQUAL(retry->size(), 1u);
  BOOST_TEST(retry->at(0).destination == "ehr");
  BOOST_TEST(statusOf(b, "reply") == "waiting");
  BOOST_REQUIRE(s->recordAttempt(retry->at(0).id, "w", attempt("fail", "dead", 9000, 0, "permanent")).has_value());
  BOOST_TEST(statusOf(b, "reply") ==
             "pending");  // a dead EHR delivery releases it too (the apology)
  BOOST_TEST(s->getMessage(b)->message.status == "processed");  // not dead while the reply is due
  auto apology = s->claimDeliveries("w", 10, 9000, 500, {});
  BOOST_REQUIRE_EQUAL(apology->size(), 1u);
  BOOST_TEST(apology->at(0).messageId == b);
  BOOST_TEST(apology->at(0).upstreamStatus == "dead");
}

// "after" a destination the run does not have: nothing to wait for, due at once.
BOOST_AUTO_TEST_CASE(a_delivery_after_a_destination_the_run_lacks_is_due_at_once) {
  Db db;
  auto s = db.open();
  auto id = ingestOne(*s, msg("c", "lonely", "a"));
  BOOST_REQUIRE(s->claimMessages("w", 10, 1000, 500).has_value());
  store::ProcessOutcome o;
  o.status = "processed";
  o.deliveries.push_back({"reply", "p", "application/json", 1000, "ehr"});  // no "ehr" in this run
  BOOST_REQUIRE(s->finishMessage(id, "w", o, 1000).has_value());
  auto due = s->claimDeliveries("w", 10, 1000, 500, {});
  BOOST_REQUIRE_EQUAL(due->size(), 1u);
  BOOST_TEST(due->at(0).destination == "reply");
  BOOST_TEST(due->at(0).upstreamStatus == "");
}

BOOST_AUTO_TEST_CASE(attempts_recorded_with_the_next_claim_release_the_deliveries_waiting_for_them) {
  Db db;
  auto s = db.open();
  auto [a, b] = twoMessagesWithAReplyAfterTheEhr(*s);
  auto first = s->claimDeliveries("w", 10, 1000, 500, {});
  BOOST_REQUIRE_EQUAL(first->size(), 2u);  // both ehr deliveries
  const auto& ehrA = first->at(0).messageId == a ? first->at(0) : first->at(1);
  const auto& ehrB = first->at(0).messageId == a ? first->at(1) : first->at(0);
  auto ok = attempt("ok", "succeeded", 1000);
  ok.response = R"([{"status":"201 Created"}])";
  std::vector<store::Store::AttemptItem> items{{ehrA.id, ok},
                                               {ehrB.id + 1000, ok},  // not ours: conflict, the rest commits
                                               {ehrB.id, attempt("retry", "pending", 1000, 9000)}};
  auto both = s->recordAttemptsAndClaim("w", items, true, {10, 1000, 500, {}});
  BOOST_REQUIRE(both.has_value());
  BOOST_REQUIRE_EQUAL(both->recorded.size(), 3u);
  BOOST_TEST(both->recorded[0].has_value());
  BOOST_TEST((!both->recorded[1].has_value() && both->recorded[1].error().code == ErrorCode::kConflict));
  BOOST_TEST(both->recorded[2].has_value());
  // The claim saw a's ehr succeed in the same transaction: a's reply, with its outcome; b's waits.
  BOOST_REQUIRE_EQUAL(both->claimed.size(), 1u);
  BOOST_TEST(both->claimed[0].destination == "reply");
  BOOST_TEST(both->claimed[0].messageId == a);
  BOOST_TEST(both->claimed[0].upstreamStatus == "succeeded");
  BOOST_TEST(both->claimed[0].upstreamResponse == ok.response);
  // Claimed under w's lease: nobody else takes it before the lease ends.
  BOOST_TEST(s->claimDeliveries("x", 10, 1000, 500, {})->empty());
  // Paused destinations are skipped by the claim, and a claim that finds nothing is empty.
  auto replied = s->recordAttemptsAndClaim("w", {{both->claimed[0].id, attempt("ok", "succeeded", 1000)}}, false,
                                           {10, 9000, 500, {"c/ehr"}});
  BOOST_REQUIRE(replied.has_value());
  BOOST_TEST(replied->recorded.at(0).has_value());
  BOOST_TEST(replied->claimed.empty());  // b's ehr is due at 9000 but paused
  BOOST_TEST(s->getMessage(a)->message.status == "delivered");
  auto retry = s->claimDeliveries("w", 10, 9000, 500, {});
  BOOST_REQUIRE_EQUAL(retry->size(), 1u);
  BOOST_TEST(retry->at(0).messageId == b);
}

// The committer's transaction carries delivery workers' attempt records (Store::commit's
// `attempts`): one with its next claim (the reply its attempt releases handed over), one recorded
// only; the transaction is flushed only when intake or an attempt batch asks for it (SQLite).
BOOST_AUTO_TEST_CASE(one_commit_carries_attempt_records_and_their_claims_with_the_intake_batch) {
  Db db;
  auto s = db.open();
  auto [a, b] = twoMessagesWithAReplyAfterTheEhr(*s);
  auto first = s->claimDeliveries("w", 10, 1000, 500, {});
  BOOST_REQUIRE_EQUAL(first->size(), 2u);
  const auto& ehrA = first->at(0).messageId == a ? first->at(0) : first->at(1);
  const auto& ehrB = first->at(0).messageId == a ? first->at(1) : first->at(0);
  auto ok = attempt("ok", "succeeded", 1000);
  ok.response = R"([{"status":"201 Created"}])";
  const std::vector<Store::AttemptItem> withClaim{{ehrA.id, ok}};
  const std::vector<Store::AttemptItem> recordOnly{
      {ehrB.id, attempt("retry", "pending", 1000, 9000)}, {ehrB.id + 1000, ok}};  // not ours
  const Store::ClaimRequest claim{10, 1000, 500, {}};
  auto r = s->commit({msg("c", "3", "c")}, std::nullopt, {},
                     {{"w", &withClaim, false, &claim}, {"w", &recordOnly, false, nullptr}});
  BOOST_REQUIRE(r.has_value());
  BOOST_REQUIRE_EQUAL(r->ingested.size(), 1u);
  BOOST_TEST(!r->ingested[0].duplicate);
  BOOST_REQUIRE_EQUAL(r->recorded.size(), 2u);
  BOOST_REQUIRE_EQUAL(r->recorded[0].recorded.size(), 1u);
  BOOST_TEST(r->recorded[0].recorded[0].has_value());
  BOOST_REQUIRE_EQUAL(r->recorded[0].claimed.size(), 1u);  // a's reply, handed over
  BOOST_TEST(r->recorded[0].claimed[0].destination == "reply");
  BOOST_TEST(r->recorded[0].claimed[0].messageId == a);
  BOOST_TEST(r->recorded[0].claimed[0].upstreamResponse == ok.response);
  BOOST_REQUIRE_EQUAL(r->recorded[1].recorded.size(), 2u);
  BOOST_TEST(r->recorded[1].recorded[0].has_value());
  BOOST_TEST((!r->recorded[1].recorded[1].has_value() &&
              r->recorded[1].recorded[1].error().code == ErrorCode::kConflict));
  BOOST_TEST(r->recorded[1].claimed.empty());
  auto statusOf = [&](std::int64_t message, const std::string& destination) {
    for (const auto& d : s->getMessage(message)->deliveries) {
      if (d.delivery.destination == destination) return d.delivery.status;
    }
    return std::string("none");
  };
  BOOST_TEST(statusOf(a, "ehr") == "succeeded");
  BOOST_TEST(statusOf(b, "ehr") == "pending");
  BOOST_TEST(s->claimDeliveries("x", 10, 1000, 500, {})->empty());  // a's reply is w's now
  // stats() counts the open and dead deliveries (what /metrics shows), not the succeeded ones.
  auto st = s->stats();
  BOOST_REQUIRE(st.has_value());
  std::map<std::string, std::int64_t> open;
  for (const auto& d : st->deliveries) open[d.destination + "/" + d.status] += d.count;
  BOOST_TEST(open.size() == 3u);
  BOOST_TEST(open["ehr/pending"] == 1);    // b's, retried at 9000
  BOOST_TEST(open["reply/pending"] == 1);  // a's, handed over
  BOOST_TEST(open["reply/waiting"] == 1);  // b's

  if (s->backend() != "sqlite") return;  // flushes of the write-ahead log are SQLite's
  const auto flushes = [&] { return s->stats()->logFlushes.value_or(-1); };
  const auto before = flushes();
  const std::vector<Store::AttemptItem> reply{
      {r->recorded[0].claimed[0].id, attempt("ok", "succeeded", 1001)}};
  BOOST_REQUIRE(s->commit({}, std::nullopt, {}, {{"w", &reply, false, nullptr}}).has_value());
  BOOST_TEST(flushes() == before);  // nothing asked for a flush
  BOOST_TEST(statusOf(a, "reply") == "succeeded");
  BOOST_TEST(s->getMessage(a)->message.status == "delivered");
  auto retry = s->claimDeliveries("w", 10, 9000, 500, {});
  BOOST_REQUIRE_EQUAL(retry->size(), 1u);
  const std::vector<Store::AttemptItem> retried{
      {retry->at(0).id, attempt("ok", "succeeded", 9000)}};
  BOOST_REQUIRE(s->commit({}, std::nullopt, {}, {{"w", &retried, true, nullptr}}).has_value());
  BOOST_TEST(flushes() == before + 1);  // the attempt batch asked for one
}

// ClaimRequest::known: a picked delivery never attempted is leased and taken from what the caller
// holds, without being read back; one attempted since is read back even when offered.
BOOST_AUTO_TEST_CASE(a_claim_takes_unattempted_deliveries_from_what_the_caller_holds) {
  Db db;
  auto s = db.open();
  auto a = ingestOne(*s, msg("c", "1", "a"));
  auto b = ingestOne(*s, msg("c", "2", "b"));
  BOOST_REQUIRE_EQUAL(s->claimMessages("w", 10, 1000, 500)->size(), 2u);
  std::vector<Store::LeasedDelivery> claimableA, claimableB;
  std::vector<Store::FinishItem> items{{a, processed({"ehr"}, 1000)},
                                       {b, processed({"ehr"}, 1000)}};
  items[0].claimableDeliveries = &claimableA;
  items[1].claimableDeliveries = &claimableB;
  auto finished = s->finishMessages("w", items, 1000);
  BOOST_REQUIRE(finished.has_value());
  BOOST_REQUIRE_EQUAL(claimableA.size(), 1u);  // unleased, due at once, after nobody
  BOOST_REQUIRE_EQUAL(claimableB.size(), 1u);
  // Both claimed by another worker, which attempts b's (retried at once: no longer as its finish
  // stored it) and lets a's lease go unattempted.
  BOOST_REQUIRE_EQUAL(s->claimDeliveries("x", 10, 1000, 500, {})->size(), 2u);
  BOOST_REQUIRE(
      s->recordAttempt(claimableB[0].id, "x", attempt("retry", "pending", 1000, 1000)).has_value());
  BOOST_REQUIRE(s->releaseLeases("x").has_value());
  std::vector<std::int64_t> asked;
  Store::ClaimRequest claim{
      10, 2000, 500, {}, [&](std::int64_t id) -> std::optional<store::DeliveryRecord> {
        asked.push_back(id);
        store::DeliveryRecord r;
        r.id = id;
        r.payload = "held in memory";
        r.destination = "ehr";
        return r;
      }};
  const std::vector<Store::AttemptItem> none;
  auto r = s->commit({}, std::nullopt, {}, {{"w", &none, false, &claim}});
  BOOST_REQUIRE(r.has_value());
  BOOST_REQUIRE_EQUAL(r->recorded.at(0).claimed.size(), 2u);
  BOOST_TEST(asked.size() == 2u);
  for (const auto& d : r->recorded[0].claimed) {
    BOOST_TEST(d.leaseUntilMs == 2500);
    if (d.id == claimableA[0].id) {
      BOOST_TEST(d.payload == "held in memory");  // taken as offered
    } else {
      BOOST_TEST(d.id == claimableB[0].id);
      BOOST_TEST(d.payload != "held in memory");  // attempted: read back
      BOOST_TEST(d.attempts == 1);
    }
  }
  BOOST_TEST(s->claimDeliveries("y", 10, 2000, 500, {})->empty());  // both leased to w
}

// Hand-over: the deliveries an attempt releases come back from recordAttemptsAndClaim leased to
// the worker, field for field what a claim loads, read from the database or (`sent`) reusing the
// sent sibling's payload and metadata; those not due or paused stay for a claim.
BOOST_AUTO_TEST_CASE(deliveries_released_by_an_attempt_are_handed_over_as_a_claim_would_load_them) {
  Db db;
  auto s = db.open();
  const std::string bundle("caf\xc3\xa9 \xff bundle", 14);  // not UTF-8: stored encoded
  std::vector<std::int64_t> ids;
  // Message `key` with an ehr delivery due at `ehrDue` and four deliveries after it.
  auto add = [&](const char* key, Millis ehrDue) {
    auto m = msg("c", key, "a");
    m.metadata.push_back({"wa_id", std::string("15550001111-") + key});
    const auto id = ingestOne(*s, m);
    ids.push_back(id);
    BOOST_REQUIRE_EQUAL(s->claimMessages("w", 10, 1000, 500)->size(), 1u);
    store::ProcessOutcome o;
    o.status = "processed";
    o.deliveries.push_back({"ehr", bundle, "application/fhir+json", ehrDue, ""});
    o.deliveries.push_back({"reply", bundle, "application/fhir+json", 1000, "ehr"});  // shares its row
    o.deliveries.push_back({"note", "other payload", std::string("text/\xff", 6), 1000, "ehr"});
    o.deliveries.push_back({"later", "x", "text/plain", 9000, "ehr"});  // not due at hand-over
    o.deliveries.push_back({"audit", "y", "text/plain", 1000, "ehr"});  // paused at hand-over
    BOOST_REQUIRE(s->finishMessage(id, "w", o, 1000).has_value());
  };
  add("1", 1000);
  add("2", 1000);
  auto ehrs = s->claimDeliveries("w", 2, 1000, 500, {}).value();
  BOOST_REQUIRE_EQUAL(ehrs.size(), 2u);
  add("3", 900);  // its ehr is due first: a claim would take it before the released ones
  auto ok = attempt("ok", "succeeded", 1000);
  ok.response = R"({"entry":[{"status":"201 Created","location":"Appointment/7/_history/1"}]})";
  auto dead = attempt("fail", "dead", 1000, 0, "permanent");
  std::vector<Store::AttemptItem> items{{ehrs.at(0).id, ok, &ehrs.at(0)},  // payload and metadata reused
                                        {ehrs.at(1).id, dead, nullptr}};  // read back
  // Room for four: the four handed over fill it, so the claim takes nothing (3's ehr stays).
  auto both = s->recordAttemptsAndClaim("w", items, true, {4, 1000, 700, {"c/audit"}});
  BOOST_REQUIRE(both.has_value());
  BOOST_TEST(both->recorded.at(0).has_value());
  BOOST_TEST(both->recorded.at(1).has_value());
  std::vector<store::DeliveryRecord> handed = both->claimed;
  BOOST_REQUIRE_EQUAL(handed.size(), 4u);
  for (const auto& h : handed) {
    BOOST_TEST((h.destination == "reply" || h.destination == "note"));
    BOOST_TEST(h.leaseUntilMs == 1700);
    BOOST_TEST(h.upstreamStatus == (h.messageId == ehrs.at(0).messageId ? "succeeded" : "dead"));
  }
  // Nobody else claims them; the paused ones were released for any claim.
  auto others = s->claimDeliveries("x", 10, 1000, 500, {});
  BOOST_REQUIRE(others.has_value());
  std::multiset<std::string> free;
  for (const auto& d : *others) free.insert(d.destination);
  BOOST_TEST((free == std::multiset<std::string>{"audit", "audit", "ehr"}));  // 3's ehr was left
  // Once the lease ends, a claim loads exactly what was handed over.
  auto claimed = s->claimDeliveries("y", 10, 1700, 500, {});
  BOOST_REQUIRE(claimed.has_value());
  std::size_t matched = 0;
  for (const auto& h : handed) {
    for (const auto& c : *claimed) {
      if (c.id != h.id) continue;
      ++matched;
      BOOST_TEST(c.messageId == h.messageId);
      BOOST_TEST(c.channelId == h.channelId);
      BOOST_TEST(c.destination == h.destination);
      BOOST_TEST(c.status == h.status);
      BOOST_TEST(c.attempts == h.attempts);
      BOOST_TEST(c.createdAtMs == h.createdAtMs);
      BOOST_TEST(c.nextAttemptAtMs == h.nextAttemptAtMs);
      BOOST_TEST(c.payload == h.payload);
      BOOST_TEST(c.contentType == h.contentType);
      BOOST_TEST((c.metadata == h.metadata));
      BOOST_TEST(c.lastStatusCode == h.lastStatusCode);
      BOOST_TEST(c.lastResponse == h.lastResponse);
      BOOST_TEST(c.deadReason == h.deadReason);
      BOOST_TEST(c.after == h.after);
      BOOST_TEST(c.upstreamStatus == h.upstreamStatus);
      BOOST_TEST(c.upstreamResponse == h.upstreamResponse);
    }
  }
  BOOST_TEST(matched == 4u);
  for (const auto& h : handed) {
    if (h.destination == "reply") BOOST_TEST(h.payload == bundle);
  }
  // The one not due yet is pending, for the claim at its time.
  auto later = s->claimDeliveries("z", 10, 9000, 500, {});
  BOOST_REQUIRE(later.has_value());
  std::size_t laterCount = 0;
  for (const auto& d : *later) laterCount += d.destination == "later" ? 1 : 0;
  BOOST_TEST(laterCount == 2u);
}

BOOST_AUTO_TEST_CASE(status_callbacks_are_recorded_on_the_message_whose_delivery_sent_it) {
  Db db;
  auto s = db.open();
  auto id = ingestOne(*s, msg("c", "ext-1", "a"));
  s->claimMessages("w", 10, 1000, 500);
  BOOST_REQUIRE(s->finishMessage(id, "w", processed({"reply"}, 1000), 1000).has_value());
  auto due = s->claimDeliveries("w", 10, 1000, 500, {});
  BOOST_REQUIRE_EQUAL(due->size(), 1u);
  auto sent = attempt("ok", "succeeded", 1000);
  sent.externalId = "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA";
  BOOST_REQUIRE(s->recordAttempt(due->at(0).id, "w", sent).has_value());

  auto unknown = s->linkExternal("wamid.unknown", 2000, "outbound-status", "meta delivered");
  BOOST_REQUIRE(unknown.has_value());
  BOOST_TEST(!unknown->has_value());

  auto linked = s->linkExternal(sent.externalId, 2000, "outbound-status", "meta delivered for it");
  BOOST_REQUIRE(linked.has_value());
  BOOST_REQUIRE(linked->has_value());
  BOOST_TEST((*linked)->messageId == id);
  BOOST_TEST((*linked)->deliveryId == due->at(0).id);
  auto read = s->linkExternal(sent.externalId, 3000, "outbound-status", "meta read for it");
  BOOST_REQUIRE(read.has_value() && read->has_value());
  auto d = s->getMessage(id);
  int statusEvents = 0;
  for (const auto& e : d->events) {
    if (e.type == "outbound-status") {
      ++statusEvents;
      BOOST_TEST((e.deliveryId && *e.deliveryId == due->at(0).id));
    }
  }
  BOOST_TEST(statusEvents == 2);
}

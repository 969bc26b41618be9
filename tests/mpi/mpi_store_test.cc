// MpiStore on SQLite or PostgreSQL (SWITCHBOARD_MPI_STORE_BACKEND): migrations, round trips of
// every table, keyset paging of the review queue, rollback, append-only audit.
#define BOOST_TEST_MODULE mpi_store
#include <boost/test/unit_test.hpp>

#include "tests/mpi/mpi_test_support.h"

using namespace switchboard;
using namespace switchboard::mpi;
using namespace switchboard::mpi::testing;

BOOST_GLOBAL_FIXTURE(TempDirCleanup);

BOOST_AUTO_TEST_CASE(migrations_are_applied_once) {
  std::string url;
  auto store = freshStore(&url);
  auto v = store->schemaVersion();
  BOOST_REQUIRE(v.has_value());
  BOOST_TEST(*v == MpiStore::latestSchemaVersion());
  BOOST_TEST(*v >= 1);
  // Reopening the same database applies nothing again and keeps the data.
  BOOST_REQUIRE(store->transaction([](MpiTx& tx) -> Result<void> {
    tx.putSource({"s/1", "s", R"({"resourceType":"Patient","id":"1"})", "{}", 10, 10});
    return {};
  }));
  store.reset();
  auto again = MpiStore::open(url);
  BOOST_REQUIRE(again.has_value());
  BOOST_TEST(*(*again)->schemaVersion() == MpiStore::latestSchemaVersion());
  bool found = false;
  BOOST_REQUIRE((*again)->transaction([&](MpiTx& tx) -> Result<void> {
    found = tx.source("s/1").has_value();
    return {};
  }));
  BOOST_TEST(found);
}

BOOST_AUTO_TEST_CASE(bad_urls_are_refused) {
  BOOST_TEST(!MpiStore::open("mysql://db=x").has_value());
  BOOST_TEST(!MpiStore::open("oracle", "x").has_value());
  BOOST_TEST(!MpiStore::open("sqlite3", "timeout=3").has_value());
  auto pg = MpiStore::open("postgresql://host=127.0.0.1 port=1 dbname=none connect_timeout=2");
  BOOST_REQUIRE(!pg.has_value());
  BOOST_TEST((pg.error().code == ErrorCode::kTransient));
}

BOOST_AUTO_TEST_CASE(sources_goldens_and_links_round_trip) {
  auto store = freshStore();
  const std::string json = R"({"resourceType":"Patient","id":"a","name":[{"family":"Ñúñez"}]})";
  auto r = store->transaction([&](MpiTx& tx) -> Result<void> {
    tx.putSource({"wa/a", "wa", json, R"({"family":"nunez"})", 100, 100});
    tx.putSource({"wa/b", "wa", "{}", "{}", 101, 101});
    tx.putSource({"wa/a", "wa", json, R"({"family":"nunez"})", 100, 200});  // update
    tx.putGolden(
        {"g1", true, "", "{}", R"({"family":{"value":"Nunez","source":"wa/a"}})", 100, 100});
    tx.putGolden({"g2", false, "g1", "{}", "{}", 101, 300});
    tx.putLink({"wa/a", "g1", Decision::kMatch, LinkOrigin::kAuto, 0.99, 21.5, R"({"weight":21.5})",
                "", "", 100});
    tx.putLink({"wa/b", "g1", Decision::kMatch, LinkOrigin::kManual, 0.7, 12.0, "{}", "ana",
                "same phone", 300});
    tx.putLink(
        {"wa/b", "g2", Decision::kNoMatch, LinkOrigin::kManual, 0.7, 12.0, "{}", "ana", "x", 300});
    tx.deleteLink("wa/b", "g2");
    return {};
  });
  BOOST_REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message));
  BOOST_REQUIRE(store->transaction([&](MpiTx& tx) -> Result<void> {
    auto a = tx.source("wa/a");
    BOOST_REQUIRE(a.has_value());
    BOOST_TEST(a->resource == json);  // UTF-8 kept byte for byte
    BOOST_TEST(a->createdAt == 100);
    BOOST_TEST(a->updatedAt == 200);
    BOOST_TEST(!tx.source("wa/zzz").has_value());
    size_t n = 0;
    tx.forEachSource([&](SourcePatient&&) { ++n; });
    BOOST_TEST(n == 2u);
    auto g2 = tx.golden("g2");
    BOOST_REQUIRE(g2.has_value());
    BOOST_TEST(!g2->active);
    BOOST_TEST(g2->replacedBy == "g1");
    BOOST_TEST(tx.golden("g1")->provenance.find("wa/a") != std::string::npos);
    auto links = tx.linksOfGolden("g1");
    BOOST_REQUIRE(links.size() == 2u);
    BOOST_TEST(links[0].sourceId == "wa/a");
    BOOST_TEST((links[0].origin == LinkOrigin::kAuto));
    BOOST_TEST(links[0].weight == 21.5);
    BOOST_TEST(links[0].score == 0.99);
    BOOST_TEST((links[1].origin == LinkOrigin::kManual));
    BOOST_TEST(links[1].reviewer == "ana");
    BOOST_TEST(links[1].reason == "same phone");
    BOOST_TEST(tx.linksOfSource("wa/b").size() == 1u);  // the NO_MATCH link was deleted
    return {};
  }));
}

BOOST_AUTO_TEST_CASE(review_queue_pages_by_score) {
  auto store = freshStore();
  std::vector<int64_t> ids;
  const double scores[] = {0.5, 0.9, 0.7, 0.9, 0.2};
  BOOST_REQUIRE(store->transaction([&](MpiTx& tx) -> Result<void> {
    for (int i = 0; i < 5; ++i) {
      ReviewItem r;
      r.sourceId = "s/" + std::to_string(i);
      r.candidateId = "s/x";
      r.score = scores[i];
      r.weight = 10 + i;
      r.contributions = "{}";
      r.createdAt = 1000 + i;
      ids.push_back(tx.insertReview(r));
    }
    return {};
  }));
  BOOST_TEST(ids[0] > 0);
  BOOST_TEST(ids[1] != ids[0]);
  std::vector<std::string> order;
  BOOST_REQUIRE(store->transaction([&](MpiTx& tx) -> Result<void> {
    ReviewFilter f;
    f.limit = 2;
    int64_t after = 0;
    while (true) {
      f.afterId = after;
      auto page = tx.reviews(f);
      if (page.empty()) break;
      for (const auto& r : page) order.push_back(r.sourceId);
      after = page.back().id;
    }
    // Ties on score come newest first.
    BOOST_TEST((order == std::vector<std::string>{"s/3", "s/1", "s/2", "s/0", "s/4"}));
    f = {};
    f.minScore = 0.6;
    BOOST_TEST(tx.reviews(f).size() == 3u);
    auto item = tx.review(ids[2]);
    BOOST_REQUIRE(item.has_value());
    item->status = ReviewStatus::kNotDuplicate;
    item->reviewer = "ana";
    item->reason = "different mothers";
    item->decidedAt = 5000;
    tx.updateReview(*item);
    f = {};
    f.status = ReviewStatus::kOpen;
    BOOST_TEST(tx.reviews(f).size() == 4u);
    f.status = ReviewStatus::kNotDuplicate;
    auto done = tx.reviews(f);
    BOOST_REQUIRE(done.size() == 1u);
    BOOST_TEST(done[0].reviewer == "ana");
    BOOST_TEST(done[0].decidedAt == 5000);
    BOOST_TEST(tx.openReviewForPair("s/x", "s/0").has_value());   // either order
    BOOST_TEST(!tx.openReviewForPair("s/x", "s/2").has_value());  // decided
    BOOST_TEST(tx.openReviewsOf("s/x").size() == 4u);
    BOOST_TEST(!tx.review(999999).has_value());
    return {};
  }));
}

// The open item of a pair is the oldest open one of either direction (the query looks up each
// direction on its own since it stopped walking every open item).
BOOST_AUTO_TEST_CASE(open_review_of_a_pair_is_the_oldest_of_either_direction) {
  auto store = freshStore();
  BOOST_REQUIRE(store->transaction([&](MpiTx& tx) -> Result<void> {
    auto insert = [&](const std::string& source, const std::string& candidate) {
      ReviewItem r;
      r.sourceId = source;
      r.candidateId = candidate;
      r.contributions = "{}";
      return tx.insertReview(r);
    };
    for (int i = 0; i < 20; ++i) insert("s/other" + std::to_string(i), "s/b");
    const int64_t ba = insert("s/b", "s/a");
    const int64_t ab = insert("s/a", "s/b");
    insert("s/a", "s/c");
    for (const auto& [x, y] : {std::pair{"s/a", "s/b"}, std::pair{"s/b", "s/a"}}) {
      auto found = tx.openReviewForPair(x, y);
      BOOST_REQUIRE(found.has_value());
      BOOST_TEST(found->id == ba);
    }
    auto first = tx.review(ba);
    first->status = ReviewStatus::kMerged;
    tx.updateReview(*first);
    auto next = tx.openReviewForPair("s/a", "s/b");
    BOOST_REQUIRE(next.has_value());
    BOOST_TEST(next->id == ab);
    BOOST_TEST(next->candidateId == "s/b");
    BOOST_TEST(!tx.openReviewForPair("s/b", "s/c").has_value());
    return {};
  }));
}

BOOST_AUTO_TEST_CASE(failed_transaction_rolls_back) {
  auto store = freshStore();
  auto r = store->transaction([](MpiTx& tx) -> Result<void> {
    tx.putGolden({"g9", true, "", "{}", "{}", 1, 1});
    return fail(ErrorCode::kConflict, "changed my mind");
  });
  BOOST_REQUIRE(!r.has_value());
  BOOST_TEST((r.error().code == ErrorCode::kConflict));
  // A SQL error inside also rolls back and comes back as an Error, not an exception.
  auto bad = store->transaction([](MpiTx& tx) -> Result<void> {
    tx.putGolden({"g8", true, "", "{}", "{}", 1, 1});
    tx.putSource({"x", "s", "{}", "{}", 1, 1});
    tx.session() << "INSERT INTO mpi_no_such_table VALUES (1)";
    return {};
  });
  BOOST_REQUIRE(!bad.has_value());
  BOOST_REQUIRE(store->transaction([](MpiTx& tx) -> Result<void> {
    BOOST_TEST(!tx.golden("g9").has_value());
    BOOST_TEST(!tx.golden("g8").has_value());
    BOOST_TEST(!tx.source("x").has_value());
    return {};
  }));
}

BOOST_AUTO_TEST_CASE(deferred_commits_share_one_flush) {
  std::string url;
  auto store = freshStore(&url);
  const bool sqlite = backendName() == "sqlite";
  auto put = [&](const std::string& id, MpiStore::Durability d) {
    BOOST_REQUIRE(store->transaction(
        [&](MpiTx& tx) -> Result<void> {
          tx.putSource({id, "s", R"({"resourceType":"Patient"})", "{}", 1, 1});
          return {};
        },
        d));
  };
  const auto flushes = [&] { return store->logFlushes(); };
  auto before = flushes();
  put("s/1", MpiStore::Durability::kFlushed);  // a durable change flushes the log itself
  BOOST_TEST(flushes() == before + (sqlite ? 1 : 0));
  before = flushes();
  BOOST_REQUIRE(store->transaction([](MpiTx& tx) -> Result<void> {  // a read writes nothing
    BOOST_TEST(tx.source("s/1").has_value());
    return {};
  }));
  BOOST_TEST(flushes() == before);
  for (const char* id : {"s/2", "s/3", "s/4"}) put(id, MpiStore::Durability::kDeferred);
  BOOST_TEST(flushes() == before);  // committed, not flushed
  BOOST_REQUIRE(store->transaction([](MpiTx& tx) -> Result<void> {  // and visible at once
    BOOST_TEST(tx.source("s/4").has_value());
    return {};
  }));
  BOOST_REQUIRE(store->flush());
  BOOST_TEST(flushes() == before + (sqlite ? 1 : 0));  // one flush for the three
  BOOST_REQUIRE(store->flush());
  BOOST_TEST(flushes() == before + (sqlite ? 1 : 0));  // nothing left to flush
  // A durable change after a deferred one flushes both: flush() then has nothing to do.
  before = flushes();
  put("s/5", MpiStore::Durability::kDeferred);
  put("s/6", MpiStore::Durability::kFlushed);
  BOOST_REQUIRE(store->flush());
  BOOST_TEST(flushes() == before + (sqlite ? 1 : 0));
  // Everything is there after a reopen.
  store.reset();
  auto again = MpiStore::open(url);
  BOOST_REQUIRE(again.has_value());
  BOOST_REQUIRE((*again)->transaction([](MpiTx& tx) -> Result<void> {
    for (const char* id : {"s/1", "s/2", "s/3", "s/4", "s/5", "s/6"}) BOOST_TEST(tx.source(id).has_value(), id);
    return {};
  }));
}

// Deferred transactions share one SQLite transaction (the batch) until a flush: each joins it
// as a savepoint, so one that fails (an error returned, or a SQL error) rolls back alone and the
// others are committed together. Other connections see nothing of the batch before the flush.
BOOST_AUTO_TEST_CASE(deferred_transactions_share_a_batch_and_fail_alone) {
  std::string url;
  auto store = freshStore(&url);
  const bool sqlite = backendName() == "sqlite";
  auto put = [&](const std::string& id, std::uint64_t* batch) {
    return store->transaction(
        [&](MpiTx& tx) -> Result<void> {
          tx.putSource({id, "s", R"({"resourceType":"Patient"})", "{}", 1, 1});
          tx.appendAudit({0, 1, "t", "source.submit", id, "{}"});
          return {};
        },
        MpiStore::Durability::kDeferred, batch);
  };
  // SQLite: a batch keeps its savepoints' journal in memory (temp_store 2); the next transaction
  // that is not batched puts the setting back (0, the default: large sorts spill to disk).
  auto tempStore = [&](MpiStore::Durability d) {
    int value = -1;
    BOOST_REQUIRE(store->transaction(
        [&](MpiTx& tx) -> Result<void> {
          tx.session() << "PRAGMA temp_store", soci::into(value);
          return {};
        },
        d));
    return value;
  };
  std::uint64_t b1 = 0, b2 = 0, b3 = 0, b4 = 0;
  BOOST_REQUIRE(put("s/1", &b1));
  if (sqlite) BOOST_TEST(tempStore(MpiStore::Durability::kDeferred) == 2);
  auto refused = store->transaction(
      [&](MpiTx& tx) -> Result<void> {
        tx.putSource({"s/2", "s", "{}", "{}", 1, 1});
        return fail(ErrorCode::kConflict, "changed my mind");
      },
      MpiStore::Durability::kDeferred, &b2);
  BOOST_TEST(!refused.has_value());
  auto broken = store->transaction(
      [&](MpiTx& tx) -> Result<void> {
        tx.putSource({"s/3", "s", "{}", "{}", 1, 1});
        tx.session() << "INSERT INTO mpi_no_such_table VALUES (1)";
        return {};
      },
      MpiStore::Durability::kDeferred, &b3);
  BOOST_TEST(!broken.has_value());
  BOOST_REQUIRE(put("s/4", &b4));
  if (sqlite) {
    BOOST_TEST(b1 != 0u);
    BOOST_TEST((b2 == b1 && b3 == b1 && b4 == b1));  // one batch
    BOOST_TEST(!committedRow(url, "mpi_source_patients", "id", "s/1"));
    BOOST_TEST(!committedRow(url, "mpi_source_patients", "id", "s/4"));
  } else {
    BOOST_TEST((b1 == 0u && b4 == 0u));  // PostgreSQL: every transaction commits on its own
  }
  const auto flushes = store->logFlushes();
  BOOST_REQUIRE(store->flush());
  BOOST_TEST(store->logFlushes() == flushes + (sqlite ? 1 : 0));
  if (sqlite) BOOST_TEST(tempStore(MpiStore::Durability::kFlushed) == 0);
  BOOST_TEST(store->lostBatches() == 0u);
  BOOST_TEST(!store->batchLost(b1, b4));
  BOOST_REQUIRE(store->transaction([](MpiTx& tx) -> Result<void> {
    BOOST_TEST(tx.source("s/1").has_value());
    BOOST_TEST(!tx.source("s/2").has_value());
    BOOST_TEST(!tx.source("s/3").has_value());
    BOOST_TEST(tx.source("s/4").has_value());
    BOOST_TEST(tx.audit("s/1").size() == 1u);
    BOOST_TEST(tx.audit("s/4").size() == 1u);
    return {};
  }));
  if (sqlite) {
    BOOST_TEST(committedRow(url, "mpi_source_patients", "id", "s/1"));
    BOOST_TEST(committedRow(url, "mpi_source_patients", "id", "s/4"));
    BOOST_TEST(!committedRow(url, "mpi_source_patients", "id", "s/2"));
    // The next deferred transaction opens a new batch; a durable one commits it first.
    std::uint64_t b5 = 0;
    BOOST_REQUIRE(put("s/5", &b5));
    BOOST_TEST(b5 == b1 + 1);
    BOOST_REQUIRE(store->transaction([](MpiTx& tx) -> Result<void> {
      BOOST_TEST(tx.source("s/5").has_value());
      return {};
    }));
    BOOST_TEST(committedRow(url, "mpi_source_patients", "id", "s/5"));
    // A batch's first transaction runs without a savepoint: when it fails, the batch is rolled
    // back (nothing else was in it) and not counted as lost; the next one opens a new batch.
    std::uint64_t b6 = 0, b7 = 0;
    auto firstFails = store->transaction(
        [&](MpiTx& tx) -> Result<void> {
          tx.putSource({"s/6", "s", "{}", "{}", 1, 1});
          tx.session() << "INSERT INTO mpi_no_such_table VALUES (1)";
          return {};
        },
        MpiStore::Durability::kDeferred, &b6);
    BOOST_TEST(!firstFails.has_value());
    BOOST_TEST(b6 == b5 + 1);
    BOOST_REQUIRE(put("s/7", &b7));
    BOOST_TEST(b7 == b6 + 1);
    BOOST_REQUIRE(store->flush());
    BOOST_TEST(store->lostBatches() == 0u);
    BOOST_TEST(!committedRow(url, "mpi_source_patients", "id", "s/6"));
    BOOST_TEST(committedRow(url, "mpi_source_patients", "id", "s/7"));
    BOOST_TEST(tempStore(MpiStore::Durability::kFlushed) == 0);
  }
}

// A batch whose COMMIT fails is rolled back whole and counted as lost; the store goes on with a
// new batch afterwards.
BOOST_AUTO_TEST_CASE(a_batch_that_fails_to_commit_is_lost_whole) {
  if (backendName() != "sqlite") return;  // batches are SQLite's
  static std::atomic<bool> refuse{false};
  std::string url;
  auto store = freshStore(&url);
  refuseCommitsWhile(*store, refuse);
  auto put = [&](const std::string& id, std::uint64_t* batch) {
    BOOST_REQUIRE(store->transaction(
        [&](MpiTx& tx) -> Result<void> {
          tx.putSource({id, "s", "{}", "{}", 1, 1});
          return {};
        },
        MpiStore::Durability::kDeferred, batch));
  };
  std::uint64_t b1 = 0, b2 = 0;
  put("s/1", &b1);
  put("s/2", &b2);
  refuse = true;
  auto flushed = store->flush();
  refuse = false;
  BOOST_REQUIRE(!flushed.has_value());
  BOOST_TEST(store->lostBatches() == 1u);
  BOOST_TEST(store->batchLost(b1, b2));
  BOOST_TEST(!store->batchLost(b2 + 1, b2 + 5));
  BOOST_REQUIRE(store->transaction([](MpiTx& tx) -> Result<void> {
    BOOST_TEST(!tx.source("s/1").has_value());
    BOOST_TEST(!tx.source("s/2").has_value());
    return {};
  }));
  std::uint64_t b3 = 0;
  put("s/3", &b3);
  BOOST_TEST(b3 > b2);
  BOOST_REQUIRE(store->flush());
  BOOST_TEST(committedRow(url, "mpi_source_patients", "id", "s/3"));
  BOOST_TEST(!committedRow(url, "mpi_source_patients", "id", "s/1"));
  BOOST_TEST(store->lostBatches() == 1u);
  // A durable transaction that finds the batch unable to commit still runs its own work.
  std::uint64_t b4 = 0;
  put("s/4", &b4);
  refuse = true;
  auto durable = store->transaction([](MpiTx& tx) -> Result<void> {
    refuse = false;  // the batch's COMMIT has failed; this transaction's own may go through
    BOOST_TEST(!tx.source("s/4").has_value());
    return {};
  });
  BOOST_TEST(durable.has_value());
  BOOST_TEST(store->batchLost(b4, b4));
  BOOST_TEST(store->lostBatches() == 2u);
}

BOOST_AUTO_TEST_CASE(merge_events_and_append_only_audit) {
  auto store = freshStore();
  int64_t mid = 0, aid = 0;
  BOOST_REQUIRE(store->transaction([&](MpiTx& tx) -> Result<void> {
    mid = tx.insertMerge({0, "g2", "g1", "ana", "dup", 7, R"({"goldens":[]})", 123, 0, ""});
    aid = tx.appendAudit({0, 123, "ana", "merge", "g1", R"({"from":"g2"})"});
    tx.appendAudit({0, 124, "ana", "merge.undo", "g1", "{}"});
    return {};
  }));
  BOOST_REQUIRE(store->transaction([&](MpiTx& tx) -> Result<void> {
    auto m = tx.merge(mid);
    BOOST_REQUIRE(m.has_value());
    BOOST_TEST(m->fromGolden == "g2");
    BOOST_TEST(m->reviewItemId == 7);
    BOOST_TEST(m->undoneAt == 0);
    m->undoneAt = 200;
    m->undoneBy = "bo";
    tx.updateMergeUndo(*m);
    BOOST_TEST(tx.merge(mid)->undoneBy == "bo");
    BOOST_TEST(!tx.merge(mid + 100).has_value());
    auto a = tx.audit("g1");
    BOOST_REQUIRE(a.size() == 2u);
    BOOST_TEST(a[0].id == aid);
    BOOST_TEST(a[0].action == "merge");
    BOOST_TEST(a[1].action == "merge.undo");
    return {};
  }));
  // The database refuses to change or delete audit rows.
  auto upd = store->transaction([&](MpiTx& tx) -> Result<void> {
    tx.session() << "UPDATE mpi_audit SET actor = 'mallory'";
    return {};
  });
  BOOST_TEST(!upd.has_value());
  auto del = store->transaction([&](MpiTx& tx) -> Result<void> {
    tx.session() << "DELETE FROM mpi_audit";
    return {};
  });
  BOOST_TEST(!del.has_value());
  BOOST_REQUIRE(store->transaction([&](MpiTx& tx) -> Result<void> {
    auto a = tx.audit("g1");
    BOOST_REQUIRE(a.size() == 2u);
    BOOST_TEST(a[0].actor == "ana");
    return {};
  }));
}

// The frequent statements are compiled once per session and re-executed: values must not leak
// from one call into the next, a rolled-back transaction must not spoil them, and a statement
// that stopped at its first row (LIMIT 1) must not keep the commit from happening.
BOOST_AUTO_TEST_CASE(compiled_statements_rerun_with_fresh_values) {
  std::string url;
  auto store = freshStore(&url);
  std::vector<int64_t> auditIds;
  for (int i = 0; i < 3; ++i) {
    const std::string id = "s/" + std::to_string(i);
    BOOST_REQUIRE(store->transaction([&](MpiTx& tx) -> Result<void> {
      tx.putSource({id, "s", "{\"n\":" + std::to_string(i) + "}", "{}", 10 + i, 20 + i});
      tx.putGolden({"g" + std::to_string(i), i % 2 == 0, i % 2 ? "g0" : "", "{}", "{}", i, i});
      tx.putLink({id, "g" + std::to_string(i), Decision::kMatch, LinkOrigin::kAuto, 0.5 + i,
                  double(i), "{}", "", "", i});
      auditIds.push_back(tx.appendAudit({0, i, "system", "source.submit", id, "{}"}));
      return {};
    }));
  }
  BOOST_TEST(auditIds[0] < auditIds[1]);
  BOOST_TEST(auditIds[1] < auditIds[2]);
  int64_t reviewId = 0;
  BOOST_REQUIRE(store->transaction([&](MpiTx& tx) -> Result<void> {
    auto s1 = tx.source("s/1");
    BOOST_REQUIRE(s1.has_value());
    BOOST_TEST(s1->resource == "{\"n\":1}");
    BOOST_TEST(s1->createdAt == 11);
    BOOST_TEST(!tx.source("s/9").has_value());  // not the previous row again
    BOOST_TEST(tx.source("s/2")->updatedAt == 22);
    BOOST_TEST(tx.golden("g0")->active);
    BOOST_TEST(!tx.golden("g1")->active);
    BOOST_TEST(tx.golden("g1")->replacedBy == "g0");
    BOOST_TEST(tx.golden("g2")->replacedBy == "");
    BOOST_TEST(!tx.golden("g9").has_value());
    BOOST_TEST(tx.linksOfGolden("g2").size() == 1u);
    BOOST_TEST(tx.linksOfGolden("g9").empty());
    BOOST_TEST(tx.linksOfSource("s/1")[0].score == 1.5);
    ReviewItem item;
    item.sourceId = "s/1";
    item.candidateId = "s/2";
    item.createdAt = 5;
    reviewId = tx.insertReview(item);
    return {};
  }));
  // A SQL error rolls back a transaction that used the compiled statements ...
  auto bad = store->transaction([](MpiTx& tx) -> Result<void> {
    tx.putSource({"s/x", "s", "{}", "{}", 1, 1});
    BOOST_TEST(tx.source("s/x").has_value());
    tx.session() << "INSERT INTO mpi_no_such_table VALUES (1)";
    return {};
  });
  BOOST_REQUIRE(!bad.has_value());
  // ... and they run again afterwards; the open-pair lookup stops at its first row, and the
  // write after it still commits.
  auto r = store->transaction([&](MpiTx& tx) -> Result<void> {
    BOOST_TEST(!tx.source("s/x").has_value());
    auto open = tx.openReviewForPair("s/2", "s/1");
    BOOST_REQUIRE(open.has_value());
    BOOST_TEST(open->id == reviewId);
    BOOST_TEST(!tx.openReviewForPair("s/0", "s/1").has_value());
    tx.putSource({"s/y", "s", "{}", "{}", 1, 1});
    ReviewItem decided = *open;
    decided.status = ReviewStatus::kNotDuplicate;
    decided.reviewer = "ana";
    decided.decidedAt = 9;
    tx.updateReview(decided);
    BOOST_TEST(tx.openReviewsOf("s/1").empty());
    return {};
  });
  BOOST_REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message));
  // Committed: another connection sees it.
  auto other = MpiStore::open(url);
  BOOST_REQUIRE(other.has_value());
  BOOST_REQUIRE((*other)->transaction([&](MpiTx& tx) -> Result<void> {
    BOOST_TEST(tx.source("s/y").has_value());
    auto item = tx.review(reviewId);
    BOOST_REQUIRE(item.has_value());
    BOOST_TEST((item->status == ReviewStatus::kNotDuplicate));
    BOOST_TEST(item->reviewer == "ana");
    return {};
  }));
}

BOOST_AUTO_TEST_CASE(members_of_a_golden_are_its_match_and_possible_match_sources) {
  auto store = freshStore();
  BOOST_REQUIRE(store->transaction([&](MpiTx& tx) -> Result<void> {
    for (const char* id : {"s/c", "s/a", "s/b", "s/d"}) tx.putSource({id, "s", "{}", "{}", 1, 2});
    tx.putLink({"s/c", "g1", Decision::kMatch, LinkOrigin::kAuto, 1, 1, "{}", "", "", 1});
    tx.putLink({"s/a", "g1", Decision::kPossibleMatch, LinkOrigin::kAuto, 1, 1, "{}", "", "", 1});
    tx.putLink({"s/b", "g1", Decision::kNoMatch, LinkOrigin::kManual, 1, 1, "{}", "r", "x", 1});
    tx.putLink({"s/d", "g2", Decision::kMatch, LinkOrigin::kAuto, 1, 1, "{}", "", "", 1});
    tx.putLink({"s/gone", "g1", Decision::kMatch, LinkOrigin::kAuto, 1, 1, "{}", "", "", 1});
    return {};
  }));
  BOOST_REQUIRE(store->transaction([&](MpiTx& tx) -> Result<void> {
    auto m = tx.membersOfGolden("g1");
    BOOST_REQUIRE(m.size() == 2u);  // not the NO_MATCH one, not the source without a row
    BOOST_TEST(m[0].id == "s/a");
    BOOST_TEST(m[1].id == "s/c");
    BOOST_TEST(m[1].updatedAt == 2);
    BOOST_TEST(tx.membersOfGolden("g2").size() == 1u);
    BOOST_TEST(tx.membersOfGolden("g3").empty());
    return {};
  }));
}

BOOST_AUTO_TEST_CASE(statements_are_compiled_again_after_the_tables_are_recreated) {
  auto store = freshStore();
  BOOST_REQUIRE(store->transaction([&](MpiTx& tx) -> Result<void> {
    tx.putSource({"s/1", "s", "{}", "{}", 1, 1});
    BOOST_TEST(tx.source("s/1").has_value());
    return {};
  }));
  BOOST_REQUIRE(store->resetForTests());
  auto r = store->transaction([&](MpiTx& tx) -> Result<void> {
    BOOST_TEST(!tx.source("s/1").has_value());
    tx.putSource({"s/2", "s", "{}", "{}", 1, 1});
    BOOST_TEST(tx.source("s/2").has_value());
    return {};
  });
  BOOST_REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message));
}

// PostgreSQL only: statements prepared on a connection the server closed are not reused after
// the reconnect (they would fail with "prepared statement ... does not exist").
BOOST_AUTO_TEST_CASE(statements_are_prepared_again_after_a_reconnect,
                     *boost::unit_test::precondition([](boost::unit_test::test_unit_id) {
                       return backendName() == "postgresql";
                     })) {
  std::string url;
  auto store = freshStore(&url);
  int pid = 0;
  BOOST_REQUIRE(store->transaction([&](MpiTx& tx) -> Result<void> {
    tx.putSource({"s/1", "s", "{}", "{}", 1, 1});
    BOOST_TEST(tx.source("s/1").has_value());
    tx.session() << "SELECT pg_backend_pid()", soci::into(pid);
    return {};
  }));
  auto killer = MpiStore::open(url);
  BOOST_REQUIRE(killer.has_value());
  BOOST_REQUIRE((*killer)->transaction([&](MpiTx& tx) -> Result<void> {
    tx.session() << "SELECT pg_terminate_backend(:p)", soci::use(pid);
    return {};
  }));
  // The first transaction may find the connection gone (kTransient); one of the next two
  // reconnects and must then run the compiled statements afresh.
  bool found = false;
  Result<void> last;
  for (int attempt = 0; attempt < 3 && !found; ++attempt) {
    last = store->transaction([&](MpiTx& tx) -> Result<void> {
      found = tx.source("s/1").has_value();
      tx.putSource({"s/2", "s", "{}", "{}", 2, 2});
      return {};
    });
    if (!last) BOOST_TEST((last.error().code == ErrorCode::kTransient));
  }
  BOOST_REQUIRE_MESSAGE(last.has_value(), (last ? std::string() : last.error().message));
  BOOST_TEST(found);
}

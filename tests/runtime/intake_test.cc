// IntakeBatcher's asynchronous submit on a real SQLite store: completions after the commit, each
// exactly once and inside the completion scope, with one committer and with several; refusals (queue full, stopped) answered at once on
// the caller's thread; the blocking submit on top of it; the pipeline's finishes in its commits.
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "engine/runtime/intake.h"

using namespace switchboard;
namespace fs = std::filesystem;

namespace {

struct StoreFixture {
  fs::path dir = fs::temp_directory_path() /
                 ("sb-intake-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
  std::unique_ptr<store::Store> store;

  StoreFixture() {
    fs::remove_all(dir);
    fs::create_directories(dir);
    auto s = store::openStore("sqlite:" + (dir / "t.db").string());
    BOOST_REQUIRE_MESSAGE(s.has_value(), "open store");
    store = std::move(*s);
  }
  ~StoreFixture() {
    store.reset();
    fs::remove_all(dir);
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

std::vector<store::NewMessage> messages(const std::vector<std::string>& keys) {
  std::vector<store::NewMessage> out;
  for (const auto& k : keys) {
    store::NewMessage m;
    m.channelId = "c";
    m.idempotencyKey = k;
    m.contentType = "application/json";
    m.body = "{\"id\":\"" + k + "\"}";
    out.push_back(std::move(m));
  }
  return out;
}

thread_local bool insideScope = false;

// Holds the completions of the batcher's first commit (its committer waits inside the completion
// scope) until release(), so later submits and finishes queue up behind it.
class HeldCompletions {
 public:
  explicit HeldCompletions(runtime::IntakeBatcher& batcher) {
    batcher.setCompletionScope([this](const std::function<void()>& completions) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!entered_) {
          entered_ = true;
          cv_.notify_all();
          cv_.wait(lock, [&] { return released_; });
        }
      }
      completions();
    });
  }
  void waitUntilHeld() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return entered_; });
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      released_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool entered_ = false, released_ = false;
};

void completionsRunOnceAfterTheCommitInsideTheScope(int committers) {
  StoreFixture f;
  std::atomic<int> committed{0};
  runtime::IntakeBatcher batcher(*f.store, 64, 10000, [&](int stored) { committed += stored; },
                                 committers);
  std::atomic<int> scopes{0};
  batcher.setCompletionScope([&](const std::function<void()>& completions) {
    ++scopes;
    insideScope = true;
    completions();
    insideScope = false;
  });
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::int64_t> ids;
  int calls = 0, outsideScope = 0, duplicates = 0;
  auto done = [&](runtime::IntakeBatcher::Outcomes r) {
    std::lock_guard<std::mutex> lock(mutex);
    ++calls;
    if (!insideScope) ++outsideScope;
    BOOST_REQUIRE(r.has_value());
    for (const auto& o : *r) {
      ids.push_back(o.messageId);
      duplicates += o.duplicate ? 1 : 0;
    }
    cv.notify_all();
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        std::string key = "k";  // built in steps: GCC 12 warns wrongly (-Wrestrict) on one chain
        key += std::to_string(t);
        key += '-';
        key += std::to_string(i);
        batcher.submitAsync(messages({key, "shared"}), done);
      }
    });
  }
  for (auto& t : threads) t.join();
  {
    std::unique_lock<std::mutex> lock(mutex);
    cv.wait(lock, [&] { return calls == 200; });
  }
  BOOST_TEST(ids.size() == 400u);
  BOOST_TEST(duplicates == 199);  // "shared" is stored once
  BOOST_TEST(outsideScope == 0);
  auto blocking = batcher.submit(messages({"sync", "shared"}));  // rides on the async path
  BOOST_REQUIRE(blocking.has_value());
  BOOST_TEST(!blocking->at(0).duplicate);
  BOOST_TEST(blocking->at(1).duplicate);
  batcher.stop();
  BOOST_TEST(scopes.load() == static_cast<int>(batcher.commits()));
  BOOST_TEST(committed.load() == 202);
  BOOST_TEST(batcher.pending() == 0);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(intake)

BOOST_AUTO_TEST_CASE(async_completions_run_once_after_the_commit_inside_the_scope) {
  completionsRunOnceAfterTheCommitInsideTheScope(1);
}

BOOST_AUTO_TEST_CASE(with_three_committers_too) { completionsRunOnceAfterTheCommitInsideTheScope(3); }

// With two committers a second commit completes while the first one's completions are still
// running (in the engine: while the first waits for its fsync). With one, the second would wait.
BOOST_AUTO_TEST_CASE(two_committers_keep_two_commits_in_flight) {
  StoreFixture f;
  runtime::IntakeBatcher batcher(*f.store, 64, 100, nullptr, 2);
  std::mutex mutex;
  std::condition_variable cv;
  int inside = 0;
  bool together = false;
  batcher.setCompletionScope([&](const std::function<void()>& completions) {
    std::unique_lock<std::mutex> lock(mutex);
    ++inside;
    if (inside == 2) together = true;
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return together; });
    lock.unlock();
    completions();
  });
  auto first = std::async(std::launch::async, [&] { return batcher.submit(messages({"a"})); });
  {
    std::unique_lock<std::mutex> lock(mutex);
    cv.wait(lock, [&] { return inside == 1; });
  }
  auto second = batcher.submit(messages({"b"}));
  auto firstOutcome = first.get();
  BOOST_REQUIRE(second.has_value());
  BOOST_REQUIRE(firstOutcome.has_value());
  BOOST_TEST(together);  // the second commit's completions ran while the first's were held
  BOOST_TEST(firstOutcome->at(0).messageId != second->at(0).messageId);
}

BOOST_AUTO_TEST_CASE(a_full_queue_and_a_stopped_batcher_refuse_at_once_on_the_callers_thread) {
  StoreFixture f;
  runtime::IntakeBatcher batcher(*f.store, 64, 3, nullptr);
  // The first commit's completions wait for the test, so later submits stay pending.
  HeldCompletions hold(batcher);
  std::atomic<int> ok{0};
  auto count = [&](runtime::IntakeBatcher::Outcomes r) { ok += r.has_value() ? 1 : 0; };
  batcher.submitAsync(messages({"a"}), count);
  hold.waitUntilHeld();
  batcher.submitAsync(messages({"b", "c"}), count);  // 3 pending: still within the limit
  const auto caller = std::this_thread::get_id();
  std::optional<Error> refused;
  batcher.submitAsync(messages({"d"}), [&](runtime::IntakeBatcher::Outcomes r) {
    BOOST_TEST((std::this_thread::get_id() == caller));
    if (!r) refused = r.error();
  });
  BOOST_REQUIRE(refused.has_value());
  BOOST_TEST((refused->code == ErrorCode::kThrottled));
  hold.release();
  batcher.stop();
  BOOST_TEST(ok.load() == 2);
  refused.reset();
  batcher.submitAsync(messages({"f"}), [&](runtime::IntakeBatcher::Outcomes r) {
    if (!r) refused = r.error();
  });
  BOOST_REQUIRE(refused.has_value());
  BOOST_TEST((refused->code == ErrorCode::kException));
}

BOOST_AUTO_TEST_SUITE_END()

// The pipeline's finishes ride in the committer's transactions: alone when no intake waits, with
// the next intake batch when one does (here: queued behind a commit whose completions are held),
// and straight on the store once the batcher has stopped. Each finish gets its own per-item
// results, a message not leased to its owner refused alone.
BOOST_AUTO_TEST_CASE(finishes_commit_in_the_committers_transactions_and_after_stop_on_the_store) {
  StoreFixture f;
  runtime::IntakeBatcher batcher(*f.store, 64, 100, nullptr);
  auto first = batcher.submit(messages({"a", "b", "c"}));
  BOOST_REQUIRE(first.has_value());
  BOOST_REQUIRE_EQUAL(f.store->claimMessages("w", 2, 1000, 60000)->size(), 2u);  // a and b
  auto processed = [] {
    store::ProcessOutcome o;
    o.status = "filtered";
    return o;
  };
  std::vector<store::Store::FinishItem> items{{first->at(0).messageId, processed()},
                                              {first->at(2).messageId, processed()}};
  auto alone = batcher.finish("w", items, 1000);
  BOOST_REQUIRE(alone.has_value());
  BOOST_REQUIRE_EQUAL(alone->size(), 2u);
  BOOST_TEST(alone->at(0).has_value());
  BOOST_TEST(!alone->at(1).has_value());  // c is not w's
  BOOST_TEST(f.store->getMessage(first->at(0).messageId)->message.status == "filtered");

  // Hold the next commit's completions; a submit and a finish queue up behind it.
  HeldCompletions hold(batcher);
  std::promise<runtime::IntakeBatcher::Outcomes> held;
  batcher.submitAsync(messages({"d"}), [&](runtime::IntakeBatcher::Outcomes r) { held.set_value(std::move(r)); });
  hold.waitUntilHeld();
  std::promise<runtime::IntakeBatcher::Outcomes> queued;
  batcher.submitAsync(messages({"e"}), [&](runtime::IntakeBatcher::Outcomes r) { queued.set_value(std::move(r)); });
  std::vector<store::Store::FinishItem> second{{first->at(1).messageId, processed()}};
  auto finishing = std::async(std::launch::async, [&] { return batcher.finish("w", second, 1000); });
  hold.release();
  auto shared = finishing.get();
  BOOST_REQUIRE(shared.has_value());
  BOOST_TEST(shared->at(0).has_value());
  BOOST_TEST(held.get_future().get().has_value());
  BOOST_TEST(queued.get_future().get().has_value());
  BOOST_TEST(f.store->getMessage(first->at(1).messageId)->message.status == "filtered");

  batcher.stop();
  BOOST_REQUIRE_EQUAL(f.store->claimMessages("w2", 10, 1000, 60000)->size(), 3u);  // c, d and e
  auto late = batcher.finish("w", {{first->at(2).messageId, processed()}}, 1000);
  BOOST_REQUIRE(late.has_value());
  BOOST_TEST(!late->at(0).has_value());  // c is w2's: refused by the store itself
  auto own = batcher.finish("w2", {{first->at(2).messageId, processed()}}, 1000);
  BOOST_REQUIRE(own.has_value());
  BOOST_TEST(own->at(0).has_value());
}

// The commit window (intake.commit_window_ms): an idle batcher, and a lone sender that waits for
// each answer, commit at once; once a batch carried several submits (senders at once), a commit
// waits for its oldest to be a window old, so that those that keep coming share it. A full batch
// and stop() end the wait early (next case). The windows here are far longer than any commit, so
// a wait that should not happen shows as a timeout.
BOOST_AUTO_TEST_CASE(a_commit_window_gathers_messages_that_keep_coming_and_idle_commits_at_once) {
  StoreFixture f;
  {
    // Idle, then a lone sender that sends each message after the last one's answer.
    runtime::IntakeBatcher lone(*f.store, 64, 100, nullptr);
    lone.setCommitWindow(std::chrono::seconds(4));
    for (const char* k : {"idle", "seq1", "seq2"}) {
      BOOST_REQUIRE_MESSAGE(lone.submit(messages({k}), std::chrono::milliseconds(3000)).has_value(),
                            std::string(k) + " waited for the window");
    }
  }
  runtime::IntakeBatcher batcher(*f.store, 64, 100, nullptr);
  batcher.setCommitWindow(std::chrono::seconds(4));
  HeldCompletions hold(batcher);
  std::mutex mutex;
  std::condition_variable cv;
  int answered = 0;
  auto count = [&](runtime::IntakeBatcher::Outcomes r) {
    BOOST_CHECK(r.has_value());
    std::lock_guard<std::mutex> lock(mutex);
    ++answered;
    cv.notify_all();
  };
  auto waitFor = [&](int n) {
    std::unique_lock<std::mutex> lock(mutex);
    return cv.wait_for(lock, std::chrono::seconds(30), [&] { return answered == n; });
  };
  batcher.submitAsync(messages({"first"}), count);
  hold.waitUntilHeld();  // committed at once; its answer held while two senders queue up
  batcher.submitAsync(messages({"a"}), count);
  batcher.submitAsync(messages({"b"}), count);
  hold.release();
  BOOST_REQUIRE(waitFor(3));  // a and b together, at once: the batch before carried one submit
  // Five submits right after a batch of two: one commit, once the first is four seconds old.
  for (int i = 0; i < 5; ++i) batcher.submitAsync(messages({"k" + std::to_string(i)}), count);
  BOOST_REQUIRE(waitFor(8));
  batcher.stop();  // commits() counts after the completions: read once the committer is gone
  BOOST_TEST(batcher.commits() == 3u);  // first; a and b; k0 to k4
}

namespace {
// Makes `batcher` (with HeldCompletions set on it) commit "<prefix>0" alone, then
// "<prefix>1" and "<prefix>2" together: its last batch carried several submits, so its commit
// window is open. Returns once all three are answered.
void openTheWindow(runtime::IntakeBatcher& batcher, HeldCompletions& hold,
                   const std::string& prefix) {
  std::vector<std::future<runtime::IntakeBatcher::Outcomes>> answers;
  auto submit = [&](const std::string& key) {
    auto p = std::make_shared<std::promise<runtime::IntakeBatcher::Outcomes>>();
    answers.push_back(p->get_future());
    batcher.submitAsync(messages({key}),
                        [p](runtime::IntakeBatcher::Outcomes r) { p->set_value(std::move(r)); });
  };
  submit(prefix + "0");
  hold.waitUntilHeld();
  submit(prefix + "1");
  submit(prefix + "2");
  hold.release();
  for (auto& a : answers) {
    BOOST_REQUIRE(a.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    BOOST_REQUIRE(a.get().has_value());
  }
}
}  // namespace

BOOST_AUTO_TEST_CASE(a_full_batch_and_stop_end_the_commit_window_early_and_a_finish_shares_it) {
  StoreFixture f;
  runtime::IntakeBatcher batcher(*f.store, 3, 100, nullptr);
  batcher.setCommitWindow(std::chrono::seconds(600));
  HeldCompletions hold(batcher);
  openTheWindow(batcher, hold, "a");
  // Three single messages fill a batch of three: committed without waiting ten minutes.
  std::vector<std::future<runtime::IntakeBatcher::Outcomes>> full;
  for (const char* k : {"b", "c", "d"}) {
    full.push_back(std::async(std::launch::async, [&batcher, k] {
      return batcher.submit(messages({k}), std::chrono::seconds(30));
    }));
  }
  for (auto& r : full) BOOST_TEST(r.get().has_value());
  // stop() commits what waits for its window.
  std::promise<runtime::IntakeBatcher::Outcomes> last;
  batcher.submitAsync(messages({"e"}),
                      [&](runtime::IntakeBatcher::Outcomes r) { last.set_value(std::move(r)); });
  auto stopping = std::async(std::launch::async, [&] { batcher.stop(); });
  BOOST_REQUIRE(stopping.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  BOOST_TEST(last.get_future().get().has_value());
  BOOST_TEST(batcher.commits() == 4u);  // a0; a1 and a2; b, c and d; e

  // A finish waits in the window too, and shares the commit of the message queued before it.
  runtime::IntakeBatcher shared(*f.store, 64, 100, nullptr);
  shared.setCommitWindow(std::chrono::seconds(2));
  HeldCompletions holdShared(shared);
  openTheWindow(shared, holdShared, "g");
  auto claimed = f.store->claimMessages("w", 1, 1000, 60000);
  BOOST_REQUIRE(claimed.has_value() && claimed->size() == 1u);
  std::promise<runtime::IntakeBatcher::Outcomes> rode;
  shared.submitAsync(messages({"h"}),
                     [&](runtime::IntakeBatcher::Outcomes r) { rode.set_value(std::move(r)); });
  store::ProcessOutcome filtered;
  filtered.status = "filtered";
  auto finished = shared.finish("w", {{claimed->at(0).id, filtered}}, 1000);
  BOOST_REQUIRE(finished.has_value());
  BOOST_TEST(finished->at(0).has_value());
  auto rodeFuture = rode.get_future();
  BOOST_REQUIRE(rodeFuture.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  BOOST_TEST(rodeFuture.get().has_value());
  shared.stop();
  BOOST_TEST(shared.commits() == 3u);  // g0; g1 and g2; h with the finish
}

// Group commit for intake: callers hand their messages to submit() (blocking) or submitAsync()
// (completion), and a committer thread stores them together with whatever else arrived
// meanwhile, in one transaction (one fsync). Under load batches grow on their own; an idle engine
// commits at once. Several committers keep several commits in flight: while one waits for its
// fsync the next one writes (the store serialises the writes themselves), and the disk flushes
// overlapping requests together. Each caller is answered after its own commit is durable; answers
// of different commits may come in any order. The pipeline's finishes (finish()) ride in the same
// transactions, so one connection does nearly all writing and shared pages are written once.
// Thread-safety: submit(), submitAsync() and finish() are called concurrently from any thread. Completions
// run on a committer thread after the commit (or on the caller's thread when refused at once),
// outside the batcher's lock.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "engine/store/store.h"

namespace switchboard::runtime {

class IntakeBatcher {
 public:
  using Outcomes = Result<std::vector<store::IngestOutcome>>;
  using Completion = std::function<void(Outcomes)>;
  // Runs one commit's completions; lets the caller wrap them (e.g. one wake-up per batch).
  using CompletionScope = std::function<void(const std::function<void()>& completions)>;

  // `onCommitted` runs on a committer thread after each successful commit (wakes workers); with
  // `committers` > 1 concurrently.
  IntakeBatcher(store::Store& store, int maxBatch, int maxPending,
                std::function<void(int)> onCommitted, int committers = 1);
  ~IntakeBatcher();

  // Stores `messages` durably; returns their outcomes in order. kThrottled without storing when
  // more than maxPending messages already wait; kTransient when the store fails; kException once
  // stopped; kTimeout when `maxWait` passes first (the commit may still store them).
  Outcomes submit(std::vector<store::NewMessage> messages,
                  std::optional<std::chrono::milliseconds> maxWait = std::nullopt);
  // The same without waiting: `done` receives what submit() would return, exactly once; on the
  // caller's thread before returning when refused (throttled, stopped), else on the committer.
  void submitAsync(std::vector<store::NewMessage> messages, Completion done);
  // Set before the first submit.
  void setCompletionScope(CompletionScope scope) { scope_ = std::move(scope); }
  // Set before the first submit: when the committer last took a batch of several submits less
  // than `window` ago (messages keep coming from several senders at once), it waits until the
  // oldest of what is queued (messages, finishes, attempt records) is `window` old or the batch
  // of messages is full before it commits. Fewer, larger commits cost less per message; each
  // caller waits at most `window` longer. An idle engine, and a lone sender that waits for each
  // answer before it sends again (an MLLP peer), are committed at once: nothing would join.
  // 0 (the default): never waits.
  void setCommitWindow(std::chrono::milliseconds window) { window_ = window; }

  // Hands committed messages on without a read back (the engine's hand-off to its pipeline).
  // `lease` is asked before each commit of `count` messages for the lease to store its new
  // messages under (none: stored unclaimed); `handOver` runs after that commit, before its
  // completions, on the committer thread, with the commit's rows (theirs to move from), its
  // outcomes (null when the commit failed) and the lease it was asked for. Set before the first
  // submit.
  struct Handoff {
    std::function<std::optional<store::IntakeLease>(int count)> lease;
    std::function<void(std::vector<store::NewMessage>& rows,
                       const std::vector<store::IngestOutcome>* outcomes,
                       const std::optional<store::IntakeLease>& lease)>
        handOver;
  };
  void setHandoff(Handoff handoff) { handoff_ = std::move(handoff); }

  // Finishes `items` (leased to `owner`) in the committer's next transaction, together with the
  // intake batch it carries (Store::commit: the pages both write go to disk once); blocks until
  // that transaction has committed. Once stopping, finishes on the store directly.
  Result<std::vector<Result<void>>> finish(const std::string& owner,
                                           const std::vector<store::Store::FinishItem>& items,
                                           core::Millis nowMs);

  // A delivery worker's recordAttempts (claim null) or recordAttemptsAndClaim in the committer's
  // next transaction (Store::commit's `attempts`), flushed if `flush` or intake rides along;
  // blocks until that transaction has committed. `recorded` is empty when claim is null. Once
  // stopping, on the store directly.
  Result<store::Store::RecordedAndClaimed> record(
      const std::string& owner, const std::vector<store::Store::AttemptItem>& items, bool flush,
      const store::Store::ClaimRequest* claim);

  // Commits what is queued, then stops the committer. Later submits fail.
  void stop();

  int pending() const;
  std::uint64_t commits() const { return commits_; }

 private:
  struct Request {
    std::vector<store::NewMessage> messages;
    Completion done;
    std::chrono::steady_clock::time_point at = std::chrono::steady_clock::now();
  };
  struct FinishRequest {
    store::Store::FinishBatch batch;
    std::optional<Result<std::vector<Result<void>>>> result;  // set by the committer
    std::chrono::steady_clock::time_point at = std::chrono::steady_clock::now();
  };
  struct RecordRequest {
    store::Store::AttemptBatch batch;
    std::optional<Result<store::Store::RecordedAndClaimed>> result;  // set by the committer
    std::chrono::steady_clock::time_point at = std::chrono::steady_clock::now();
  };
  void run();

  store::Store& store_;
  const int maxBatch_;
  const int maxPending_;
  std::function<void(int)> onCommitted_;
  CompletionScope scope_;
  Handoff handoff_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;  // committer waits for work
  std::deque<std::unique_ptr<Request>> queue_;
  std::deque<FinishRequest*> finishQueue_;  // owned by the waiting finish() callers
  std::deque<RecordRequest*> recordQueue_;  // owned by the waiting record() callers
  std::condition_variable finished_;        // finish() callers wait for their result
  int pendingMessages_ = 0;
  int queuedMessages_ = 0;  // in queue_, not yet taken by a committer
  std::chrono::milliseconds window_{0};
  std::chrono::steady_clock::time_point lastTaken_{};  // a committer last took messages
  std::size_t lastTakenRequests_ = 0;  // submits in that batch: 1 for a lone sequential sender
  bool stopping_ = false;
  std::atomic<std::uint64_t> commits_{0};
  std::mutex joinMutex_;
  std::vector<std::thread> threads_;
};

}  // namespace switchboard::runtime

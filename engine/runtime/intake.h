// Group commit for intake: request threads hand their messages to submit(), which blocks until a
// single committer thread has stored them together with whatever else arrived meanwhile, in one
// transaction (one fsync). Under load batches grow on their own; an idle engine commits at once.
// Thread-safety: submit() is called concurrently from request threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/store/store.h"

namespace switchboard::runtime {

class IntakeBatcher {
 public:
  // `onCommitted` runs on the committer thread after each successful commit (wakes workers).
  IntakeBatcher(store::Store& store, int maxBatch, int maxPending, std::function<void(int)> onCommitted);
  ~IntakeBatcher();

  // Stores `messages` durably; returns their outcomes in order. kThrottled without storing when
  // more than maxPending messages already wait; kTransient when the store fails; kException once
  // stopped.
  Result<std::vector<store::IngestOutcome>> submit(std::vector<store::NewMessage> messages);

  // Commits what is queued, then stops the committer. Later submits fail.
  void stop();

  int pending() const;
  std::uint64_t commits() const { return commits_; }

 private:
  struct Request {
    std::vector<store::NewMessage> messages;
    Result<std::vector<store::IngestOutcome>> result;
    bool done = false;
  };
  void run();

  store::Store& store_;
  const int maxBatch_;
  const int maxPending_;
  std::function<void(int)> onCommitted_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;      // committer waits for work
  std::condition_variable finished_;  // submitters wait for their request
  std::deque<Request*> queue_;
  int pendingMessages_ = 0;
  bool stopping_ = false;
  std::atomic<std::uint64_t> commits_{0};
  std::thread thread_;
};

}  // namespace switchboard::runtime

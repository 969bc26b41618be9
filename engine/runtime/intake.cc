#include "engine/runtime/intake.h"

#include <algorithm>
#include <optional>

#include "engine/core/thread_name.h"

namespace switchboard::runtime {

IntakeBatcher::IntakeBatcher(store::Store& store, int maxBatch, int maxPending,
                             std::function<void(int)> onCommitted, int committers)
    : store_(store),
      maxBatch_(maxBatch),
      maxPending_(maxPending),
      onCommitted_(std::move(onCommitted)) {
  for (int i = 0; i < std::max(1, committers); ++i) {
    threads_.emplace_back([this] {
      core::nameThisThread("sb-commit");
      run();
    });
  }
}

IntakeBatcher::~IntakeBatcher() { stop(); }

int IntakeBatcher::pending() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pendingMessages_;
}

IntakeBatcher::Outcomes IntakeBatcher::submit(std::vector<store::NewMessage> messages,
                                              std::optional<std::chrono::milliseconds> maxWait) {
  // Shared with the completion, which may run after a caller that gave up waiting has returned.
  struct Waiter {
    std::mutex mutex;
    std::condition_variable done;
    std::optional<Outcomes> result;
  };
  auto waiter = std::make_shared<Waiter>();
  submitAsync(std::move(messages), [waiter](Outcomes result) {
    std::lock_guard<std::mutex> lock(waiter->mutex);
    waiter->result = std::move(result);
    waiter->done.notify_one();
  });
  std::unique_lock<std::mutex> lock(waiter->mutex);
  auto ready = [&] { return waiter->result.has_value(); };
  if (!maxWait) {
    waiter->done.wait(lock, ready);
  } else if (!waiter->done.wait_for(lock, *maxWait, ready)) {
    return fail(ErrorCode::kTimeout,
                "the commit took longer than " + std::to_string(maxWait->count()) + " ms");
  }
  return std::move(*waiter->result);
}

void IntakeBatcher::submitAsync(std::vector<store::NewMessage> messages, Completion done) {
  const int count = static_cast<int>(messages.size());
  auto request = std::make_unique<Request>(Request{std::move(messages), std::move(done)});
  Error refusal;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) {
      refusal = Error(ErrorCode::kException, "intake is shutting down");
    } else if (pendingMessages_ + count > maxPending_ && pendingMessages_ > 0) {
      refusal = Error(ErrorCode::kThrottled, "intake queue is full");
    } else {
      pendingMessages_ += count;
      queuedMessages_ += count;
      queue_.push_back(std::move(request));
      // With a commit window, a committer that found the queue non-empty is committing or waits
      // for the window to pass already: it needs waking only for the batch becoming full.
      if (window_.count() == 0 || queue_.size() == 1 || queuedMessages_ >= maxBatch_)
        wake_.notify_one();
      return;
    }
  }
  request->done(std::unexpected(std::move(refusal)));
}

Result<store::Store::RecordedAndClaimed> IntakeBatcher::record(
    const std::string& owner, const std::vector<store::Store::AttemptItem>& items, bool flush,
    const store::Store::ClaimRequest* claim) {
  RecordRequest request{{owner, &items, flush, claim}, std::nullopt};
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!stopping_) {
      recordQueue_.push_back(&request);
      wake_.notify_one();
      finished_.wait(lock, [&] { return request.result.has_value(); });
      return std::move(*request.result);
    }
  }
  if (claim != nullptr) return store_.recordAttemptsAndClaim(owner, items, flush, *claim);
  auto recorded = store_.recordAttempts(owner, items, flush);
  if (!recorded) return std::unexpected(recorded.error());
  return store::Store::RecordedAndClaimed{std::move(*recorded), {}};
}

Result<std::vector<Result<void>>> IntakeBatcher::finish(const std::string& owner,
                                                        const std::vector<store::Store::FinishItem>& items,
                                                        core::Millis nowMs) {
  FinishRequest request{{owner, &items, nowMs}, std::nullopt};
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!stopping_) {
      finishQueue_.push_back(&request);
      wake_.notify_one();
      finished_.wait(lock, [&] { return request.result.has_value(); });
      return std::move(*request.result);
    }
  }
  return store_.finishMessages(owner, items, nowMs);
}

void IntakeBatcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    wake_.notify_all();
  }
  std::lock_guard<std::mutex> joining(joinMutex_);  // stop() may be called from two threads
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void IntakeBatcher::run() {
  std::vector<std::unique_ptr<Request>> batch;
  std::vector<store::NewMessage> rows;
  std::vector<FinishRequest*> finishes;
  std::vector<store::Store::FinishBatch> finishBatches;
  std::vector<RecordRequest*> records;
  std::vector<store::Store::AttemptBatch> attemptBatches;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] {
        return stopping_ || !queue_.empty() || !finishQueue_.empty() || !recordQueue_.empty();
      });
      if (queue_.empty() && finishQueue_.empty() && recordQueue_.empty())
        return;  // stopping, drained
      if (window_.count() > 0 && !stopping_ && queuedMessages_ < maxBatch_ &&
          lastTakenRequests_ > 1 && std::chrono::steady_clock::now() - lastTaken_ < window_) {
        // The commit window: wait until the oldest of what waits is a window old.
        auto oldest = std::chrono::steady_clock::time_point::max();
        if (!queue_.empty()) oldest = std::min(oldest, queue_.front()->at);
        if (!finishQueue_.empty()) oldest = std::min(oldest, finishQueue_.front()->at);
        if (!recordQueue_.empty()) oldest = std::min(oldest, recordQueue_.front()->at);
        wake_.wait_until(lock, oldest + window_, [&] {
          return stopping_ || queuedMessages_ >= maxBatch_ ||
                 (queue_.empty() && finishQueue_.empty() && recordQueue_.empty());
        });
        if (queue_.empty() && finishQueue_.empty() && recordQueue_.empty())
          continue;  // taken by another committer
      }
      finishes.assign(finishQueue_.begin(), finishQueue_.end());
      finishQueue_.clear();
      records.assign(recordQueue_.begin(), recordQueue_.end());
      recordQueue_.clear();
      batch.clear();
      int taken = 0;
      while (
          !queue_.empty() &&
          (taken == 0 || taken + static_cast<int>(queue_.front()->messages.size()) <= maxBatch_)) {
        taken += static_cast<int>(queue_.front()->messages.size());
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      queuedMessages_ -= taken;
      if (taken > 0) {
        lastTaken_ = std::chrono::steady_clock::now();
        lastTakenRequests_ = batch.size();
      }
    }
    rows.clear();
    for (auto& r : batch) {
      for (auto& m : r->messages) rows.push_back(std::move(m));
    }
    std::optional<store::IntakeLease> lease;
    if (handoff_.lease && !rows.empty()) lease = handoff_.lease(static_cast<int>(rows.size()));
    finishBatches.clear();
    for (FinishRequest* f : finishes) finishBatches.push_back(f->batch);
    attemptBatches.clear();
    for (RecordRequest* r : records) attemptBatches.push_back(r->batch);
    auto committed = store_.commit(rows, lease, finishBatches, attemptBatches);
    if (!finishes.empty() || !records.empty()) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        for (std::size_t i = 0; i < finishes.size(); ++i) {
          if (committed) {
            finishes[i]->result = std::move(committed->finished[i]);
          } else {
            finishes[i]->result = std::unexpected(committed.error());
          }
        }
        for (std::size_t i = 0; i < records.size(); ++i) {
          if (committed) {
            records[i]->result = std::move(committed->recorded[i]);
          } else {
            records[i]->result = std::unexpected(committed.error());
          }
        }
      }
      finished_.notify_all();
      finishes.clear();
      records.clear();
    }
    if (rows.empty()) continue;  // finishes and attempt records only
    Outcomes outcomes = committed ? Outcomes(std::move(committed->ingested))
                                  : Outcomes(std::unexpected(committed.error()));
    // Before the answers: a message acknowledged is already the pipeline's to take.
    if (handoff_.handOver) handoff_.handOver(rows, outcomes ? &*outcomes : nullptr, lease);
    int stored = 0;
    int settled = 0;
    auto complete = [&] {
      std::size_t offset = 0;
      for (auto& r : batch) {
        std::size_t n = r->messages.size();
        settled += static_cast<int>(n);
        if (outcomes) {
          std::vector<store::IngestOutcome> mine(
              outcomes->begin() + static_cast<std::ptrdiff_t>(offset),
              outcomes->begin() + static_cast<std::ptrdiff_t>(offset + n));
          for (const auto& o : mine) stored += o.duplicate ? 0 : 1;
          r->done(std::move(mine));
        } else {
          r->done(std::unexpected(
              Error(ErrorCode::kTransient, "store unavailable: " + outcomes.error().message)));
        }
        offset += n;
      }
    };
    if (scope_) {
      scope_(complete);
    } else {
      complete();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      pendingMessages_ -= settled;
    }
    if (outcomes) {
      ++commits_;
      if (onCommitted_) onCommitted_(stored);
    }
  }
}

}  // namespace switchboard::runtime

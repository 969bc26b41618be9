#include "engine/runtime/intake.h"

namespace switchboard::runtime {

IntakeBatcher::IntakeBatcher(store::Store& store, int maxBatch, int maxPending,
                             std::function<void(int)> onCommitted)
    : store_(store),
      maxBatch_(maxBatch),
      maxPending_(maxPending),
      onCommitted_(std::move(onCommitted)),
      thread_([this] { run(); }) {}

IntakeBatcher::~IntakeBatcher() { stop(); }

int IntakeBatcher::pending() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pendingMessages_;
}

Result<std::vector<store::IngestOutcome>> IntakeBatcher::submit(std::vector<store::NewMessage> messages) {
  Request request;
  const int count = static_cast<int>(messages.size());
  request.messages = std::move(messages);
  std::unique_lock<std::mutex> lock(mutex_);
  if (stopping_) return fail(ErrorCode::kException, "intake is shutting down");
  if (pendingMessages_ + count > maxPending_ && pendingMessages_ > 0) {
    return fail(ErrorCode::kThrottled, "intake queue is full");
  }
  pendingMessages_ += count;
  queue_.push_back(&request);
  wake_.notify_one();
  finished_.wait(lock, [&] { return request.done; });
  return std::move(request.result);
}

void IntakeBatcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

void IntakeBatcher::run() {
  std::vector<Request*> batch;
  std::vector<store::NewMessage> rows;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      batch.clear();
      int taken = 0;
      while (!queue_.empty() && (taken == 0 || taken + static_cast<int>(queue_.front()->messages.size()) <= maxBatch_)) {
        taken += static_cast<int>(queue_.front()->messages.size());
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    rows.clear();
    for (Request* r : batch) {
      for (auto& m : r->messages) rows.push_back(std::move(m));
    }
    auto outcomes = store_.ingest(rows);
    int stored = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      std::size_t offset = 0;
      for (Request* r : batch) {
        std::size_t n = r->messages.size();
        if (outcomes) {
          r->result = std::vector<store::IngestOutcome>(outcomes->begin() + static_cast<std::ptrdiff_t>(offset),
                                                        outcomes->begin() + static_cast<std::ptrdiff_t>(offset + n));
          for (const auto& o : *r->result) stored += o.duplicate ? 0 : 1;
        } else {
          r->result = std::unexpected(Error(ErrorCode::kTransient, "store unavailable: " + outcomes.error().message));
        }
        offset += n;
        pendingMessages_ -= static_cast<int>(n);
        r->done = true;
      }
      finished_.notify_all();
    }
    if (outcomes) {
      ++commits_;
      if (onCommitted_) onCommitted_(stored);
    }
  }
}

}  // namespace switchboard::runtime

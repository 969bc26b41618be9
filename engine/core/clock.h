// Time and randomness come through these interfaces so tests can use fake time.
// Thread-safety: implementations must be safe to call from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <mutex>

#include "engine/core/message.h"

namespace switchboard::core {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Millis nowMs() const = 0;
};

class SystemClock final : public Clock {
 public:
  Millis nowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(Millis start = 1'700'000'000'000) : now_(start) {}
  Millis nowMs() const override { return now_.load(); }
  void advance(Millis ms) { now_ += ms; }
  void set(Millis ms) { now_ = ms; }

 private:
  std::atomic<Millis> now_;
};

// Uniform random numbers in [0, 1); seeded for tests.
class Random {
 public:
  virtual ~Random() = default;
  virtual double uniform() = 0;
};

class SeededRandom final : public Random {
 public:
  explicit SeededRandom(std::uint64_t seed = std::random_device{}()) : engine_(seed) {}
  double uniform() override {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::uniform_real_distribution<double>(0.0, 1.0)(engine_);
  }

 private:
  std::mutex mutex_;
  std::mt19937_64 engine_;
};

}  // namespace switchboard::core

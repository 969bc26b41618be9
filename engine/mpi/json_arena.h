// JsonArena: per-thread scratch memory for the rapidjson documents of one MPI call (a
// submission's parse, normalised form, survivorship and audit texts; the mpi stage's Bundle).
// Thread-safety: an arena and the documents on it belong to the thread that made them.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>

#include <rapidjson/document.h>

namespace switchboard::mpi {

// A default rapidjson Document takes a 64 KiB chunk from malloc and gives it back when it dies;
// a submission makes several, one after the other. Freed next to the top of the heap, those
// chunks let glibc shrink the heap (brk, or madvise in a thread's arena) and grow it again on
// the next call: system calls, page faults and TLB flushes on every core, which cost more than
// the JSON work itself (bench_mpi_stage). An arena instead hands out memory from a buffer kept
// by the thread for its life, and releases nothing until the outermost arena of the thread
// ends: arenas opened inside it (the service called from the stage) share its allocator.
// Documents made on an arena must not outlive it.
class JsonArena {
 public:
  using Allocator = rapidjson::MemoryPoolAllocator<rapidjson::CrtAllocator>;
  using Document = rapidjson::GenericDocument<rapidjson::UTF8<>, Allocator>;

  JsonArena() {
    if (current() != nullptr) return;  // nested: the outer arena's allocator
    auto& buffer = threadBuffer();
    if (!buffer) buffer = std::make_unique<char[]>(kBufferSize);
    own_.emplace(buffer.get(), kBufferSize);
    current() = &*own_;
  }
  ~JsonArena() {
    if (own_) current() = nullptr;  // own_ then frees the chunks taken beyond the buffer
  }
  JsonArena(const JsonArena&) = delete;
  JsonArena& operator=(const JsonArena&) = delete;

  Allocator& allocator() { return *current(); }
  // An empty document whose values and parse copies live on the arena.
  Document document() { return Document(current()); }

 private:
  // Enough for a large Bundle and a submission's documents; beyond it the allocator takes
  // 64 KiB chunks from malloc as a default document would.
  static constexpr std::size_t kBufferSize = 512 * 1024;
  static Allocator*& current() {
    thread_local Allocator* allocator = nullptr;
    return allocator;
  }
  static std::unique_ptr<char[]>& threadBuffer() {
    thread_local std::unique_ptr<char[]> buffer;
    return buffer;
  }

  std::optional<Allocator> own_;
};

}  // namespace switchboard::mpi

// The in-place JSON reader of json_arena.h. Thread-safety: one arena per thread (thread_local).
#include "engine/fhir/json_arena.h"

#include <emmintrin.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace switchboard::fhir {

namespace {

using Pool = rapidjson::MemoryPoolAllocator<>;

// The buffer the document builder's value stack lives in, kept by the thread's arena (which
// owns it): rapidjson frees a document's stack after every parse, so a plain allocator would cost
// an allocation per read. Plain pointers, so that they outlive the arena at thread exit.
constexpr std::size_t kStackBytes = 16 * 1024;
thread_local char* tStack = nullptr;  // kStackBytes long

// A rapidjson stack allocator that hands out the thread's kept buffer and the heap beyond it.
struct KeptStackAllocator {
  static const bool kNeedFree = true;
  void* Malloc(std::size_t n) { return Realloc(nullptr, 0, n); }
  void* Realloc(void* p, std::size_t old, std::size_t n) {
    if (!p) return n <= kStackBytes && tStack ? tStack : std::malloc(n);
    if (p != tStack) return std::realloc(p, n);
    if (n <= kStackBytes) return p;
    void* grown = std::malloc(n);
    if (grown) std::memcpy(grown, p, old);
    return grown;
  }
  static void Free(void* p) {
    if (p != tStack) std::free(p);
  }
};

// Builds values with the handler functions of a rapidjson document (a friend of its values)
// whose stack is the thread's kept buffer.
using Builder = rapidjson::GenericDocument<rapidjson::UTF8<>, Pool, KeptStackAllocator>;

constexpr std::size_t kPoolBytes = 64 * 1024;
constexpr std::size_t kKeepLimit = 1024 * 1024;  // larger buffers are dropped after a read
constexpr std::size_t kPadding = 16;             // the string scan reads 16 bytes at a time

// Reads a strict subset of JSON in place, driving the builder's handler; false when it declines.
// (Every declined text is left to fhirpath::parseResource(), so declining is always safe.)
class Reader {
 public:
  Reader(char* begin, char* end, Builder& builder) : p_(begin), end_(end), b_(builder) {}

  bool operator()(Builder&) {
    if (!value(0)) return false;
    blanks();
    return p_ == end_;
  }

 private:
  static constexpr int kMaxDepth = 256;

  // (p_ never passes end_, and *end_ is the first byte of the zero padding, so a test of *p_
  // needs no bound check before it: NUL is neither a blank nor any character looked for.)
  void blanks() {
    // Compact JSON (the mapping's output) has none: one test for the usual case.
    if (static_cast<unsigned char>(*p_) > ' ') return;
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  // The mask of the bytes of the 16 at `at` that end a plain run: quote, backslash, or a byte
  // below 0x20 (the padding's NUL among them).
  static unsigned specials(const char* at) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'),
                  control = _mm_set1_epi8(0x1F);
    const __m128i hit =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                     _mm_cmpeq_epi8(_mm_max_epu8(x, control), control));  // byte < 0x20
    return static_cast<unsigned>(_mm_movemask_epi8(hit));
  }

  // From just after the opening quote to just after the closing one; the text is unescaped in
  // place and NUL-terminated like rapidjson's in-situ strings. The usual string (no escape) is
  // one scan to its quote; the first byte that is no quote goes to escaped().
  bool string(const char*& text, rapidjson::SizeType& length) {
    char* const start = p_;
    unsigned mask;
    while ((mask = specials(p_)) == 0) p_ += 16;
    p_ += __builtin_ctz(mask);
    if (*p_ != '"') return escaped(start, text, length);
    *p_ = '\0';
    text = start;
    length = static_cast<rapidjson::SizeType>(p_ - start);
    ++p_;
    return true;
  }

  // The rest of a string from a backslash, a control byte or the end of the text at p_ (what
  // lies between `start` and p_ is plain).
  bool escaped(char* const start, const char*& text, rapidjson::SizeType& length) {
    char* out = nullptr;  // the write position once an escape shifted the text
    for (;;) {
      if (p_ >= end_) return false;
      if (*p_ == '"') break;
      if (*p_ != '\\' || end_ - p_ < 2) return false;  // a control character
      char c;
      switch (p_[1]) {
        case '"':
          c = '"';
          break;
        case '\\':
          c = '\\';
          break;
        case '/':
          c = '/';
          break;
        case 'b':
          c = '\b';
          break;
        case 'f':
          c = '\f';
          break;
        case 'n':
          c = '\n';
          break;
        case 'r':
          c = '\r';
          break;
        case 't':
          c = '\t';
          break;
        default:
          return false;  // \u (surrogates and all) is left to rapidjson
      }
      if (!out) out = p_;
      *out++ = c;
      p_ += 2;
      for (;;) {  // the plain run up to the next special byte, moved down
        const unsigned mask = specials(p_);
        const std::size_t run = mask ? static_cast<std::size_t>(__builtin_ctz(mask)) : 16;
        std::memmove(out, p_, run);
        out += run;
        p_ += run;
        if (mask) break;
      }
    }
    char* const stop = out ? out : p_;
    *stop = '\0';
    text = start;
    length = static_cast<rapidjson::SizeType>(stop - start);
    ++p_;
    return true;
  }

  // Blanks, then `c`, which is consumed; false (nothing consumed but blanks) when another
  // character or the end comes first.
  bool take(char c) {
    if (*p_ != c) {  // compact JSON: the character comes next
      blanks();
      if (*p_ != c) return false;  // at end_ the padding's NUL
    }
    ++p_;
    return true;
  }

  // A member's key and its colon.
  bool key() {
    if (!take('"')) return false;
    const char* text;
    rapidjson::SizeType length;
    if (!string(text, length)) return false;
    b_.Key(text, length, false);
    return take(':');
  }

  bool literal(const char* word, std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0) return false;
    p_ += n;
    return true;
  }

  // -?(0|[1-9][0-9]*) of at most 18 digits, as fhirpath's reader makes it (an Int64 value).
  bool integer() {
    const bool negative = *p_ == '-';
    if (negative) ++p_;
    const char* digits = p_;
    std::int64_t v = 0;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') v = v * 10 + (*p_++ - '0');
    const std::ptrdiff_t n = p_ - digits;
    if (n == 0 || n > 18 || (n > 1 && *digits == '0')) return false;
    if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;
    return b_.Int64(negative ? -v : v);
  }

  bool value(int depth) {
    blanks();
    if (p_ >= end_) return false;
    switch (*p_) {
      case '{':
      case '[': {
        if (depth >= kMaxDepth) return false;
        const bool object = *p_++ == '{';
        const char close = object ? '}' : ']';
        object ? b_.StartObject() : b_.StartArray();
        rapidjson::SizeType n = 0;
        if (!take(close)) {
          for (bool more = true; more; ++n) {
            if (object && !key()) return false;
            // Most members and items are strings: read here, without a call of value().
            blanks();
            if (*p_ == '"') {
              ++p_;
              const char* text;
              rapidjson::SizeType length;
              if (!string(text, length) || !b_.String(text, length, false)) return false;
            } else if (!value(depth + 1)) {
              return false;
            }
            more = take(',');
          }
          if (!take(close)) return false;
        }
        return object ? b_.EndObject(n) : b_.EndArray(n);
      }
      case '"': {
        ++p_;
        const char* text;
        rapidjson::SizeType length;
        return string(text, length) && b_.String(text, length, false);
      }
      case 't':
        return literal("true", 4) && b_.Bool(true);
      case 'f':
        return literal("false", 5) && b_.Bool(false);
      case 'n':
        return literal("null", 4) && b_.Null();
      default:
        return integer();
    }
  }

  char* p_;
  char* const end_;
  Builder& b_;
};

}  // namespace

// The thread's buffers: the text, the value pool's first block, and the documents on them.
struct ArenaDocument::Arena {
  Arena() : stack(std::make_unique<char[]>(kStackBytes)) { tStack = stack.get(); }
  ~Arena() {
    document.reset();
    builder.reset();
    tStack = nullptr;
  }
  std::unique_ptr<char[]> stack;  // the builder's value stack (tStack)
  KeptStackAllocator stackAllocator;
  std::vector<char> text;
  std::unique_ptr<char[]> poolBlock;
  std::size_t poolBytes = 0;
  std::optional<Pool> pool;
  std::optional<Builder> builder;
  std::optional<rapidjson::Document> document;
  bool inUse = false;

  void reset(std::size_t bytes) {
    document.reset();
    builder.reset();
    pool.reset();
    poolBlock = std::make_unique<char[]>(bytes);
    poolBytes = bytes;
    pool.emplace(poolBlock.get(), bytes);
    builder.emplace(&*pool, kStackBytes, &stackAllocator);
    document.emplace(&*pool);
  }
};

std::optional<ArenaDocument> ArenaDocument::read(std::string_view text) {
  // The same start as fhirpath::parseResource(): a BOM and blanks (isspace) are skipped.
  std::size_t i = 0;
  if (text.starts_with("\xEF\xBB\xBF")) i = 3;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  if (i == text.size() || text[i] != '{') return std::nullopt;
  text.remove_prefix(i);

  static thread_local Arena arena;
  if (arena.inUse) return std::nullopt;
  if (!arena.pool) arena.reset(kPoolBytes);
  arena.text.resize(text.size() + kPadding);
  std::memcpy(arena.text.data(), text.data(), text.size());
  std::memset(arena.text.data() + text.size(), 0, kPadding);

  arena.pool->Clear();
  Reader reader(arena.text.data(), arena.text.data() + text.size(), *arena.builder);
  arena.builder->Populate(reader);
  if (arena.builder->IsNull()) {  // declined (a document root is never null here)
    arena.pool->Clear();
    if (arena.text.capacity() > kKeepLimit) std::vector<char>().swap(arena.text);
    return std::nullopt;
  }
  rapidjson::Value& root = *arena.document;
  root = static_cast<rapidjson::Value&>(*arena.builder);  // moves the tree
  arena.inUse = true;
  // Not owned: the arena outlives every ArenaDocument of its thread.
  return ArenaDocument(&arena, fhirpath::DocumentPtr(std::shared_ptr<void>(), &*arena.document));
}

ArenaDocument::ArenaDocument(Arena* arena, fhirpath::DocumentPtr document)
    : arena_(arena), document_(std::move(document)) {}

ArenaDocument::ArenaDocument(ArenaDocument&& other) noexcept
    : arena_(other.arena_), document_(std::move(other.document_)) {
  other.arena_ = nullptr;
}

ArenaDocument::~ArenaDocument() {
  if (!arena_) return;
  Arena& a = *arena_;
  a.document->SetNull();
  // A document that outgrew the pool's first block gets a bigger one next time (up to the
  // limit); oversized text buffers are dropped.
  const std::size_t used = a.pool->Capacity();
  a.pool->Clear();
  if (used > a.poolBytes && a.poolBytes < kKeepLimit)
    a.reset(std::min(kKeepLimit, std::max(used, 2 * a.poolBytes)));
  if (a.text.capacity() > kKeepLimit) std::vector<char>().swap(a.text);
  a.inUse = false;
}

}  // namespace switchboard::fhir

// The planned evaluator of mapping files: the same walk over the compiled template as the general
// one in mapping.cc, with every expression run as a compiled plan over RapidJSON (plan_expr.h),
// the input parsed and the output built in one per-thread arena, and no fhirpath::Node. When a
// plan declines, the whole input goes to the general evaluator, so the two give the same bytes.
// Thread-safety: see mapping.h; per-run state lives in PlanRun and the calling thread's arena.
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <memory_resource>
#include <span>
#include <type_traits>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <rapidjson/internal/dtoa.h>
#include <rapidjson/internal/ieee754.h>
#include <rapidjson/internal/itoa.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "engine/mapping/flow_input.h"
#include "engine/mapping/directives.h"
#include "engine/mapping/template.h"
#include "engine/mapping/uuid.h"

namespace switchboard::mapping {
namespace {

// The in-situ stream of parseInto(), with the end of its text: RapidJSON's reader then copies
// each run of plain string bytes by the scan below instead of byte by byte (without its SIMD
// build flags, which would change its templates for every stream type).
struct ArenaInsituStream : rapidjson::InsituStringStream {
  ArenaInsituStream(char* text, const char* end) : rapidjson::InsituStringStream(text), end(end) {}
  const char* end;  // the NUL after the text
};

// Copies `n` bytes to `dst`, which may overlap `src` from below (a string moved down in place):
// up to sixteen bytes without a call, as two overlapping words both read before either is
// written (or byte by byte, forwards), more by memmove.
[[gnu::always_inline]] inline void moveBytes(char* dst, const char* src, std::size_t n) {
  if (n >= 8 && n <= 16) {
    std::uint64_t a, b;
    std::memcpy(&a, src, 8);
    std::memcpy(&b, src + n - 8, 8);
    std::memcpy(dst, &a, 8);
    std::memcpy(dst + n - 8, &b, 8);
  } else if (n < 8) {
    for (std::size_t i = 0; i < n; ++i) dst[i] = src[i];
  } else {
    std::memmove(dst, src, n);
  }
}

}  // namespace
}  // namespace switchboard::mapping

namespace rapidjson {

template <>
struct StreamTraits<switchboard::mapping::ArenaInsituStream> {
  enum { copyOptimization = 1 };  // as for InsituStringStream
};

// Advances over (and, once the string has shrunk by an escape, moves down) the bytes a string
// holds before its first quote, backslash or control byte, exactly the bytes the reader's own
// loop would copy one at a time without encoding validation (bytes from 0x80 up are copied as
// they are); the reader then goes on from that byte as usual, so values, errors and their
// offsets stay the same. `is` and `os` are one stream (in-situ parsing).
template <>
template <>
inline void GenericReader<UTF8<>, UTF8<>, CrtAllocator>::ScanCopyUnescapedString<
    switchboard::mapping::ArenaInsituStream, switchboard::mapping::ArenaInsituStream>(
    switchboard::mapping::ArenaInsituStream& is, switchboard::mapping::ArenaInsituStream& os) {
  char* src = is.src_;
  char* dst = os.dst_;
  const char* const end = is.end;
  std::size_t n = 0;  // plain bytes found from src
#if defined(__SSE2__)
  for (;;) {
    if (end - (src + n) < 16) break;
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + n));
    // Unsigned v <= 0x1F: min(v, 0x1F) == v.
    const __m128i special =
        _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v),
                     _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                  _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
    const int mask = _mm_movemask_epi8(special);
    if (mask != 0) {
      n += static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
      goto found;
    }
    n += 16;
  }
#endif
  while (src + n < end) {
    const unsigned char c = static_cast<unsigned char>(src[n]);
    if (c < 0x20 || c == '"' || c == '\\') break;
    ++n;
  }
#if defined(__SSE2__)
found:
#endif
  if (dst != src && n != 0) switchboard::mapping::moveBytes(dst, src, n);  // moved down
  is.src_ = src + n;
  os.dst_ = dst + n;
}

// Whitespace between tokens (pretty-printed bodies), sixteen bytes at a time; compact text
// returns at its first byte. Stops at the same byte as the reader's own loop (the NUL after the
// text at the latest).
template <>
inline void SkipWhitespace<switchboard::mapping::ArenaInsituStream>(
    switchboard::mapping::ArenaInsituStream& is) {
  auto space = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
  char* p = is.src_;
  if (!space(*p)) return;
  ++p;
#if defined(__SSE2__)
  while (is.end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i blank = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))),
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\r')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\t'))));
    const unsigned other = static_cast<unsigned>(_mm_movemask_epi8(blank)) ^ 0xFFFFu;
    if (other != 0) {
      is.src_ = p + __builtin_ctz(other);
      return;
    }
    p += 16;
  }
#endif
  while (space(*p)) ++p;
  is.src_ = p;
}

}  // namespace rapidjson

namespace switchboard::mapping {

using namespace detail;  // NOLINT(google-build-using-namespace): the template types
using Pool = rapidjson::MemoryPoolAllocator<>;
using PoolDocument = rapidjson::GenericDocument<rapidjson::UTF8<>, Pool, Pool>;

// ------------------------------------------------------------------ JSON text

namespace {

// Appends text to a string through a raw cursor: room() once, then unchecked writes.
class TextOut {
 public:
  explicit TextOut(std::string& s) : s_(s) {
    s_.clear();
    grow(8192);
    p_ = s_.data();
  }
  void room(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) [[unlikely]]
      enlarge(n);
  }
  void put(char c) { *p_++ = c; }  // after room()
  [[gnu::always_inline]] void copy(const char* d, std::size_t n) {  // after room()
    moveBytes(p_, d, n);
    p_ += n;
  }
  [[gnu::always_inline]] void append(const char* d, std::size_t n) {
    room(n);
    copy(d, n);
  }
  // The cursor itself, for writers that fill the room they made (room()) and then move it.
  char* at() const { return p_; }
  void setAt(char* p) { p_ = p; }
  void finish() { s_.resize(static_cast<std::size_t>(p_ - s_.data())); }
  std::size_t pos() const { return static_cast<std::size_t>(p_ - s_.data()); }
  bool nonAscii = false;  // a string with bytes outside ASCII was written (writeString)
  void truncate(std::size_t at) { p_ = s_.data() + at; }
  void insert(std::size_t at, char c) {
    room(1);
    char* where = s_.data() + at;
    std::memmove(where + 1, where, static_cast<std::size_t>(p_ - where));
    *where = c;
    ++p_;
  }

 private:
  [[gnu::noinline]] void enlarge(std::size_t n) {
    const std::size_t used = static_cast<std::size_t>(p_ - s_.data());
    grow(std::max(s_.size() * 2, used + n));
    p_ = s_.data() + used;
  }
  // Room up to `size` bytes: the text written so far kept, the rest left as it is (every byte
  // is written before finish() keeps it).
  void grow(std::size_t size) {
    s_.resize_and_overwrite(size, [](char*, std::size_t n) { return n; });
    end_ = s_.data() + s_.size();
  }
  std::string& s_;
  char* p_;
  char* end_;
};

// Bytes a JSON string cannot hold as they are (quote, backslash, controls) and bytes outside
// ASCII (kept, but they call for the UTF-8 check).
constexpr std::array<bool, 256> kSpecialByte = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) t[static_cast<std::size_t>(c)] = c < 0x20 || c >= 0x80;
  t['"'] = t['\\'] = true;
  return t;
}();

// The position of the first special byte of s[i, n) by that table, or n: sixteen bytes at a time
// (SSE2), then eight, the last ones by an overlapping block (or one by one when the string is
// shorter than a block). May stop early at a plain byte (after an escaped one), never late.
std::size_t nextSpecial(const char* s, std::size_t i, std::size_t n) {
#if defined(__SSE2__)
  // Bytes below 0x20 and, compared signed, every byte from 0x80 up; quotes; backslashes.
  auto special16 = [](const char* p) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(
        _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                     _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))))));
  };
  if (n >= 16) {
    for (; i + 16 <= n; i += 16) {
      if (const unsigned mask = special16(s + i)) return i + __builtin_ctz(mask);
    }
    if (i == n) return n;
    // The last sixteen bytes, without those already seen.
    const unsigned mask = special16(s + n - 16) >> (i + 16 - n);
    return mask ? i + __builtin_ctz(mask) : n;
  }
#endif
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  // The high bit of each byte of `w` that may be special; the lowest one set is exact.
  auto special8 = [](const char* p) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    const std::uint64_t quote = w ^ (kOnes * '"'), slash = w ^ (kOnes * '\\');
    return (((w - kOnes * 0x20) & ~w) | ((quote - kOnes) & ~quote) | ((slash - kOnes) & ~slash) |
            w) &
           kHigh;
  };
  if (n >= 8) {
    for (; i + 8 <= n; i += 8) {
      if (const std::uint64_t bits = special8(s + i)) return i + __builtin_ctzll(bits) / 8;
    }
    if (i == n) return n;
    const std::uint64_t bits = special8(s + n - 8) >> (8 * (i + 8 - n));
    return bits ? i + __builtin_ctzll(bits) / 8 : n;
  }
  while (i < n && !kSpecialByte[static_cast<unsigned char>(s[i])]) ++i;
  return i;
}

// A JSON string, byte for byte as rapidjson::Writer (without validation) writes it: runs of
// plain bytes found by nextSpecial() and copied whole. Marks `out` when the string holds a byte
// outside ASCII, so that only such texts need the UTF-8 check. For any string (writeString()
// takes the plain ones itself).
[[gnu::noinline]] void writeStringEscaped(const char* s, std::size_t n, TextOut& out) {
  static const char kHex[] = "0123456789ABCDEF";
  out.put('"');
  std::size_t i = 0, run = 0;
  while ((i = nextSpecial(s, i, n)) < n) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      out.nonAscii = true;
      ++i;
      continue;
    }
    if (!kSpecialByte[c]) {  // a block's guess after an escaped byte
      ++i;
      continue;
    }
    out.copy(s + run, i - run);  // room for all of it was made above
    out.put('\\');
    switch (c) {
      case '"': out.put('"'); break;
      case '\\': out.put('\\'); break;
      case '\b': out.put('b'); break;
      case '\t': out.put('t'); break;
      case '\n': out.put('n'); break;
      case '\f': out.put('f'); break;
      case '\r': out.put('r'); break;
      default:
        out.put('u');
        out.put('0');
        out.put('0');
        out.put(kHex[c >> 4]);
        out.put(kHex[c & 15]);
    }
    run = ++i;
  }
  out.copy(s + run, n - run);
  out.put('"');
}

// Whether a word (eight or four bytes) holds a special byte (kSpecialByte): false exactly when
// none does (a borrow may mark bytes above a special one, never a word without one).
template <typename Word>
inline bool specialWord(Word w) {
  constexpr Word kOnes = static_cast<Word>(~Word{0}) / 0xFF, kHigh = kOnes * 0x80;
  const Word quote = w ^ (kOnes * '"'), slash = w ^ (kOnes * '\\');
  return ((((w - kOnes * 0x20) & ~w) | ((quote - kOnes) & ~quote) | ((slash - kOnes) & ~slash) |
           w) &
          kHigh) != 0;
}

// Writes `"s"` at `p` (room made) when the string's `n` bytes (from sizeof(Word) to twice that)
// are plain, checked and copied as two overlapping words; false, writing nothing that counts,
// otherwise.
template <typename Word>
[[gnu::always_inline]] inline bool putPlainWords(const char* s, std::size_t n, char* p) {
  Word a, b;
  std::memcpy(&a, s, sizeof a);
  std::memcpy(&b, s + n - sizeof b, sizeof b);
  if (specialWord(a) || specialWord(b)) return false;
  p[0] = '"';
  std::memcpy(p + 1, &a, sizeof a);
  std::memcpy(p + 1 + n - sizeof b, &b, sizeof b);
  p[n + 1] = '"';
  return true;
}

// writeString() for strings of more than sixteen bytes (room made): sixteen bytes at a time
// (SSE2), each block stored as it is checked; the first special byte sends the whole string to
// writeStringEscaped().
[[gnu::noinline]] void writeStringLong(const char* s, std::size_t n, TextOut& out) {
#if defined(__SSE2__)
  // Bytes below 0x20 and, compared signed, every byte from 0x80 up; quotes; backslashes.
  auto special16 = [](__m128i v) {
    return _mm_movemask_epi8(
        _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                     _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                  _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')))));
  };
  char* p = out.at();
  char* d = p + 1;
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
    if (special16(v) != 0) return writeStringEscaped(s, n, out);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), v);
  }
  if (i < n) {  // the last sixteen bytes, some of them stored already (the same bytes)
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + n - 16));
    if (special16(v) != 0) return writeStringEscaped(s, n, out);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + n - 16), v);
  }
  p[0] = '"';
  p[n + 1] = '"';
  out.setAt(p + n + 2);
#else
  writeStringEscaped(s, n, out);
#endif
}

// A JSON string as writeStringEscaped() writes it, for the strings of the output, most of them
// short and plain: up to sixteen bytes checked and copied as two overlapping words (or
// half-words, or bytes) in the caller's code, longer ones by writeStringLong(); a special byte
// sends the string to writeStringEscaped().
[[gnu::always_inline]] inline void writeString(const char* s, std::size_t n, TextOut& out) {
  out.room(2 + 6 * n);
  if (n > 16) return writeStringLong(s, n, out);
  char* p = out.at();
  bool plain;
  if (n >= 8) {
    plain = putPlainWords<std::uint64_t>(s, n, p);
  } else if (n >= 4) {
    plain = putPlainWords<std::uint32_t>(s, n, p);
  } else {
    plain = true;
    for (std::size_t i = 0; i < n; ++i)
      plain = plain && !kSpecialByte[static_cast<unsigned char>(s[i])];
    if (plain) {
      p[0] = '"';
      for (std::size_t i = 0; i < n; ++i) p[1 + i] = s[i];
      p[n + 1] = '"';
    }
  }
  if (plain) [[likely]] {
    out.setAt(p + n + 2);
    return;
  }
  writeStringEscaped(s, n, out);
}

// Compact JSON text of `v`, byte for byte what rapidjson::Writer (without validation) writes.
// False, after writing the same prefix as the Writer, for NaN and infinities.
bool writeJson(const JsonValue& v, TextOut& out) {
  char buf[32];
  switch (v.GetType()) {
    case rapidjson::kNullType:
      out.append("null", 4);
      return true;
    case rapidjson::kFalseType:
      out.append("false", 5);
      return true;
    case rapidjson::kTrueType:
      out.append("true", 4);
      return true;
    case rapidjson::kStringType:
      writeString(v.GetString(), v.GetStringLength(), out);
      return true;
    case rapidjson::kNumberType: {
      char* end;
      if (v.IsDouble()) {
        if (rapidjson::internal::Double(v.GetDouble()).IsNanOrInf()) return false;
        end = rapidjson::internal::dtoa(v.GetDouble(), buf, 324);
      } else if (v.IsInt()) {
        end = rapidjson::internal::i32toa(v.GetInt(), buf);
      } else if (v.IsUint()) {
        end = rapidjson::internal::u32toa(v.GetUint(), buf);
      } else if (v.IsInt64()) {
        end = rapidjson::internal::i64toa(v.GetInt64(), buf);
      } else {
        end = rapidjson::internal::u64toa(v.GetUint64(), buf);
      }
      out.append(buf, static_cast<std::size_t>(end - buf));
      return true;
    }
    case rapidjson::kObjectType: {
      out.room(1);
      out.put('{');
      bool first = true;
      for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
        if (!first) {
          out.room(1);
          out.put(',');
        }
        first = false;
        writeString(m->name.GetString(), m->name.GetStringLength(), out);
        out.room(1);
        out.put(':');
        if (!writeJson(m->value, out)) return false;
      }
      out.room(1);
      out.put('}');
      return true;
    }
    case rapidjson::kArrayType: {
      out.room(1);
      out.put('[');
      bool first = true;
      for (const auto& item : v.GetArray()) {
        if (!first) {
          out.room(1);
          out.put(',');
        }
        first = false;
        if (!writeJson(item, out)) return false;
      }
      out.room(1);
      out.put(']');
      return true;
    }
  }
  return false;
}

}  // namespace

// ------------------------------------------------------------------ compiling

namespace {

struct PlanCompiler {
  explicit PlanCompiler(Mapping::Impl& impl) : m(impl) {}
  Mapping::Impl& m;
  bool ok = true;
  // One plan per expression text: the same text reads the same variables everywhere.
  std::map<std::string, std::shared_ptr<Plan>, std::less<>> byText;
  std::vector<int> scopedSlots;  // bound by $let or $each somewhere

  const Plan* plan(const fhirpath::Expression& e) {
    if (auto it = byText.find(e.text()); it != byText.end()) return it->second.get();
    // HL7 v2 input is the model of hl7InputJson(): never a typed resource.
    auto p = Plan::compile(e, m.slots, m.planMemory.get(), &m.names, m.hl7Input);
    if (!p) {
      ok = false;
      return nullptr;
    }
    byText.emplace(e.text(), p);
    m.plans.push_back(p);
    return p.get();
  }
  // Numbers the plans whose value cannot change within a run (they read no variable a $let or
  // $each binds), so that a run computes each of them once.
  void numberMemos() {
    for (auto& [text, p] : byText) {
      bool scoped = false;
      for (int slot : scopedSlots) scoped = scoped || p->readsSlot(slot);
      if (!scoped) p->memo = m.memoCount++;
    }
  }
  // Text written into outputs as it is: whether it needs the UTF-8 check of the output.
  void noteRaw(std::string_view text) {
    for (char ch : text) m.rawNonAscii = m.rawNonAscii || static_cast<unsigned char>(ch) >= 0x80;
  }
  const Plan* plan(const std::optional<fhirpath::Expression>& e) {
    return e ? plan(*e) : nullptr;
  }
  void plan(std::vector<Piece>& pieces) {
    for (Piece& p : pieces) p.plan = plan(p.expr);
  }
  void plan(TNode* n) {
    if (!n) return;
    if (n->kind == TNode::Kind::kExpr) n->exprPlan = plan(n->expr);
    if (n->kind == TNode::Kind::kLiteral) {
      rapidjson::Document copy;
      copy.CopyFrom(*n->literal, copy.GetAllocator());
      if (!prune(copy)) {
        std::string text;
        TextOut out(text);
        if (!writeJson(copy, out)) ok = false;  // NaN: left to the general evaluator
        out.finish();
        n->literalJson = std::move(text);
        noteRaw(n->literalJson);
      }
      n->fixed = true;
    }
    for (Member& member : n->members) {
      TextOut out(member.keyJson);
      writeString(member.key.data(), member.key.size(), out);
      out.room(1);
      out.put(':');
      out.finish();
      noteRaw(member.keyJson);
    }
    plan(n->pieces);
    n->ifPlan = plan(n->ifExpr);
    n->eachPlan = plan(n->eachExpr);
    if (n->eachExpr) {
      n->asSlot = m.slots.id(n->asName);
      n->asIndexSlot = m.slots.id(n->asName + "Index");
      scopedSlots.push_back(n->asSlot);
      scopedSlots.push_back(n->asIndexSlot);
    }
    for (Member& member : n->members) plan(member.node.get());
    for (Member& let : n->lets) {
      let.slot = m.slots.id(let.key);
      scopedSlots.push_back(let.slot);
      plan(let.node.get());
    }
    for (TNodePtr& e : n->elements) plan(e.get());
    for (TNodePtr* c : {&n->value, &n->code, &n->system, &n->date, &n->time, &n->zone,
                        &n->addMinutes})
      plan(c->get());
    fix(*n);
  }
  // The text the planned writer would write for fixed parts, computed once: an array of fixed
  // elements, runs of members with fixed values, an object made only of those.
  static void fix(TNode& n) {
    if (n.kind == TNode::Kind::kArray) {
      std::string text;
      for (const TNodePtr& e : n.elements) {
        if (!e->fixed) return;
        if (e->literalJson.empty()) continue;
        text += text.empty() ? "[" : ",";
        text += e->literalJson;
      }
      if (!text.empty()) text += "]";
      n.literalJson = std::move(text);
      n.fixed = true;
      return;
    }
    if (n.kind != TNode::Kind::kObject) return;
    for (std::size_t i = 0; i < n.members.size();) {
      std::size_t j = i;
      std::string text;
      for (; j < n.members.size() && n.members[j].node->fixed; ++j) {
        const Member& member = n.members[j];
        if (member.node->literalJson.empty()) continue;
        if (!text.empty()) text += ",";
        text += member.keyJson;
        text += member.node->literalJson;
      }
      if (j == i) {
        ++i;
        continue;
      }
      n.members[i].run = j - i;
      n.members[i].runJson = std::move(text);
      i = j;
    }
    const bool plain = !n.ifExpr && !n.eachExpr && n.lets.empty() && !n.value;
    if (plain && (n.members.empty() || n.members[0].run == n.members.size())) {
      const std::string& inner = n.members.empty() ? std::string() : n.members[0].runJson;
      n.literalJson = inner.empty() ? std::string() : "{" + inner + "}";
      n.fixed = true;
    }
  }
};

// Lays the template out as the planned writer's program (detail::EmitStep), after fix().
struct ProgramBuilder {
  Mapping::Impl& m;

  std::uint32_t text(std::string_view s) {
    const auto at = static_cast<std::uint32_t>(m.programBytes.size());
    m.programBytes.append(s);
    return at;
  }
  std::uint32_t add(const TNode& n) {
    const auto at = static_cast<std::uint32_t>(m.program.size());
    m.program.emplace_back();
    fill(n, at);
    return at;
  }
  // Steps are filled by index: the arrays grow while a node's children are laid out.
  void fill(const TNode& n, std::uint32_t at) {
    EmitStep step;
    step.node = &n;
    if (n.fixed) {
      step.op = EmitStep::Op::kFixed;
      step.bytes = text(n.literalJson);
      step.size = static_cast<std::uint32_t>(n.literalJson.size());
    } else if (n.kind == TNode::Kind::kExpr) {
      step.op = EmitStep::Op::kExpr;
      step.plan = n.exprPlan;
    } else if (n.kind == TNode::Kind::kArray) {
      step.op = EmitStep::Op::kArray;
      step.first = static_cast<std::uint32_t>(m.program.size());
      step.count = static_cast<std::uint32_t>(n.elements.size());
      m.program.resize(m.program.size() + n.elements.size());  // the elements side by side
      for (std::uint32_t i = 0; i < step.count; ++i) fill(*n.elements[i], step.first + i);
    } else if (n.kind == TNode::Kind::kObject && n.value &&
               n.value->kind == TNode::Kind::kTranslate && n.lets.empty() && !n.ifExpr &&
               !n.eachExpr) {
      step.op = EmitStep::Op::kTranslate;
      step.node = n.value.get();
    } else if (n.kind == TNode::Kind::kObject) {
      step.op = EmitStep::Op::kObject;
      step.each = n.eachExpr.has_value();
      step.directives = !n.lets.empty() || n.ifExpr.has_value() || n.value != nullptr;
      std::uint32_t count = 0;
      for (std::size_t i = 0; i < n.members.size(); i += n.members[i].run > 0 ? n.members[i].run : 1)
        ++count;
      step.first = static_cast<std::uint32_t>(m.programMembers.size());
      step.count = count;
      m.programMembers.resize(m.programMembers.size() + count);  // the members side by side
      std::uint32_t k = step.first;
      for (std::size_t i = 0; i < n.members.size(); ++k) {
        const Member& member = n.members[i];
        MemberStep ms;
        if (member.run > 0) {
          ms.fixedRun = true;
          ms.bytes = text(member.runJson);
          ms.size = static_cast<std::uint32_t>(member.runJson.size());
          i += member.run;
        } else {
          ms.bytes = text(member.keyJson);
          ms.size = static_cast<std::uint32_t>(member.keyJson.size());
          ms.repeated = member.node->kind == TNode::Kind::kObject && member.node->eachExpr;
          ms.step = add(*member.node);
          if (m.program[ms.step].op == EmitStep::Op::kExpr) ms.plan = m.program[ms.step].plan;
          ++i;
        }
        m.programMembers[k] = ms;
      }
    }
    m.program[at] = step;
  }
};

}  // namespace

void Mapping::Impl::compilePlans() {
  planMemory = std::make_unique<std::pmr::monotonic_buffer_resource>(16384);
  PlanCompiler c(*this);
  keyPlan = c.plan(keyExpr);
  for (const auto& e : required) requiredPlans.push_back(c.plan(e));
  for (auto& a : assertions) a.plan = c.plan(a.that);
  for (auto& r : resources) {
    r.uuidPrefix = id + "/" + r.key + "/";
    r.ifPlan = c.plan(r.ifExpr);
    r.identityPlan = c.plan(r.identity);
    c.plan(r.resource.get());
    c.plan(r.ifNoneExist);
  }
  // The variables the evaluator itself reads or sets, referenced or not.
  slotInput = slots.id("input");
  slotSender = slots.id("sender");
  slotRef = slots.id("ref");
  slotId = slots.id("id");
  slotTimezone = slots.id("timezone");
  for (const char* name : kChannelVariables) channelSlots.push_back(slots.id(name));
  defaultVals.assign(slots.size(), {});
  hasDefault.assign(slots.size(), false);
  for (const auto& [name, slot] : slots.names()) {
    auto it = defaults.find(name);
    if (it == defaults.end()) continue;
    hasDefault[static_cast<std::size_t>(slot)] = true;
    for (const fhirpath::Node& n : it->second)
      defaultVals[static_cast<std::size_t>(slot)].push_back(planValue(n));
  }
  // The names in order, side by side, for the walk that pairs them with a run's variables.
  for (const auto& [name, slot] : slots.names()) {
    slotOrder.push_back({static_cast<std::uint32_t>(slotNameBytes.size()),
                         static_cast<std::uint32_t>(name.size()), slot});
    slotNameBytes += name;
  }
  planned = c.ok;
  if (planned) {
    c.numberMemos();
    ProgramBuilder b{*this};
    for (auto& r : resources) r.step = b.add(*r.resource);
  }
}

// ------------------------------------------------------------------ the per-thread arena

namespace {

// std::pmr over the run's RapidJSON pool: allocation is a pointer bump, nothing is freed before
// the run ends.
class PoolResource : public std::pmr::memory_resource {
 public:
  explicit PoolResource(Pool* pool) : pool_(pool) {}

 private:
  void* do_allocate(std::size_t bytes, std::size_t align) override {
    void* p = pool_->Malloc(bytes + (align > 8 ? align : 0) + (bytes == 0 ? 1 : 0));
    if (!p) throw std::bad_alloc();
    if (align > 8) {
      auto a = reinterpret_cast<std::uintptr_t>(p);
      p = reinterpret_cast<void*>((a + align - 1) & ~(static_cast<std::uintptr_t>(align) - 1));
    }
    return p;
  }
  void do_deallocate(void*, std::size_t, std::size_t) override {}
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
    return this == &o;
  }
  Pool* pool_;
};

// Memory a thread reuses from run to run: after the first runs, a run allocates nothing from
// the heap but its output string.
struct Arena {
  static constexpr std::size_t kBytes = 256 * 1024;
  std::unique_ptr<char[]> buffer{new char[kBytes]};
  Pool pool{buffer.get(), kBytes};
  PoolResource resource{&pool};
  std::string scratch;
  std::string name;  // each resource's uuid name
  bool busy = false;
};

// Takes the thread's arena for one run (or a private one if a run is already using it).
class ArenaLease {
 public:
  ArenaLease() {
    static thread_local Arena arena;
    if (arena.busy) {
      own_ = std::make_unique<Arena>();
      arena_ = own_.get();
    } else {
      arena_ = &arena;
    }
    arena_->busy = true;
    arena_->pool.Clear();
  }
  ~ArenaLease() {
    arena_->pool.Clear();
    arena_->busy = false;
  }
  Arena& operator*() const { return *arena_; }
  Arena* operator->() const { return arena_; }

 private:
  Arena* arena_;
  std::unique_ptr<Arena> own_;
};

// The JSON reader of fhirpath::parseJsonResource() (same number typing: integers as Int64 or
// Uint64, everything else as a double), into the arena.
struct NumberHandler {
  PoolDocument& d;
  bool Null() { return d.Null(); }
  bool Bool(bool b) { return d.Bool(b); }
  bool Int(int i) { return d.Int(i); }
  bool Uint(unsigned u) { return d.Uint(u); }
  bool Int64(std::int64_t i) { return d.Int64(i); }
  bool Uint64(std::uint64_t u) { return d.Uint64(u); }
  bool Double(double x) { return d.Double(x); }
  bool RawNumber(const char* s, rapidjson::SizeType len, bool) {
    char buf[64];
    std::string big;
    const char* text = buf;
    if (len < sizeof buf) {
      std::memcpy(buf, s, len);
      buf[len] = 0;
    } else {
      big.assign(s, len);
      text = big.c_str();
    }
    if (!std::memchr(text, '.', len) && !std::memchr(text, 'e', len) &&
        !std::memchr(text, 'E', len)) {
      errno = 0;
      char* end = nullptr;
      long long v = std::strtoll(text, &end, 10);
      if (errno == 0 && end && *end == 0) return d.Int64(v);
      errno = 0;
      unsigned long long u = std::strtoull(text, &end, 10);
      if (errno == 0 && end && *end == 0 && text[0] != '-') return d.Uint64(u);
    }
    return d.Double(std::strtod(text, nullptr));
  }
  bool String(const char* s, rapidjson::SizeType len, bool copy) { return d.String(s, len, copy); }
  bool StartObject() { return d.StartObject(); }
  bool Key(const char* s, rapidjson::SizeType len, bool copy) { return d.Key(s, len, copy); }
  bool EndObject(rapidjson::SizeType n) { return d.EndObject(n); }
  bool StartArray() { return d.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { return d.EndArray(n); }
};

// Parses a copy of `text` in place (strings decoded where they stand, nothing copied again),
// with the reader and the error offsets of a MemoryStream read: the same leading byte-order-mark
// bytes skipped, and a NUL read as the end of the text either way.
Result<const JsonValue*> parseInto(Arena& arena, std::string_view text) {
  void* mem = arena.pool.Malloc(sizeof(PoolDocument));
  auto* doc = new (mem) PoolDocument(&arena.pool, 1024, &arena.pool);  // freed with the pool
  char* copy = static_cast<char*>(arena.pool.Malloc(text.size() + 1));
  if (!text.empty()) std::memcpy(copy, text.data(), text.size());
  copy[text.size()] = 0;
  rapidjson::ParseResult result;
  auto generator = [&](PoolDocument& handler) {
    rapidjson::Reader reader;
    ArenaInsituStream is(copy, copy + text.size());
    // As EncodedInputStream<UTF8<>, MemoryStream> does (offsets still count from the start).
    for (int bom : {0xEF, 0xBB, 0xBF}) {
      if (static_cast<unsigned char>(is.Peek()) == bom) is.Take();
    }
    NumberHandler h{handler};
    result =
        reader.Parse<rapidjson::kParseNumbersAsStringsFlag | rapidjson::kParseInsituFlag>(is, h);
    return !result.IsError();
  };
  doc->Populate(generator);
  if (result.IsError()) {
    return std::unexpected(fhirpath::jsonParseError(result));
  }
  return static_cast<const JsonValue*>(doc);
}

// Whether `s` is UTF-8 as RapidJSON's validating writer judges it (its own decoder), with ASCII
// skipped eight bytes at a time.
bool validUtf8(std::string_view s) {
  struct Sink {
    void Put(char) {}
  } sink;
  std::size_t i = 0;
  while (i < s.size()) {
    if (i + 8 <= s.size()) {
      std::uint64_t word;
      std::memcpy(&word, s.data() + i, 8);
      if ((word & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    rapidjson::MemoryStream is(s.data() + i, s.size() - i);
    if (!rapidjson::UTF8<>::Validate(is, sink)) return false;
    i += is.Tell();
  }
  return true;
}

// ------------------------------------------------------------------ running

std::unexpected<Error> declinedError() {
  return std::unexpected(Error(ErrorCode::kNotSupported, "declined"));
}

using JsonVals = std::pmr::vector<JsonValue>;

// Sets slots for a scope and restores them when it ends.
class SlotScope {
 public:
  explicit SlotScope(std::vector<Slot>& slots) : slots_(slots) {}
  ~SlotScope() {
    for (auto it = more_.rbegin(); it != more_.rend(); ++it)
      slots_[static_cast<std::size_t>(it->first)] = it->second;
    for (std::size_t i = count_; i-- > 0;)
      slots_[static_cast<std::size_t>(first_[i].saved.first)] = first_[i].saved.second;
  }
  void set(int slot, Slot value) {
    std::pair<int, Slot> saved(slot, slots_[static_cast<std::size_t>(slot)]);
    if (count_ < std::size(first_))
      std::construct_at(&first_[count_++].saved, saved);
    else
      more_.push_back(saved);
    slots_[static_cast<std::size_t>(slot)] = value;
  }

 private:
  // Storage left unset until set() fills it: most scopes bind nothing, and zeroing the entries
  // on every object the template walk enters cost more than the rest of the scope.
  union Entry {
    Entry() {}
    std::pair<int, Slot> saved;
  };
  static_assert(std::is_trivially_destructible_v<std::pair<int, Slot>>);
  std::vector<Slot>& slots_;
  Entry first_[4];  // the first few saved without the heap
  std::size_t count_ = 0;
  std::vector<std::pair<int, Slot>> more_;
};


// A collection the run evaluated: a view into the arena, valid until the run ends (the arena
// frees nothing before then).
using Items = std::span<const Val>;

struct PlanRun {
  const Mapping::Impl& m;
  Arena& arena;
  std::vector<Slot> slots;
  Vals focus;
  PlanScope scope;
  bool declined = false;
  // Results of the plans numbered for memoising (Plan::memo), while the run-wide variables they
  // read stay as they are.
  struct Memo {
    const Val* items = nullptr;
    std::size_t size = 0;
    bool done = false;
  };
  Memo* memo = nullptr;

  PlanRun(const Mapping::Impl& impl, Arena& a)
      : m(impl), arena(a), slots(impl.slots.size()), focus(&a.resource) {
    scope.memory = &a.resource;
    scope.slots = &slots;
    scope.focus = &focus;
    const auto n = static_cast<std::size_t>(impl.memoCount);
    memo = static_cast<Memo*>(a.resource.allocate(sizeof(Memo) * (n ? n : 1), alignof(Memo)));
    forgetMemos();
  }
  void forgetMemos() { std::fill_n(memo, static_cast<std::size_t>(m.memoCount), Memo{}); }

  Pool& alloc() { return arena.pool; }
  std::unexpected<Error> decline() {
    declined = true;
    return declinedError();
  }
  Error error(ErrorCode code, const std::string& what, const std::string& location) const {
    return Error(code, "mapping " + m.id + ": " + what, location);
  }
  void set(int slot, const Val* items, std::size_t n) {
    slots[static_cast<std::size_t>(slot)] = Slot{items, n, true};
  }
  void setOne(int slot, const Val& v) {
    auto* p = static_cast<Val*>(arena.resource.allocate(sizeof(Val), alignof(Val)));
    *p = v;
    set(slot, p, 1);
  }
  // Keeps a collection for as long as the run.
  const Val* keep(const Vals& v) {
    if (v.empty()) return nullptr;
    auto* p = static_cast<Val*>(arena.resource.allocate(sizeof(Val) * v.size(), alignof(Val)));
    if (v.size() <= 2) {  // most results: copied without a call to memmove
      p[0] = v[0];
      if (v.size() == 2) p[1] = v[1];
    } else {
      std::copy(v.begin(), v.end(), p);
    }
    return p;
  }

  // A result kept for the run (most evaluations) without a call; evalFirst() otherwise.
  Result<Items> eval(const Plan* p) {
    if (p->memo >= 0) {
      const Memo& kept = memo[p->memo];
      if (kept.done) return Items(kept.items, kept.size);
    }
    return evalFirst(p);
  }
  [[gnu::noinline]] Result<Items> evalFirst(const Plan* p) {
    Memo* kept = p->memo >= 0 ? &memo[p->memo] : nullptr;
    if (const int v = p->variable(); v >= 0) {  // its items as they are, valid for the run
      const Slot& s = slots[static_cast<std::size_t>(v)];
      if (!s.defined) return decline();
      if (kept) *kept = Memo{s.items, s.size, true};
      return Items(s.items, s.size);
    }
    // The items are built in the arena, where they stay until the run ends.
    void* buffer = arena.pool.Malloc(2 * sizeof(Val));
    if (!buffer) throw std::bad_alloc();
    Vals out(&arena.resource, static_cast<Val*>(buffer), 2);
    if (!p->evaluate(scope, out)) return decline();
    const Val* items = out.data();
    if (kept) *kept = Memo{items, out.size(), true};
    return Items(items, out.size());
  }
  Result<std::optional<bool>> evalBool(const Plan* p) {
    auto items = eval(p);
    if (!items) return std::unexpected(items.error());
    std::optional<bool> b;
    if (!planBoolean(items->data(), items->size(), b)) return decline();
    return b;
  }
  Result<std::optional<std::string_view>> text(const Val& v) {
    std::optional<std::string_view> s;
    if (!planText(scope, v, s)) return decline();
    return s;
  }

  // One item as output JSON: 1 written to `out`, 0 vanishes, -1 the engine must decide.
  int itemToJson(const Val& v, JsonValue& out) {
    switch (v.kind) {
      case Val::Kind::kString:
        if (isBlank(v.string)) return 0;
        out.SetString(rapidjson::StringRef(v.string.data(),
                                           static_cast<rapidjson::SizeType>(v.string.size())));
        return 1;
      case Val::Kind::kBoolean:
        out.SetBool(v.boolean);
        return 1;
      case Val::Kind::kInteger:
        out.SetInt64(v.integer);
        return 1;
      case Val::Kind::kJson:
        out.CopyFrom(*v.json, alloc());
        return prune(out) ? 0 : 1;
      case Val::Kind::kOther:
        if (!v.node) return -1;
        fhirpath::toJson(*v.node, out, alloc());
        return prune(out) ? 0 : 1;
    }
    return -1;
  }

  Result<std::optional<std::string_view>> scalarText(const TNode& node);
  // `pointer` + `suffix` name the text in errors (joined only then).
  Result<std::optional<std::string_view>> evalText(const std::vector<Piece>& pieces,
                                                   std::string_view pointer, bool urlEncode,
                                                   std::string_view suffix = {});
  Result<void> evalMany(const TNode& node, JsonVals& vals);
  Result<void> evalObjectBody(const TNode& node, JsonVals& vals);
  Result<void> bindLets(const TNode& node, SlotScope& scope);
  // $each: %as = item i, %asIndex = i.
  void bindEachItem(const TNode& node, const Val* items, std::size_t i, SlotScope& scope) {
    scope.set(node.asSlot, Slot{items + i, 1, true});
    auto* index = static_cast<Val*>(arena.resource.allocate(sizeof(Val), alignof(Val)));
    *index = Val::intVal(static_cast<std::int64_t>(i));
    scope.set(node.asIndexSlot, Slot{index, 1, true});
  }
  Result<void> evalTranslate(const TNode& node, JsonVals& vals);
  Result<void> evalLocalInstant(const TNode& node, JsonVals& vals);
  Result<std::optional<std::string_view>> defaultZone();
  Result<MappingOutput> run(std::string_view input, const fhirpath::Environment& variables);

  // ---- the streaming writer: the values of a node written straight into the output text,
  // each preceded by a comma unless `first`; returns how many (0: the node vanished).
  bool badText = false;  // a value the JSON writer refuses (NaN): the whole output fails
  static void separate(TextOut& out, bool& first) {
    if (!first) {
      out.room(1);
      out.put(',');
    }
    first = false;
  }
  void writeValue(const JsonValue& v, TextOut& out, bool& first) {
    separate(out, first);
    if (!writeJson(v, out)) badText = true;
  }
  Result<int> emit(std::uint32_t step, TextOut& out, bool& first);  // m.program[step]
  Result<int> emitItems(const Plan* plan, TextOut& out, bool& first);
  Result<int> writeItems(Items items, TextOut& out, bool& first);
  Result<int> emitObjectBody(const EmitStep& step, TextOut& out, bool& first);
  Result<int> emitMembers(const EmitStep& step, TextOut& out, bool& first);
  Result<int> emitTranslate(const TNode& node, TextOut& out, bool& first);
};

Result<std::optional<std::string_view>> PlanRun::scalarText(const TNode& node) {
  if (node.kind == TNode::Kind::kExpr) {
    // The common case, one string or nothing, without building JSON values.
    auto items = eval(node.exprPlan);
    if (!items) return std::unexpected(items.error());
    const Val* only = nullptr;
    bool simple = true;
    for (const Val& item : *items) {
      if (item.kind != Val::Kind::kString) {
        simple = false;
        break;
      }
      if (isBlank(item.string)) continue;
      if (only) {
        simple = false;
        break;
      }
      only = &item;
    }
    if (simple) {
      if (!only) return std::optional<std::string_view>();
      return std::optional<std::string_view>(only->string);
    }
  }
  JsonVals vals(&arena.resource);
  if (auto r = evalMany(node, vals); !r) return std::unexpected(r.error());
  if (vals.empty()) return std::optional<std::string_view>();
  if (vals.size() > 1)
    return std::unexpected(
        error(ErrorCode::kInvalid,
              node.pointer + ": expected one value, got " + std::to_string(vals.size()),
              locationOf(&node)));
  const JsonValue& v = vals.front();
  if (v.IsString())
    return std::optional<std::string_view>(std::string_view(v.GetString(), v.GetStringLength()));
  if (v.IsInt64()) return std::optional<std::string_view>(scope.keep(std::to_string(v.GetInt64())));
  if (v.IsNumber())
    return std::optional<std::string_view>(
        scope.keep(fhirpath::Decimal::fromDouble(v.GetDouble()).toString()));
  if (v.IsBool()) return std::optional<std::string_view>(v.GetBool() ? "true" : "false");
  return std::unexpected(error(ErrorCode::kInvalid, node.pointer + ": expected a primitive value",
                               locationOf(&node)));
}

Result<std::optional<std::string_view>> PlanRun::evalText(const std::vector<Piece>& pieces,
                                                          std::string_view pointer, bool urlEncode,
                                                          std::string_view suffix) {
  auto where = [&] { return std::string(pointer).append(suffix); };
  std::string& text = arena.scratch;
  text.clear();
  for (const Piece& p : pieces) {
    if (!p.expr) {
      text += p.text;
      continue;
    }
    auto items = eval(p.plan);
    if (!items) return std::unexpected(items.error());
    if (items->empty()) return std::optional<std::string_view>();
    if (items->size() > 1) {
      return std::unexpected(error(ErrorCode::kInvalid,
                                   where() + ": " + quoteValue(p.text) + " yields " +
                                       std::to_string(items->size()) + " items inside text",
                                   p.text));
    }
    auto s = this->text(items->front());
    if (!s) return std::unexpected(s.error());
    if (!*s) {
      return std::unexpected(
          error(ErrorCode::kInvalid,
                where() + ": " + quoteValue(p.text) + " is not a primitive value", p.text));
    }
    if (isBlank(**s)) return std::optional<std::string_view>();
    if (urlEncode)
      percentEncode(**s, text);
    else
      text += **s;
  }
  if (isBlank(text)) return std::optional<std::string_view>();
  return std::optional<std::string_view>(scope.keep(text));
}

Result<void> PlanRun::evalMany(const TNode& node, JsonVals& vals) {
  auto& pool = alloc();
  switch (node.kind) {
    case TNode::Kind::kLiteral: {
      const JsonValue& lit = *node.literal;
      if (lit.IsNull()) return {};
      if (lit.IsString()) {
        if (isBlank(std::string_view(lit.GetString(), lit.GetStringLength()))) return {};
        vals.emplace_back(rapidjson::StringRef(lit.GetString(), lit.GetStringLength()));
        return {};
      }
      JsonValue v(lit, pool);
      if (!prune(v)) vals.push_back(std::move(v));
      return {};
    }
    case TNode::Kind::kExpr: {
      auto items = eval(node.exprPlan);
      if (!items) return std::unexpected(items.error());
      for (const Val& item : *items) {
        JsonValue v;
        int r = itemToJson(item, v);
        if (r < 0) return decline();
        if (r > 0) vals.push_back(std::move(v));
      }
      return {};
    }
    case TNode::Kind::kText: {
      auto s = evalText(node.pieces, node.pointer, false);
      if (!s) return std::unexpected(s.error());
      if (*s)
        vals.emplace_back(
            rapidjson::StringRef((*s)->data(), static_cast<rapidjson::SizeType>((*s)->size())));
      return {};
    }
    case TNode::Kind::kArray: {
      JsonVals items(&arena.resource);
      for (const auto& el : node.elements) {
        if (auto r = evalMany(*el, items); !r) return r;
      }
      if (items.empty()) return {};
      JsonValue a(rapidjson::kArrayType);
      a.Reserve(static_cast<rapidjson::SizeType>(items.size()), pool);
      for (auto& i : items) a.PushBack(std::move(i), pool);
      vals.push_back(std::move(a));
      return {};
    }
    case TNode::Kind::kObject: {
      if (!node.eachExpr) return evalObjectBody(node, vals);
      auto items = eval(node.eachPlan);
      if (!items) return std::unexpected(items.error());
      for (std::size_t i = 0; i < items->size(); ++i) {
        SlotScope scope(slots);
        bindEachItem(node, items->data(), i, scope);
        if (auto r = evalObjectBody(node, vals); !r) return r;
      }
      return {};
    }
    case TNode::Kind::kTranslate:
      return evalTranslate(node, vals);
    case TNode::Kind::kLocalInstant:
      return evalLocalInstant(node, vals);
    case TNode::Kind::kFromHl7Date:
    case TNode::Kind::kToHl7Date:
      return hl7DateDirective(*this, node, vals, alloc());
  }
  return {};
}

Result<void> PlanRun::bindLets(const TNode& node, SlotScope& scope) {
  for (const Member& let : node.lets) {
    if (let.node->kind == TNode::Kind::kExpr) {
      auto items = eval(let.node->exprPlan);
      if (!items) return std::unexpected(items.error());
      scope.set(let.slot, Slot{items->data(), items->size(), true});
      continue;
    }
    JsonVals parts(&arena.resource);
    if (auto r = evalMany(*let.node, parts); !r) return r;
    // As Environment::setVariable() takes JSON: arrays spread, strings, booleans and integers
    // become System values, other numbers decimals, objects elements.
    Vals value(&arena.resource);
    auto add = [&](const JsonValue& v) {
      if (v.IsNull()) return;
      if (v.IsString()) {
        value.push_back(Val::str(std::string_view(v.GetString(), v.GetStringLength())));
      } else if (v.IsBool()) {
        value.push_back(Val::boolVal(v.GetBool()));
      } else if (v.IsInt64()) {
        value.push_back(Val::intVal(v.GetInt64()));
      } else if (v.IsNumber()) {
        Val other;
        other.kind = Val::Kind::kOther;
        value.push_back(other);
      } else {
        value.push_back(*Val::fromJson(v));
      }
    };
    for (auto& part : parts) {
      // The parts live in the arena for the rest of the run.
      auto* kept = static_cast<JsonValue*>(alloc().Malloc(sizeof(JsonValue)));
      new (kept) JsonValue(std::move(part));
      if (kept->IsArray()) {
        for (const auto& item : kept->GetArray()) add(item);
      } else {
        add(*kept);
      }
    }
    scope.set(let.slot, Slot{keep(value), value.size(), true});
  }
  return {};
}

Result<void> PlanRun::evalObjectBody(const TNode& node, JsonVals& vals) {
  SlotScope scope(slots);
  if (!node.lets.empty()) {
    if (auto r = bindLets(node, scope); !r) return r;
  }
  if (node.ifExpr) {
    auto cond = evalBool(node.ifPlan);
    if (!cond) return std::unexpected(cond.error());
    if (!cond->value_or(false)) return {};
  }
  if (node.value) return evalMany(*node.value, vals);
  auto& pool = alloc();
  JsonValue obj(rapidjson::kObjectType);
  JsonVals parts(&arena.resource);
  for (const Member& member : node.members) {
    parts.clear();
    if (auto r = evalMany(*member.node, parts); !r) return r;
    if (parts.empty()) continue;
    const bool repeated = member.node->kind == TNode::Kind::kObject && member.node->eachExpr;
    JsonValue key(rapidjson::StringRef(member.key.data(),
                                       static_cast<rapidjson::SizeType>(member.key.size())));
    if (parts.size() == 1 && !repeated) {
      obj.AddMember(key, std::move(parts.front()), pool);
    } else {
      JsonValue a(rapidjson::kArrayType);
      a.Reserve(static_cast<rapidjson::SizeType>(parts.size()), pool);
      for (auto& p : parts) a.PushBack(std::move(p), pool);
      obj.AddMember(key, std::move(a), pool);
    }
  }
  if (!obj.ObjectEmpty()) vals.push_back(std::move(obj));
  return {};
}

Result<int> PlanRun::emitItems(const Plan* plan, TextOut& out, bool& first) {
  auto items = eval(plan);
  if (!items) return std::unexpected(items.error());
  return writeItems(*items, out, first);
}

Result<int> PlanRun::writeItems(Items items, TextOut& out, bool& first) {
  int n = 0;
  char buf[24];
  for (const Val& item : items) {
    switch (item.kind) {
      case Val::Kind::kString:
        if (isBlank(item.string)) continue;
        separate(out, first);
        writeString(item.string.data(), item.string.size(), out);
        break;
      case Val::Kind::kBoolean:
        separate(out, first);
        if (item.boolean)
          out.append("true", 4);
        else
          out.append("false", 5);
        break;
      case Val::Kind::kInteger: {
        separate(out, first);
        char* end = rapidjson::internal::i64toa(item.integer, buf);
        out.append(buf, static_cast<std::size_t>(end - buf));
        break;
      }
      default: {
        JsonValue v;
        int r = itemToJson(item, v);
        if (r < 0) return decline();
        if (r == 0) continue;
        writeValue(v, out, first);
      }
    }
    ++n;
  }
  return n;
}

Result<int> PlanRun::emit(std::uint32_t at, TextOut& out, bool& first) {
  const EmitStep& step = m.program[at];
  switch (step.op) {
    case EmitStep::Op::kFixed:  // literals, and objects and arrays of them
      if (step.size == 0) return 0;
      separate(out, first);
      out.append(m.programBytes.data() + step.bytes, step.size);
      return 1;
    case EmitStep::Op::kExpr:
      return emitItems(step.plan, out, first);
    case EmitStep::Op::kArray: {
      const std::size_t mark = out.pos();
      const bool wasFirst = first;
      separate(out, first);
      out.room(1);
      out.put('[');
      bool inner = true;
      int n = 0;
      for (std::uint32_t i = step.first; i < step.first + step.count; ++i) {
        auto r = emit(i, out, inner);
        if (!r) return r;
        n += *r;
      }
      if (n == 0) {
        out.truncate(mark);
        first = wasFirst;
        return 0;
      }
      out.room(1);
      out.put(']');
      return 1;
    }
    case EmitStep::Op::kObject: {
      if (!step.each) return emitObjectBody(step, out, first);
      const TNode& node = *step.node;
      auto items = eval(node.eachPlan);
      if (!items) return std::unexpected(items.error());
      int n = 0;
      for (std::size_t i = 0; i < items->size(); ++i) {
        SlotScope scope(slots);
        bindEachItem(node, items->data(), i, scope);
        auto r = emitObjectBody(step, out, first);
        if (!r) return r;
        n += *r;
      }
      return n;
    }
    case EmitStep::Op::kTranslate:
      return emitTranslate(*step.node, out, first);
    case EmitStep::Op::kOther:
      break;
  }
  const TNode& node = *step.node;
  switch (node.kind) {
    case TNode::Kind::kText: {
      auto s = evalText(node.pieces, node.pointer, false);
      if (!s) return std::unexpected(s.error());
      if (!*s) return 0;
      separate(out, first);
      writeString((*s)->data(), (*s)->size(), out);
      return 1;
    }
    case TNode::Kind::kTranslate:
    case TNode::Kind::kLocalInstant:
    case TNode::Kind::kFromHl7Date:
    case TNode::Kind::kToHl7Date: {
      JsonVals vals(&arena.resource);
      auto r = node.kind == TNode::Kind::kTranslate      ? evalTranslate(node, vals)
               : node.kind == TNode::Kind::kLocalInstant ? evalLocalInstant(node, vals)
                                                         : hl7DateDirective(*this, node, vals, alloc());
      if (!r) return std::unexpected(r.error());
      for (const auto& v : vals) writeValue(v, out, first);
      return static_cast<int>(vals.size());
    }
    default:
      return 0;  // a literal is always fixed; the other kinds have their own steps
  }
}

Result<int> PlanRun::emitObjectBody(const EmitStep& step, TextOut& out, bool& first) {
  if (!step.directives) return emitMembers(step, out, first);  // most objects: no scope
  const TNode& node = *step.node;
  SlotScope scope(slots);
  if (!node.lets.empty()) {
    if (auto r = bindLets(node, scope); !r) return std::unexpected(r.error());
  }
  if (node.ifExpr) {
    auto cond = evalBool(node.ifPlan);
    if (!cond) return std::unexpected(cond.error());
    if (!cond->value_or(false)) return 0;
  }
  if (node.value) {
    JsonVals vals(&arena.resource);
    if (auto r = evalMany(*node.value, vals); !r) return std::unexpected(r.error());
    for (const auto& v : vals) writeValue(v, out, first);
    return static_cast<int>(vals.size());
  }
  return emitMembers(step, out, first);
}

Result<int> PlanRun::emitMembers(const EmitStep& step, TextOut& out, bool& first) {
  const std::size_t mark = out.pos();
  const bool wasFirst = first;
  separate(out, first);
  out.room(1);
  out.put('{');
  bool firstMember = true;
  const char* bytes = m.programBytes.data();
  for (std::uint32_t i = step.first; i < step.first + step.count; ++i) {
    const MemberStep& member = m.programMembers[i];
    if (member.fixedRun) {  // members with fixed values, written at load
      if (member.size != 0) {
        separate(out, firstMember);
        out.append(bytes + member.bytes, member.size);
      }
      continue;
    }
    Items items;
    if (member.plan) {  // one expression: its usual value (one string) with its key, at once
      auto r = eval(member.plan);
      if (!r) return std::unexpected(r.error());
      items = *r;
      if (items.size() == 1 && items[0].kind == Val::Kind::kString) {
        const std::string_view value = items[0].string;
        if (isBlank(value)) continue;  // the member vanishes
        separate(out, firstMember);
        out.append(bytes + member.bytes, member.size);
        writeString(value.data(), value.size(), out);
        continue;
      }
    }
    const std::size_t memberMark = out.pos();
    const bool memberWasFirst = firstMember;
    separate(out, firstMember);
    out.append(bytes + member.bytes, member.size);
    const std::size_t valueStart = out.pos();
    if (member.repeated) {
      out.room(1);
      out.put('[');
    }
    bool valueFirst = true;
    auto n = member.plan ? writeItems(items, out, valueFirst) : emit(member.step, out, valueFirst);
    if (!n) return n;
    if (*n == 0) {
      out.truncate(memberMark);
      firstMember = memberWasFirst;
      continue;
    }
    if (*n > 1 && !member.repeated) out.insert(valueStart, '[');
    if (*n > 1 || member.repeated) {
      out.room(1);
      out.put(']');
    }
  }
  if (firstMember) {
    out.truncate(mark);
    first = wasFirst;
    return 0;
  }
  out.room(1);
  out.put('}');
  return 1;
}

// As translateDirective() and writeValue() of what it gives, straight from the ConceptMap's
// answer.
Result<int> PlanRun::emitTranslate(const TNode& node, TextOut& out, bool& first) {
  auto found = translateLookup(*this, node);
  if (!found) return std::unexpected(found.error());
  if (!*found) return 0;
  const ConceptMapSet::View& t = **found;
  auto one = [&](std::string_view s) {
    if (s.empty()) return 0;
    separate(out, first);
    writeString(s.data(), s.size(), out);
    return 1;
  };
  if (node.selectKind == TNode::Select::kSourceDisplay) return one(t.sourceDisplay);
  if (!t.matched) return 0;
  switch (node.selectKind) {
    case TNode::Select::kCode:
      return one(t.code);
    case TNode::Select::kSystem:
      return one(t.system);
    case TNode::Select::kDisplay:
      return one(t.display);
    default:
      break;
  }
  separate(out, first);
  out.room(1);
  out.put('{');
  if (!t.system.empty()) {
    out.append(R"("system":)", 9);
    writeString(t.system.data(), t.system.size(), out);
    out.room(1);
    out.put(',');
  }
  out.append(R"("code":)", 7);
  writeString(t.code.data(), t.code.size(), out);
  if (!t.display.empty()) {
    out.append(R"(,"display":)", 11);
    writeString(t.display.data(), t.display.size(), out);
  }
  out.room(1);
  out.put('}');
  return 1;
}

Result<void> PlanRun::evalTranslate(const TNode& node, JsonVals& vals) {
  return translateDirective(*this, node, vals, alloc());
}

Result<void> PlanRun::evalLocalInstant(const TNode& node, JsonVals& vals) {
  return localInstantDirective(*this, node, vals, alloc());
}

Result<std::optional<std::string_view>> PlanRun::defaultZone() {
  const Slot& tz = slots[static_cast<std::size_t>(m.slotTimezone)];
  if (!tz.defined || tz.size != 1) return std::optional<std::string_view>();
  return text(tz.items[0]);  // a view valid for the run
}

Result<MappingOutput> PlanRun::run(std::string_view input, const fhirpath::Environment& variables) {
  // The input, parsed into the arena.
  FlowParts parts;
  {
    auto root = parseInto(arena, input);
    if (!root) {
      Error e = root.error();
      if (m.flowInput) e = Error(ErrorCode::kStructure, "input: " + e.message);
      e.message = "mapping " + m.id + ": " + e.message;
      return std::unexpected(e);
    }
    if (m.flowInput) {
      if (!(*root)->IsObject())
        return std::unexpected(
            Error(ErrorCode::kStructure, "mapping " + m.id + ": input is not a JSON object"));
      auto located = locateFlowResponse(
          **root, [&](std::string_view text) { return parseInto(arena, text); });
      if (!located) {
        Error e = located.error();
        e.message = "mapping " + m.id + ": " + e.message;
        return std::unexpected(e);
      }
      parts = std::move(*located);
    } else {
      parts.response = *root;
    }
  }
  if (parts.response->IsObject() && parts.response->HasMember("resourceType"))
    return decline();  // a FHIR resource: the engine's type model applies
  auto root = Val::fromJson(*parts.response);
  if (!root) return decline();
  focus.push_back(*root);
  if (parts.response->IsObject() && m.names.size() > 0) {
    const std::size_t n = m.names.size();
    auto* known = static_cast<const JsonValue**>(
        arena.resource.allocate(sizeof(const JsonValue*) * n, alignof(const JsonValue*)));
    std::fill_n(known, n, nullptr);
    scope.inputObject = parts.response;
    scope.inputMembers = known;
  }

  // Variables: the file's defaults, overridden by the caller's. Both maps are ordered by name,
  // so one walk through both pairs them (no look-up per slot).
  {
    const auto& given = variables.variables;
    auto it = given.begin();
    for (const Mapping::Impl::SlotName& entry : m.slotOrder) {
      const std::string_view name(m.slotNameBytes.data() + entry.offset, entry.size);
      const int slot = entry.slot;
      const auto i = static_cast<std::size_t>(slot);
      while (it != given.end() && it->first < name) ++it;
      if (it != given.end() && it->first == name) {
        Vals v(&arena.resource);
        for (const fhirpath::Node& n : it->second) v.push_back(planValue(n));
        set(slot, keep(v), v.size());
      } else if (m.hasDefault[i]) {
        set(slot, m.defaultVals[i].data(), m.defaultVals[i].size());
      }
    }
  }
  {
    const Slot& sender = slots[static_cast<std::size_t>(m.slotSender)];
    if ((!sender.defined || sender.size == 0) && !parts.sender.empty())
      setOne(m.slotSender, Val::str(scope.keep(parts.sender)));
  }
  set(m.slotInput, focus.data(), 1);
  for (int slot : m.channelSlots) {
    Slot& s = slots[static_cast<std::size_t>(slot)];
    if (!s.defined) s = Slot{nullptr, 0, true};
  }

  for (std::size_t r = 0; r < m.required.size(); ++r) {
    const auto& req = m.required[r];
    auto items = eval(m.requiredPlans[r]);
    if (!items) return std::unexpected(items.error());
    bool present = false;
    for (const Val& item : *items) {
      auto s = text(item);
      if (!s) return std::unexpected(s.error());
      if (!*s || !isBlank(**s)) present = true;
    }
    if (!present)
      return std::unexpected(
          error(ErrorCode::kRequired, "required answer missing: " + req.text(), req.text()));
  }
  for (const auto& a : m.assertions) {
    auto ok = evalBool(a.plan);
    if (!ok) return std::unexpected(ok.error());
    if (*ok && !**ok) {
      return std::unexpected(error(ErrorCode::kValue,
                                   (a.field.empty() ? "" : a.field + ": ") + a.message,
                                   a.field.empty() ? a.that.text() : a.field));
    }
  }

  // The input-derived key: "key" when the file gives one, else a digest of the input and sender.
  std::string_view inputKey;  // a view into the arena
  if (m.keyExpr) {
    auto items = eval(m.keyPlan);
    if (!items) return std::unexpected(items.error());
    std::optional<std::string_view> s;
    if (items->size() == 1) {
      auto t = text(items->front());
      if (!t) return std::unexpected(t.error());
      s = *t;
    }
    if (!s || isBlank(*s))
      return std::unexpected(error(
          ErrorCode::kRequired, "/key: " + quoteValue(m.keyExpr->text()) + " must yield one value",
          m.keyExpr->text()));
    inputKey = *s;
  } else {
    // The response as compact JSON (what rapidjson::Writer writes; up to a NaN or infinity, where
    // it stops), then a newline and the sender.
    std::string& basis = arena.scratch;
    {
      TextOut w(basis);
      writeJson(*parts.response, w);
      w.finish();
    }
    if (const Slot& s = slots[static_cast<std::size_t>(m.slotSender)]; s.defined && s.size == 1) {
      auto t = text(s.items[0]);
      if (!t) return std::unexpected(t.error());
      if (*t) {
        basis += "\n";
        basis += **t;
      }
    }
    char* hex = static_cast<char*>(arena.resource.allocate(40, 1));
    writeSha1Hex(basis, hex);
    inputKey = std::string_view(hex, 40);
  }

  // Which resources are produced, their ids and references.
  auto& pool = alloc();
  bool* produced = static_cast<bool*>(
      arena.resource.allocate(std::max<std::size_t>(1, m.resources.size()), alignof(bool)));
  std::fill_n(produced, m.resources.size(), true);
  // The uuids and references live in the arena, as "urn:uuid:<uuid>" (or "<type>/<uuid>").
  auto* uuids = static_cast<std::string_view*>(arena.resource.allocate(
      sizeof(std::string_view) * std::max<std::size_t>(1, m.resources.size()),
      alignof(std::string_view)));
  JsonValue refs(rapidjson::kObjectType), ids(rapidjson::kObjectType);
  std::string& name = arena.name;
  for (std::size_t i = 0; i < m.resources.size(); ++i) {
    const ResourceSpec& spec = m.resources[i];
    if (spec.ifExpr) {
      auto cond = evalBool(spec.ifPlan);
      if (!cond) return std::unexpected(cond.error());
      produced[i] = cond->value_or(false);
    }
    name.assign(spec.uuidPrefix);
    bool own = false;
    if (spec.identity) {
      auto items = eval(spec.identityPlan);
      if (!items) return std::unexpected(items.error());
      if (items->size() > 1)
        return std::unexpected(error(ErrorCode::kInvalid,
                                     spec.pointer + "/identity: more than one value",
                                     spec.identity->text()));
      if (items->size() == 1) {
        auto s = text(items->front());
        if (!s) return std::unexpected(s.error());
        if (*s && !isBlank(**s)) {
          name.append("=").append(**s);
          own = true;
        }
      }
    }
    if (!own) name.append(inputKey);
    static constexpr std::string_view kUrn = "urn:uuid:";
    const std::string_view prefix = m.transaction ? kUrn : std::string_view(spec.resourceType);
    char* ref = static_cast<char*>(arena.resource.allocate(prefix.size() + 1 + 36, 1));
    std::memcpy(ref, prefix.data(), prefix.size());
    std::size_t at = prefix.size();
    if (!m.transaction) ref[at++] = '/';
    writeNameUuid(name, ref + at);
    uuids[i] = std::string_view(ref + at, 36);
    const auto keyRef =
        rapidjson::StringRef(spec.key.data(), static_cast<rapidjson::SizeType>(spec.key.size()));
    ids.AddMember(JsonValue(keyRef), JsonValue(rapidjson::StringRef(ref + at, 36)), pool);
    if (produced[i]) {
      refs.AddMember(
          JsonValue(keyRef),
          JsonValue(rapidjson::StringRef(ref, static_cast<rapidjson::SizeType>(at + 36))), pool);
    }
  }
  setOne(m.slotRef, *Val::fromJson(refs));
  setOne(m.slotId, *Val::fromJson(ids));
  forgetMemos();  // %ref and %id are now the run's own

  if (m.transaction) {
    // Straight into the text: {"resourceType":"Bundle","type":"transaction","entry":[...]}.
    MappingOutput output{std::string(), "application/fhir+json"};
    TextOut out(output.payload);
    static constexpr std::string_view kHead = R"({"resourceType":"Bundle","type":"transaction")";
    out.append(kHead.data(), kHead.size());
    const std::size_t entriesMark = out.pos();
    static constexpr std::string_view kEntries = R"(,"entry":[)";
    out.append(kEntries.data(), kEntries.size());
    bool firstEntry = true;
    for (std::size_t i = 0; i < m.resources.size(); ++i) {
      if (!produced[i]) continue;
      const ResourceSpec& spec = m.resources[i];
      const std::size_t entryMark = out.pos();
      const bool wasFirst = firstEntry;
      separate(out, firstEntry);
      static constexpr std::string_view kFullUrl = R"({"fullUrl":"urn:uuid:)";
      out.append(kFullUrl.data(), kFullUrl.size());
      out.append(uuids[i].data(), uuids[i].size());
      static constexpr std::string_view kResource = R"(","resource":)";
      out.append(kResource.data(), kResource.size());
      bool one = true;
      auto n = emit(spec.step, out, one);
      if (!n) return std::unexpected(n.error());
      if (*n != 1) {  // its own $if said no
        out.truncate(entryMark);
        firstEntry = wasFirst;
        continue;
      }
      if (spec.update) {
        auto q = evalText(spec.ifNoneExist, spec.pointer, true, "/ifNoneExist");
        if (!q) return std::unexpected(q.error());
        if (!*q)
          return std::unexpected(
              error(ErrorCode::kRequired, emptyUpdateSearch(spec), spec.pointer + "/ifNoneExist"));
        static constexpr std::string_view kPut = R"(,"request":{"method":"PUT","url":)";
        out.append(kPut.data(), kPut.size());
        const std::string url = spec.resourceType + "?" + std::string(**q);
        writeString(url.data(), url.size(), out);
        out.append("}}", 2);
        continue;
      }
      static constexpr std::string_view kRequest = R"(,"request":{"method":"POST","url":)";
      out.append(kRequest.data(), kRequest.size());
      writeString(spec.resourceType.data(), spec.resourceType.size(), out);
      if (!spec.ifNoneExist.empty()) {
        auto q = evalText(spec.ifNoneExist, spec.pointer, true, "/ifNoneExist");
        if (!q) return std::unexpected(q.error());
        if (*q) {
          static constexpr std::string_view kIfNoneExist = R"(,"ifNoneExist":)";
          out.append(kIfNoneExist.data(), kIfNoneExist.size());
          writeString((*q)->data(), (*q)->size(), out);
        }
      }
      out.append("}}", 2);
    }
    if (firstEntry)
      out.truncate(entriesMark);
    else
      out.append("]", 1);
    out.append("}", 1);
    out.finish();
    if (badText || ((out.nonAscii || m.rawNonAscii) && !validUtf8(output.payload)))
      return std::unexpected(
          error(ErrorCode::kValue, "the input holds text that is not valid UTF-8", ""));
    return output;
  }

  // "output": "resources": each resource with its id.
  JsonValue entries(rapidjson::kArrayType);
  JsonVals vals(&arena.resource);
  for (std::size_t i = 0; i < m.resources.size(); ++i) {
    if (!produced[i]) continue;
    const ResourceSpec& spec = m.resources[i];
    vals.clear();
    if (auto r = evalMany(*spec.resource, vals); !r) return std::unexpected(r.error());
    if (vals.size() != 1 || !vals.front().IsObject()) continue;  // its own $if said no
    JsonValue resource = std::move(vals.front());
    const auto uuidRef =
        rapidjson::StringRef(uuids[i].data(), static_cast<rapidjson::SizeType>(uuids[i].size()));
    JsonValue withId(rapidjson::kObjectType);
    for (auto it = resource.MemberBegin(); it != resource.MemberEnd(); ++it) {
      withId.AddMember(std::move(it->name), std::move(it->value), pool);
      if (withId.MemberCount() == 1) withId.AddMember("id", JsonValue(uuidRef), pool);
    }
    entries.PushBack(std::move(withId), pool);
  }

  // Written without per-character validation, then the whole text checked at once: the same
  // verdict as the general evaluator's validating writer, since only strings can hold non-ASCII.
  MappingOutput output{std::string(), "application/fhir+json"};
  TextOut text(output.payload);
  const bool ok = writeJson(entries, text);
  text.finish();
  if (!ok || (text.nonAscii && !validUtf8(output.payload)))
    return std::unexpected(
        error(ErrorCode::kValue, "the input holds text that is not valid UTF-8", ""));
  return output;
}

}  // namespace

Result<MappingOutput> Mapping::Impl::runPlanned(std::string_view input,
                                                const fhirpath::Environment& variables,
                                                bool& declined) const {
  ArenaLease arena;
  PlanRun run(*this, *arena);
  auto out = run.run(input, variables);
  declined = run.declined;
  return out;
}

}  // namespace switchboard::mapping

// Compiled FHIRPath plans over untyped JSON. Every rule here mirrors engine/fhirpath/eval.cc for
// the covered subset; where the engine would raise an error or needs its type model, the plan
// declines (returns false) and the caller asks the engine. Thread-safety: see plan_expr.h.
#include "engine/mapping/plan_expr.h"

#include <cctype>
#include <cstdio>
#include <cstring>
#include <limits>
#include <span>

#include "engine/fhirpath/syntax.h"

namespace switchboard::mapping {

using fhirpath::detail::ExprKind;
using fhirpath::detail::ExprNode;

struct PlanExpr {
  enum class Op : std::uint8_t {
    kLiteral,
    kConst,  // a collection computed at compile time (a union of literals)
    kEmpty,
    kMember,
    kThis,
    kIndex,
    kVariable,
    kDot,
    kIndexer,
    kNegate,
    kBinary,
    kFunction
  };
  enum class Bin : std::uint8_t {
    kEq,
    kNe,
    kLt,
    kGt,
    kLe,
    kGe,
    kIn,
    kContains,
    kUnion,
    kConcat,
    kAdd,
    kSub,
    kAnd,
    kOr,
    kXor,
    kImplies
  };
  enum class Fn : std::uint8_t {
    kEmpty,
    kExists,
    kAll,
    kCount,
    kWhere,
    kSelect,
    kFirst,
    kLast,
    kSingle,
    kNot,
    kIif,
    kTrim,
    kLower,
    kUpper,
    kLength,
    kSubstring,
    kIndexOf,
    kStartsWith,
    kEndsWith,
    kContains,
    kReplace,
    kToDate,
    kToString
  };
  Op op = Op::kEmpty;
  Bin bin = Bin::kEq;
  Fn fn = Fn::kEmpty;
  std::string text;  // member name, string literal
  Val literal;
  std::vector<Val> consts;  // kConst; strings point into the kids' `text`
  int slot = -1;  // kVariable: its number; kMember: its name's (compile()'s `names`) or -1
  std::vector<std::unique_ptr<PlanExpr>> kids;
};

// A PlanExpr as evaluated, in 32 bytes: the nodes of a plan side by side (preorder, so a node's
// kids follow it), their names and literal items next to them, so that evaluating reads a line
// per two nodes instead of the compiled tree's nodes, kid vectors and strings spread over the
// heap.
struct PlanNode {
  using Op = PlanExpr::Op;
  using Bin = PlanExpr::Bin;
  using Fn = PlanExpr::Fn;
  Op op = Op::kEmpty;
  Bin bin = Bin::kEq;
  Fn fn = Fn::kEmpty;
  std::uint8_t nkids = 0;
  std::int32_t slot = -1;  // as PlanExpr::slot
  std::uint16_t kidOffset[3] = {};  // kid i is this + kidOffset[i]
  std::uint32_t length = 0;         // of the name (kMember) or of the items (kLiteral, kConst)
  union {
    const char* text = nullptr;  // kMember: the name
    const Val* items;            // kLiteral (one), kConst
  };

  const PlanNode* kid(std::size_t i) const { return this + kidOffset[i]; }
  std::string_view name() const { return std::string_view(text, length); }
  std::span<const Val> values() const { return std::span<const Val>(items, length); }
};
static_assert(sizeof(PlanNode) == 32);
// The largest plan: a kid's offset from its parent fits in PlanNode::kidOffset.
constexpr std::size_t kMaxPlanNodes = 65535;

namespace {

using Op = PlanExpr::Op;
using Bin = PlanExpr::Bin;
using Fn = PlanExpr::Fn;
using Kind = Val::Kind;

// ------------------------------------------------------------------ compiling

const std::map<std::string_view, Bin>& binaryOps() {
  static const std::map<std::string_view, Bin> kOps = {
      {"=", Bin::kEq},         {"!=", Bin::kNe},       {"<", Bin::kLt},      {">", Bin::kGt},
      {"<=", Bin::kLe},        {">=", Bin::kGe},       {"in", Bin::kIn},     {"contains", Bin::kContains},
      {"|", Bin::kUnion},      {"&", Bin::kConcat},    {"+", Bin::kAdd},     {"-", Bin::kSub},
      {"and", Bin::kAnd},      {"or", Bin::kOr},       {"xor", Bin::kXor},   {"implies", Bin::kImplies}};
  return kOps;
}

struct FnInfo {
  Fn fn;
  std::size_t minArgs, maxArgs;
};

const std::map<std::string_view, FnInfo>& functions() {
  static const std::map<std::string_view, FnInfo> kFns = {
      {"empty", {Fn::kEmpty, 0, 0}},           {"exists", {Fn::kExists, 0, 1}},
      {"all", {Fn::kAll, 1, 1}},               {"count", {Fn::kCount, 0, 0}},
      {"where", {Fn::kWhere, 1, 1}},           {"select", {Fn::kSelect, 1, 1}},
      {"first", {Fn::kFirst, 0, 0}},           {"last", {Fn::kLast, 0, 0}},
      {"single", {Fn::kSingle, 0, 0}},         {"not", {Fn::kNot, 0, 0}},
      {"iif", {Fn::kIif, 2, 3}},               {"trim", {Fn::kTrim, 0, 0}},
      {"lower", {Fn::kLower, 0, 0}},           {"upper", {Fn::kUpper, 0, 0}},
      {"length", {Fn::kLength, 0, 0}},         {"substring", {Fn::kSubstring, 1, 2}},
      {"indexOf", {Fn::kIndexOf, 1, 1}},       {"startsWith", {Fn::kStartsWith, 1, 1}},
      {"endsWith", {Fn::kEndsWith, 1, 1}},     {"contains", {Fn::kContains, 1, 1}},
      {"replace", {Fn::kReplace, 2, 2}},
      {"toDate", {Fn::kToDate, 0, 0}},         {"toString", {Fn::kToString, 0, 0}}};
  return kFns;
}

// Variables the engine defines itself (they win over the environment, or need the focus).
bool builtinVariable(std::string_view name) {
  return name == "ucum" || name == "sct" || name == "loinc" || name == "resource" ||
         name == "rootResource" || name == "context" || name.starts_with("vs-") ||
         name.starts_with("ext-");
}

// The items a literal or constant node always gives; false for other nodes.
bool constItems(const PlanExpr& e, std::vector<Val>& out) {
  if (e.op == Op::kLiteral) {
    out.push_back(e.literal);
    return true;
  }
  if (e.op == Op::kConst) {
    out.insert(out.end(), e.consts.begin(), e.consts.end());
    return true;
  }
  return false;
}

int itemEqual(const Val& a, const Val& b);

// A union of literals or constants becomes a constant: the items of the left side then those of
// the right one, each once, as the union operator computes them at run time.
void foldUnion(PlanExpr& e) {
  std::vector<Val> parts;
  if (!constItems(*e.kids[0], parts) || !constItems(*e.kids[1], parts)) return;
  std::vector<Val> items;
  for (const Val& x : parts) {
    bool seen = false;
    for (const Val& y : items) {
      const int q = itemEqual(y, x);
      if (q < 0) return;  // literals are always comparable; kept as it is otherwise
      if (q == 1) {
        seen = true;
        break;
      }
    }
    if (!seen) items.push_back(x);
  }
  e.op = Op::kConst;
  e.consts = std::move(items);
}

std::unique_ptr<PlanExpr> compileNode(const ExprNode& n, SlotTable& slots, SlotTable* names,
                                      bool capitalisedMembers) {
  if (n.children.size() > 3) return nullptr;  // no covered node has more (PlanNode::Kids)
  auto e = std::make_unique<PlanExpr>();
  for (const auto& child : n.children) {
    auto k = compileNode(*child, slots, names, capitalisedMembers);
    if (!k) return nullptr;
    e->kids.push_back(std::move(k));
  }
  switch (n.kind) {
    case ExprKind::kLiteral:
      e->op = Op::kLiteral;
      switch (n.value.kind()) {
        case fhirpath::Node::Kind::kString:
          e->text = n.value.stringValue();
          e->literal = Val::str(e->text);
          return e;
        case fhirpath::Node::Kind::kBoolean:
          e->literal = Val::boolVal(n.value.booleanValue());
          return e;
        case fhirpath::Node::Kind::kInteger:
          e->literal = Val::intVal(n.value.integerValue());
          return e;
        default:
          return nullptr;
      }
    case ExprKind::kEmpty:
      e->op = Op::kEmpty;
      return e;
    case ExprKind::kMember:
      // A capitalised name at the start of a path may be a type filter: the engine's business.
      if (n.root && !n.name.empty() && std::isupper(static_cast<unsigned char>(n.name[0])) &&
          !capitalisedMembers)
        return nullptr;
      if (n.name == "resourceType") return nullptr;
      e->op = Op::kMember;
      e->text = n.name;
      if (names) e->slot = names->id(n.name);
      return e;
    case ExprKind::kThis:
      e->op = Op::kThis;
      return e;
    case ExprKind::kIndex:
      e->op = Op::kIndex;
      return e;
    case ExprKind::kVariable:
      if (builtinVariable(n.name)) return nullptr;
      e->op = Op::kVariable;
      e->slot = slots.id(n.name);
      return e;
    case ExprKind::kDot:
      // (x as T).name has a static check in the engine; `as` is not planned, so no such case.
      e->op = Op::kDot;
      return e;
    case ExprKind::kIndexer:
      e->op = Op::kIndexer;
      return e;
    case ExprKind::kUnary:
      if (n.name != "-") return nullptr;
      e->op = Op::kNegate;
      return e;
    case ExprKind::kBinary: {
      auto it = binaryOps().find(n.name);
      if (it == binaryOps().end()) return nullptr;
      e->op = Op::kBinary;
      e->bin = it->second;
      if (e->bin == Bin::kUnion) foldUnion(*e);
      return e;
    }
    case ExprKind::kFunction: {
      auto it = functions().find(n.name);
      if (it == functions().end()) return nullptr;
      if (e->kids.size() < it->second.minArgs || e->kids.size() > it->second.maxArgs)
        return nullptr;
      e->op = Op::kFunction;
      e->fn = it->second.fn;
      return e;
    }
    case ExprKind::kTotal:
    case ExprKind::kTypeOp:
      return nullptr;
  }
  return nullptr;
}

// ------------------------------------------------------------------ evaluating

// A collection read by an operation: a view of a Vals, of one item of one, or of the focus.
using In = std::span<const Val>;

struct Ctx {
  const PlanScope& scope;
  In thisColl;
  std::optional<std::int64_t> index;
};

bool eval(const PlanNode& e, In input, const Ctx& c, Vals& out);

// Whether `n` bytes (from sizeof(Word) to twice that) are the same, as two overlapping words.
template <typename Word>
bool sameWords(const char* a, const char* b, std::size_t n) {
  Word a0, a1, b0, b1;
  std::memcpy(&a0, a, sizeof a0);
  std::memcpy(&a1, a + n - sizeof a1, sizeof a1);
  std::memcpy(&b0, b, sizeof b0);
  std::memcpy(&b1, b + n - sizeof b1, sizeof b1);
  return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

// memcmp(a, b, n) == 0 for names: up to sixteen bytes without a call.
inline bool sameBytes(const char* a, const char* b, std::size_t n) {
  if (n >= 8 && n <= 16) return sameWords<std::uint64_t>(a, b, n);
  if (n >= 4 && n < 8) return sameWords<std::uint32_t>(a, b, n);
  if (n < 4) {
    for (std::size_t i = 0; i < n; ++i) {
      if (a[i] != b[i]) return false;
    }
    return true;
  }
  return std::memcmp(a, b, n) == 0;
}

// Equality of two items: 1 equal, 0 not, -1 the engine must decide.
int itemEqual(const Val& a, const Val& b) {
  if (a.kind == Kind::kJson || b.kind == Kind::kJson || a.kind == Kind::kOther ||
      b.kind == Kind::kOther)
    return -1;
  if (a.kind != b.kind) return 0;
  switch (a.kind) {
    case Kind::kString:
      return a.string.size() == b.string.size() &&
                     sameBytes(a.string.data(), b.string.data(), a.string.size())
                 ? 1
                 : 0;
    case Kind::kBoolean:
      return a.boolean == b.boolean ? 1 : 0;
    case Kind::kInteger:
      return a.integer == b.integer ? 1 : 0;
    default:
      return -1;
  }
}

// Whether `coll` holds `item`: 1, 0 or -1 (undecided).
int holds(const Val* coll, std::size_t size, const Val& item) {
  for (std::size_t i = 0; i < size; ++i) {
    int e = itemEqual(coll[i], item);
    if (e != 0) return e;
  }
  return 0;
}
int holds(In coll, const Val& item) { return holds(coll.data(), coll.size(), item); }

// Singleton to boolean (FHIRPath 4.5); false when undecided (several items, opaque values).
bool toBool(In v, std::optional<bool>& out) {
  return planBoolean(v.data(), v.size(), out);
}

// At most one item; false for several.
bool single(In v, const Val*& out) {
  out = v.empty() ? nullptr : &v[0];
  return v.size() <= 1;
}

bool isSpaceTrim(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

// trim() of a string.
std::string_view trimmed(std::string_view str) {
  std::size_t b = 0, end = str.size();
  while (b < end && isSpaceTrim(str[b])) ++b;
  while (end > b && isSpaceTrim(str[end - 1])) --end;
  return str.substr(b, end - b);
}

// UTF-8 stepping exactly as the engine's utf8Chars(): the byte length of the character at `c`.
std::size_t charBytes(unsigned char c) {
  return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
}

// Whether `s` is all ASCII (one byte per character), eight bytes at a time.
bool asciiOnly(std::string_view s) {
  std::size_t i = 0;
  std::uint64_t high = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    high |= w;
  }
  for (; i < s.size(); ++i) high |= static_cast<unsigned char>(s[i]);
  return (high & 0x8080808080808080ULL) == 0;
}

std::int64_t charCount(std::string_view s) {
  if (asciiOnly(s)) return static_cast<std::int64_t>(s.size());
  std::int64_t n = 0;
  for (std::size_t i = 0; i < s.size(); i += charBytes(static_cast<unsigned char>(s[i]))) ++n;
  return n;
}

// Byte offset of character `k` (clipped to the end).
std::size_t charOffset(std::string_view s, std::int64_t k) {
  if (asciiOnly(s)) return k <= 0 ? 0 : std::min(static_cast<std::size_t>(k), s.size());
  std::size_t i = 0;
  for (std::int64_t n = 0; n < k && i < s.size(); ++n)
    i += charBytes(static_cast<unsigned char>(s[i]));
  return std::min(i, s.size());
}

// A member's value, or each item of an array value, appended to `out`; false for an array inside
// an array (not FHIR JSON: the engine decides).
[[gnu::always_inline]] inline bool addValues(const rapidjson::Value& value, Vals& out) {
  if (!value.IsArray()) {
    if (!value.IsNull()) Val::setJson(out.emplace_back(), value);
    return true;
  }
  for (const auto& x : value.GetArray()) {
    if (x.IsArray()) return false;
    if (!x.IsNull()) Val::setJson(out.emplace_back(), x);
  }
  return true;
}

// The first member named `name` of a plain object (as FindMember), lengths and first bytes
// compared first.
const rapidjson::Value* firstMember(const rapidjson::Value& obj, std::string_view name) {
  for (auto m = obj.MemberBegin(); m != obj.MemberEnd(); ++m) {
    if (m->name.GetStringLength() != name.size()) continue;
    const char* key = m->name.GetString();
    if (!name.empty() && key[0] != name[0]) continue;
    if (sameBytes(key, name.data(), name.size())) return &m->value;
  }
  return nullptr;
}

// What PlanScope::inputMembers holds for a name the input object does not have.
const rapidjson::Value kNoMember;

// Children `name` (numbered `nameId` by Plan::compile's `names`, or -1) of the items (untyped
// JSON only).
bool member(std::string_view name, int nameId, In input, const PlanScope& scope, Vals& out) {
  for (const Val& item : input) {
    if (!item.element) continue;  // System values have no children
    if (item.kind != Kind::kJson || !item.json->IsObject()) return false;
    const rapidjson::Value& obj = *item.json;
    if (scope.isPlain(obj)) {
      const rapidjson::Value* found;
      if (&obj == scope.inputObject && nameId >= 0) {  // looked for once per run
        const rapidjson::Value*& known = scope.inputMembers[nameId];
        if (!known) {
          known = firstMember(obj, name);
          if (!known) known = &kNoMember;
        }
        found = known == &kNoMember ? nullptr : known;
      } else {
        found = firstMember(obj, name);
      }
      if (!found) continue;
      if (!addValues(*found, out)) return false;
      continue;
    }
    // One pass: the member itself, its "_" extension, and choice-like names (name + TypeSuffix).
    const rapidjson::Value* found = nullptr;
    bool choiceLike = false;
    for (auto m = obj.MemberBegin(); m != obj.MemberEnd(); ++m) {
      std::string_view key(m->name.GetString(), m->name.GetStringLength());
      if (key == name) {
        if (!found) found = &m->value;  // the first of duplicate keys, as FindMember
        continue;
      }
      if (key == "resourceType") return false;  // typed: the engine's model decides
      if (key.starts_with('_')) {
        key.remove_prefix(1);
        if (key == name) return false;  // a primitive extension
      }
      if (key.size() > name.size() && key.starts_with(name) &&
          key[name.size()] >= 'A' && key[name.size()] <= 'Z')  // std::isupper in the "C" locale
        choiceLike = true;
    }
    if (!found) {
      if (choiceLike) return false;  // a choice element is the engine's business
      continue;
    }
    if (!addValues(*found, out)) return false;
  }
  return true;
}

// The input as one string: `out` null for empty; false when undecided.
bool inputString(In input, const Val*& out) {
  if (!single(input, out)) return false;
  return !out || out->kind == Kind::kString;
}

// Argument `i` as a single value of `kind` (null when empty); false when undecided.
bool argOf(const PlanNode& e, std::size_t i, const Ctx& c, Kind kind, Val& storage,
           const Val*& out) {
  Vals v(c.scope.memory);
  if (!eval(*e.kid(i), c.thisColl, c, v)) return false;
  if (!single(v, out)) return false;
  if (!out) return true;
  if (out->kind != kind) return false;
  storage = *out;
  out = &storage;
  return true;
}

// Evaluates `body` for each item with $this and $index set; `f(i, result)` returns 1 to go on,
// 0 to stop, -1 to decline.
template <typename F>
bool forEach(const PlanNode& body, In input, const Ctx& c, F&& f) {
  Vals r(c.scope.memory);
  for (std::size_t i = 0; i < input.size(); ++i) {
    const In one = input.subspan(i, 1);
    Ctx inner{c.scope, one, static_cast<std::int64_t>(i)};
    r.clear();
    if (!eval(body, one, inner, r)) return false;
    int go = f(i, r);
    if (go < 0) return false;
    if (go == 0) break;
  }
  return true;
}

bool binary(const PlanNode& e, In input, const Ctx& c, Vals& out) {
  Vals a(c.scope.memory), b(c.scope.memory);
  if (!eval(*e.kid(0), input, c, a)) return false;
  const Bin op = e.bin;
  if (op == Bin::kIn && e.kid(1)->op == Op::kConst) {  // `x in ('a' | 'b')`: no copies
    const Val* x;
    if (!single(a, x)) return false;
    if (!x) return true;
    const std::span<const Val> coll = e.kid(1)->values();
    int h = holds(coll.data(), coll.size(), *x);
    if (h < 0) return false;
    out.push_back(Val::boolVal(h == 1));
    return true;
  }
  if (op == Bin::kAnd || op == Bin::kOr || op == Bin::kImplies) {
    std::optional<bool> l;
    if (!toBool(a, l)) return false;
    if (l && ((op == Bin::kAnd && !*l) || (op == Bin::kOr && *l))) {
      out.push_back(Val::boolVal(*l));
      return true;
    }
    if (l && op == Bin::kImplies && !*l) {
      out.push_back(Val::boolVal(true));
      return true;
    }
  }
  if (!eval(*e.kid(1), input, c, b)) return false;
  switch (op) {
    case Bin::kUnion: {
      for (const Vals* part : {&a, &b}) {
        for (const Val& x : *part) {
          int h = holds(out, x);
          if (h < 0) return false;
          if (h == 0) out.push_back(x);
        }
      }
      return true;
    }
    case Bin::kAnd:
    case Bin::kOr:
    case Bin::kXor:
    case Bin::kImplies: {
      std::optional<bool> l, r;
      if (!toBool(a, l) || !toBool(b, r)) return false;
      if (op == Bin::kAnd) {
        if ((l && !*l) || (r && !*r))
          out.push_back(Val::boolVal(false));
        else if (l && r)
          out.push_back(Val::boolVal(true));
      } else if (op == Bin::kOr) {
        if ((l && *l) || (r && *r))
          out.push_back(Val::boolVal(true));
        else if (l && r)
          out.push_back(Val::boolVal(false));
      } else if (op == Bin::kXor) {
        if (l && r) out.push_back(Val::boolVal(*l != *r));
      } else {
        if ((l && !*l) || (r && *r))
          out.push_back(Val::boolVal(true));
        else if (l && *l && r)
          out.push_back(Val::boolVal(false));
      }
      return true;
    }
    case Bin::kEq:
    case Bin::kNe: {
      if (a.empty() || b.empty()) return true;
      if (a.size() != b.size()) {
        out.push_back(Val::boolVal(op == Bin::kNe));
        return true;
      }
      bool equal = true;
      for (std::size_t i = 0; i < a.size(); ++i) {
        int q = itemEqual(a[i], b[i]);
        if (q < 0) return false;
        if (q == 0) {
          equal = false;
          break;
        }
      }
      out.push_back(Val::boolVal(op == Bin::kEq ? equal : !equal));
      return true;
    }
    case Bin::kLt:
    case Bin::kGt:
    case Bin::kLe:
    case Bin::kGe: {
      const Val *x, *y;
      if (!single(a, x) || !single(b, y)) return false;
      if (!x || !y) return true;
      int cmp;
      if (x->kind == Kind::kInteger && y->kind == Kind::kInteger) {
        cmp = x->integer < y->integer ? -1 : x->integer > y->integer ? 1 : 0;
      } else if (x->kind == Kind::kString && y->kind == Kind::kString) {
        int r = x->string.compare(y->string);
        cmp = r < 0 ? -1 : r > 0 ? 1 : 0;
      } else {
        return false;
      }
      bool r = op == Bin::kLt ? cmp < 0 : op == Bin::kGt ? cmp > 0 : op == Bin::kLe ? cmp <= 0
                                                                                     : cmp >= 0;
      out.push_back(Val::boolVal(r));
      return true;
    }
    case Bin::kIn:
    case Bin::kContains: {
      const Vals& item = op == Bin::kIn ? a : b;
      const Vals& coll = op == Bin::kIn ? b : a;
      const Val* x;
      if (!single(item, x)) return false;
      if (!x) return true;
      int h = holds(coll, *x);
      if (h < 0) return false;
      out.push_back(Val::boolVal(h == 1));
      return true;
    }
    case Bin::kConcat: {
      const Val *x, *y;
      if (!single(a, x) || !single(b, y)) return false;
      if ((x && x->kind != Kind::kString) || (y && y->kind != Kind::kString)) return false;
      std::string_view sx = x ? x->string : std::string_view();
      std::string_view sy = y ? y->string : std::string_view();
      char* buf = static_cast<char*>(c.scope.memory->allocate(sx.size() + sy.size() + 1, 1));
      if (!sx.empty()) std::memcpy(buf, sx.data(), sx.size());  // an empty view may be null
      if (!sy.empty()) std::memcpy(buf + sx.size(), sy.data(), sy.size());
      out.push_back(Val::str(std::string_view(buf, sx.size() + sy.size())));
      return true;
    }
    case Bin::kAdd:
    case Bin::kSub: {
      const Val *x, *y;
      if (!single(a, x) || !single(b, y)) return false;
      if (!x || !y) return true;
      if (x->kind != Kind::kInteger || y->kind != Kind::kInteger) return false;
      std::int64_t r;
      if (op == Bin::kAdd ? __builtin_add_overflow(x->integer, y->integer, &r)
                          : __builtin_sub_overflow(x->integer, y->integer, &r))
        return false;
      out.push_back(Val::intVal(r));
      return true;
    }
  }
  return false;
}

bool function(const PlanNode& e, In input, const Ctx& c, Vals& out) {
  switch (e.fn) {
    case Fn::kEmpty:
      out.push_back(Val::boolVal(input.empty()));
      return true;
    case Fn::kCount:
      out.push_back(Val::intVal(static_cast<std::int64_t>(input.size())));
      return true;
    case Fn::kExists: {
      if ((e.nkids == 0)) {
        out.push_back(Val::boolVal(!input.empty()));
        return true;
      }
      bool found = false;
      if (!forEach(*e.kid(0), input, c, [&](std::size_t, const Vals& r) {
            std::optional<bool> b;
            if (!toBool(r, b)) return -1;
            if (b && *b) {
              found = true;
              return 0;
            }
            return 1;
          }))
        return false;
      out.push_back(Val::boolVal(found));
      return true;
    }
    case Fn::kAll: {
      bool all = true;
      if (!forEach(*e.kid(0), input, c, [&](std::size_t, const Vals& r) {
            std::optional<bool> b;
            if (!toBool(r, b)) return -1;
            if (!b || !*b) {
              all = false;
              return 0;
            }
            return 1;
          }))
        return false;
      out.push_back(Val::boolVal(all));
      return true;
    }
    case Fn::kWhere:
      return forEach(*e.kid(0), input, c, [&](std::size_t i, const Vals& r) {
        std::optional<bool> b;
        if (!toBool(r, b)) return -1;
        if (b && *b) out.push_back(input[i]);
        return 1;
      });
    case Fn::kSelect:
      return forEach(*e.kid(0), input, c, [&](std::size_t, const Vals& r) {
        out.insert(out.end(), r.begin(), r.end());
        return 1;
      });
    case Fn::kFirst:
      if (!input.empty()) out.push_back(input.front());
      return true;
    case Fn::kLast:
      if (!input.empty()) out.push_back(input.back());
      return true;
    case Fn::kSingle:
      if (input.size() > 1) return false;
      out.insert(out.end(), input.begin(), input.end());
      return true;
    case Fn::kNot: {
      std::optional<bool> b;
      if (!toBool(input, b)) return false;
      if (b) out.push_back(Val::boolVal(!*b));
      return true;
    }
    case Fn::kIif: {
      if (input.size() > 1) return false;
      Ctx inner{c.scope, input.size() == 1 ? input : c.thisColl, c.index};
      Vals crit(c.scope.memory);
      if (!eval(*e.kid(0), inner.thisColl, inner, crit)) return false;
      if (crit.size() > 1) return false;
      if (crit.size() == 1 && crit[0].kind != Kind::kBoolean) return false;
      if (crit.size() == 1 && crit[0].boolean)
        return eval(*e.kid(1), inner.thisColl, inner, out);
      if (e.nkids == 3) return eval(*e.kid(2), inner.thisColl, inner, out);
      return true;
    }
    case Fn::kTrim:
    case Fn::kLower:
    case Fn::kUpper:
    case Fn::kLength: {
      const Val* s;
      if (!inputString(input, s)) return false;
      if (!s) return true;
      std::string_view str = s->string;
      if (e.fn == Fn::kLength) {
        out.push_back(Val::intVal(charCount(str)));
      } else if (e.fn == Fn::kTrim) {
        out.push_back(Val::str(trimmed(str)));
      } else {
        char* buf = static_cast<char*>(c.scope.memory->allocate(str.size() + 1, 1));
        for (std::size_t i = 0; i < str.size(); ++i) {
          unsigned char ch = static_cast<unsigned char>(str[i]);
          // The engine maps bytes with std::tolower/toupper in the "C" locale: ASCII only.
          if (e.fn == Fn::kLower && ch >= 'A' && ch <= 'Z') ch = static_cast<unsigned char>(ch + 32);
          if (e.fn == Fn::kUpper && ch >= 'a' && ch <= 'z') ch = static_cast<unsigned char>(ch - 32);
          buf[i] = static_cast<char>(ch);
        }
        out.push_back(Val::str(std::string_view(buf, str.size())));
      }
      return true;
    }
    case Fn::kIndexOf:
    case Fn::kStartsWith:
    case Fn::kEndsWith:
    case Fn::kContains: {
      const Val *s, *a;
      Val storage;
      if (!inputString(input, s)) return false;
      if (!argOf(e, 0, c, Kind::kString, storage, a)) return false;
      if (!s || !a) return true;
      std::string_view str = s->string, sub = a->string;
      if (e.fn == Fn::kIndexOf) {
        auto pos = str.find(sub);
        out.push_back(Val::intVal(pos == std::string_view::npos ? -1
                                                                : charCount(str.substr(0, pos))));
      } else if (e.fn == Fn::kStartsWith) {
        out.push_back(Val::boolVal(str.starts_with(sub)));
      } else if (e.fn == Fn::kEndsWith) {
        out.push_back(Val::boolVal(str.ends_with(sub)));
      } else {
        out.push_back(Val::boolVal(str.find(sub) != std::string_view::npos));
      }
      return true;
    }
    case Fn::kReplace: {
      const Val *s, *pattern, *with;
      Val patternStorage, withStorage;
      if (!inputString(input, s)) return false;
      if (!argOf(e, 0, c, Kind::kString, patternStorage, pattern)) return false;
      if (!argOf(e, 1, c, Kind::kString, withStorage, with)) return false;
      if (!s || !pattern || !with) return true;
      const std::string_view str = s->string, from = pattern->string, to = with->string;
      if (from.empty()) return false;  // around every character: left to the engine
      std::string replaced;
      std::size_t start = 0;
      for (auto pos = str.find(from); pos != std::string_view::npos; pos = str.find(from, start)) {
        replaced.append(str.substr(start, pos - start)).append(to);
        start = pos + from.size();
      }
      replaced.append(str.substr(start));
      char* buf = static_cast<char*>(c.scope.memory->allocate(replaced.size() + 1, 1));
      std::copy(replaced.begin(), replaced.end(), buf);
      out.push_back(Val::str(std::string_view(buf, replaced.size())));
      return true;
    }
    case Fn::kSubstring: {
      const Val *s, *start;
      Val storage;
      if (!inputString(input, s)) return false;
      if (!argOf(e, 0, c, Kind::kInteger, storage, start)) return false;
      if (!s || !start) return true;
      std::string_view str = s->string;
      const std::int64_t chars = charCount(str);
      const std::int64_t from = start->integer;
      if (from < 0 || from >= chars) return true;
      std::int64_t len = chars - from;
      if (e.nkids == 2) {
        const Val* l;
        Val lengthStorage;
        if (!argOf(e, 1, c, Kind::kInteger, lengthStorage, l)) return false;
        if (l) len = std::max<std::int64_t>(0, std::min(len, l->integer));
      }
      const std::size_t b = charOffset(str, from);
      const std::size_t end = charOffset(str, from + len);
      out.push_back(Val::str(str.substr(b, end - b)));
      return true;
    }
    case Fn::kToDate:
    case Fn::kToString: {
      const Val* v;
      if (!single(input, v)) return false;
      if (!v) return true;
      if (e.fn == Fn::kToDate) {
        if (v->kind == Kind::kBoolean || v->kind == Kind::kInteger) return true;
        if (v->kind != Kind::kString) return false;
        if (fhirpath::Temporal::parse(v->string, fhirpath::TemporalKind::kDate) ||
            fhirpath::Temporal::parse(v->string, fhirpath::TemporalKind::kDateTime)) {
          Val date;
          date.kind = Kind::kOther;
          out.push_back(date);
        }
        return true;
      }
      std::optional<std::string_view> text;
      if (!planText(c.scope, *v, text) || !text) return false;
      out.push_back(Val::str(*text));
      return true;
    }
  }
  return false;
}

bool eval(const PlanNode& e, In input, const Ctx& c, Vals& out) {
  switch (e.op) {
    case Op::kLiteral:
      out.push_back(e.items[0]);
      return true;
    case Op::kConst:
      out.insert(out.end(), e.items, e.items + e.length);
      return true;
    case Op::kEmpty:
      return true;
    case Op::kMember:
      return member(e.name(), e.slot, input, c.scope, out);
    case Op::kThis:
      out.insert(out.end(), c.thisColl.begin(), c.thisColl.end());
      return true;
    case Op::kIndex:
      if (c.index) out.push_back(Val::intVal(*c.index));
      return true;
    case Op::kVariable: {
      const Slot& s = (*c.scope.slots)[static_cast<std::size_t>(e.slot)];
      if (!s.defined) return false;
      out.insert(out.end(), s.items, s.items + s.size);
      return true;
    }
    case Op::kDot: {
      Vals left(c.scope.memory);
      if (!eval(*e.kid(0), input, c, left)) return false;
      return eval(*e.kid(1), left, c, out);
    }
    case Op::kIndexer: {
      Vals base(c.scope.memory), idx(c.scope.memory);
      if (!eval(*e.kid(0), input, c, base)) return false;
      if (!eval(*e.kid(1), c.thisColl, c, idx)) return false;
      const Val* i;
      if (!single(idx, i)) return false;
      if (!i) return true;
      if (i->kind != Kind::kInteger) return false;
      if (i->integer >= 0 && i->integer < static_cast<std::int64_t>(base.size()))
        out.push_back(base[static_cast<std::size_t>(i->integer)]);
      return true;
    }
    case Op::kNegate: {
      Vals v(c.scope.memory);
      if (!eval(*e.kid(0), input, c, v)) return false;
      const Val* x;
      if (!single(v, x)) return false;
      if (!x) return true;
      if (x->kind != Kind::kInteger || x->integer == std::numeric_limits<std::int64_t>::min())
        return false;
      out.push_back(Val::intVal(-x->integer));
      return true;
    }
    case Op::kBinary:
      return binary(e, input, c, out);
    case Op::kFunction:
      return function(e, input, c, out);
  }
  return false;
}

}  // namespace

std::optional<Val> Val::fromJson(const rapidjson::Value& json) {
  if (json.IsNull()) return std::nullopt;
  Val v;
  setJson(v, json);
  return v;
}


int SlotTable::id(std::string_view name) {
  auto it = ids_.find(name);
  if (it != ids_.end()) return it->second;
  const int id = static_cast<int>(ids_.size());
  ids_.emplace(std::string(name), id);
  return id;
}

namespace {

// Whether `s` holds a byte from 'A' to 'Z', eight bytes at a time: with each byte's high bit set
// first, subtracting 'A' (or 'Z' + 1) from every byte borrows nothing from its neighbour, and a
// byte is a capital when the first leaves its high bit set and the second clears it (bytes from
// 0x80 up are not).
bool hasCapital(std::string_view s) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    const std::uint64_t high = w | kHigh;
    if (((high - kOnes * 'A') & ~(high - kOnes * ('Z' + 1)) & ~w & kHigh) != 0) return true;
  }
  for (; i < s.size(); ++i) {
    if (s[i] >= 'A' && s[i] <= 'Z') return true;
  }
  return false;
}

}  // namespace

bool PlanScope::findPlain(const rapidjson::Value& object) const {
  for (std::size_t i = 0; i < plainCount; ++i) {
    if (plain[i] == &object) {
      lastPlain = &object;
      return true;
    }
  }
  for (std::size_t i = 0; i < mixedCount; ++i) {
    if (mixed[i] == &object) return false;
  }
  bool yes = true;
  for (auto m = object.MemberBegin(); m != object.MemberEnd() && yes; ++m) {
    std::string_view key(m->name.GetString(), m->name.GetStringLength());
    if (key.starts_with('_') || key == "resourceType" || hasCapital(key)) yes = false;
  }
  if (yes) lastPlain = &object;
  if (yes && plainCount < std::size(plain)) plain[plainCount++] = &object;
  if (!yes && mixedCount < std::size(mixed)) mixed[mixedCount++] = &object;
  return yes;
}

std::string_view PlanScope::keep(std::string_view s) const {
  char* buf = static_cast<char*>(memory->allocate(s.size() + 1, 1));
  if (!s.empty()) std::memcpy(buf, s.data(), s.size());
  return std::string_view(buf, s.size());
}

Plan::Plan(std::unique_ptr<PlanExpr> root, std::pmr::memory_resource* memory)
    : root_(std::move(root)), memory_(memory) {
  // One block of `memory`: the nodes, then the literal items, then the names.
  std::size_t items = 0, textBytes = 0;
  auto count = [&](const PlanExpr& e, const auto& self) -> void {
    ++nodeCount_;
    if (e.op == Op::kLiteral) items += 1;
    if (e.op == Op::kConst) items += e.consts.size();
    if (e.op == Op::kMember) textBytes += e.text.size();
    for (const auto& k : e.kids) self(*k, self);
  };
  count(*root_, count);  // at most kMaxPlanNodes (compile()), so offsets fit in kidOffset
  bytes_ = sizeof(PlanNode) * nodeCount_ + sizeof(Val) * items + textBytes;
  block_ = memory_->allocate(bytes_, alignof(PlanNode));
  static_assert(sizeof(PlanNode) % alignof(Val) == 0 && alignof(Val) <= alignof(PlanNode));
  nodes_ = static_cast<PlanNode*>(block_);
  Val* item = reinterpret_cast<Val*>(nodes_ + nodeCount_);
  char* text = reinterpret_cast<char*>(item + items);
  std::size_t next = 0;
  auto lay = [&](const PlanExpr& e, const auto& self) -> const PlanNode* {
    PlanNode* n = std::construct_at(nodes_ + next++);
    n->op = e.op;
    n->bin = e.bin;
    n->fn = e.fn;
    n->slot = e.slot;
    if (e.op == Op::kMember) {
      if (!e.text.empty()) std::memcpy(text, e.text.data(), e.text.size());
      n->text = text;
      n->length = static_cast<std::uint32_t>(e.text.size());
      text += e.text.size();
    } else if (e.op == Op::kLiteral || e.op == Op::kConst) {
      // A string literal's item views the compiled tree's text, as the constants' items do.
      const Val* first = e.op == Op::kLiteral ? &e.literal : e.consts.data();
      const std::size_t size = e.op == Op::kLiteral ? 1 : e.consts.size();
      n->items = item;
      n->length = static_cast<std::uint32_t>(size);
      for (std::size_t i = 0; i < size; ++i) std::construct_at(item++, first[i]);
    }
    for (const auto& k : e.kids) {
      const PlanNode* kid = self(*k, self);
      n->kidOffset[n->nkids++] = static_cast<std::uint16_t>(kid - n);
    }
    return n;
  };
  lay(*root_, lay);
  // The plans most expressions of a mapping are, evaluated without the tree walk.
  const PlanNode& top = nodes_[0];
  if (nodeCount_ == 1 && top.op == Op::kMember) shape_ = Shape::kMember;
  if (nodeCount_ == 1 && top.op == Op::kVariable) shape_ = Shape::kVariable;
  if (nodeCount_ == 3 && top.op == Op::kDot) {
    const PlanNode& left = *top.kid(0);
    const PlanNode& right = *top.kid(1);
    if (left.op == Op::kMember && right.op == Op::kFunction && right.fn == Fn::kTrim)
      shape_ = Shape::kMemberTrim;
    if (left.op == Op::kVariable && right.op == Op::kMember) shape_ = Shape::kVariableMember;
  }
}

int Plan::variable() const { return shape_ == Shape::kVariable ? nodes_[0].slot : -1; }

Plan::~Plan() {
  static_assert(std::is_trivially_destructible_v<PlanNode> && std::is_trivially_destructible_v<Val>);
  memory_->deallocate(block_, bytes_, alignof(PlanNode));
}

std::shared_ptr<Plan> Plan::compile(const fhirpath::Expression& expr, SlotTable& slots,
                                    std::pmr::memory_resource* memory, SlotTable* names,
                                    bool capitalisedMembers) {
  if (!expr.root()) return nullptr;
  auto root = compileNode(*expr.root(), slots, names, capitalisedMembers);
  if (!root) return nullptr;
  std::size_t nodes = 0;
  auto count = [&](const PlanExpr& e, const auto& self) -> void {
    ++nodes;
    for (const auto& k : e.kids) self(*k, self);
  };
  count(*root, count);
  if (nodes > kMaxPlanNodes) return nullptr;  // the engine runs it
  if (!memory) memory = std::pmr::new_delete_resource();
  return std::allocate_shared<Plan>(std::pmr::polymorphic_allocator<Plan>(memory), std::move(root),
                                    memory);
}

bool Plan::readsSlot(int slot) const {
  auto reads = [slot](const PlanExpr& e, const auto& self) -> bool {
    if (e.op == Op::kVariable && e.slot == slot) return true;
    for (const auto& k : e.kids) {
      if (self(*k, self)) return true;
    }
    return false;
  };
  return reads(*root_, reads);
}

bool planBoolean(const Val* items, std::size_t size, std::optional<bool>& out) {
  out.reset();
  if (size == 0) return true;
  if (size > 1 || items[0].kind == Kind::kOther) return false;
  out = items[0].kind == Kind::kBoolean ? items[0].boolean : true;
  return true;
}

bool Plan::evaluate(const PlanScope& scope, Vals& out) const {
  const In focus(*scope.focus);
  // As eval() of the same nodes, without its walk (no function of these reads $this or $index).
  switch (shape_) {
    case Shape::kMember:  // name
      return member(nodes_[0].name(), nodes_[0].slot, focus, scope, out);
    case Shape::kMemberTrim: {  // name.trim()
      Vals v(scope.memory);
      if (!member(nodes_[1].name(), nodes_[1].slot, focus, scope, v)) return false;
      const Val* s;
      if (!inputString(v, s)) return false;
      if (s) out.push_back(Val::str(trimmed(s->string)));
      return true;
    }
    case Shape::kVariableMember: {  // %name.member
      const Slot& s = (*scope.slots)[static_cast<std::size_t>(nodes_[1].slot)];
      if (!s.defined) return false;
      return member(nodes_[2].name(), nodes_[2].slot, In(s.items, s.size), scope, out);
    }
    case Shape::kVariable:
    case Shape::kGeneral:
      break;
  }
  Ctx top{scope, focus, std::nullopt};
  return eval(*nodes_, focus, top, out);
}

bool Plan::evaluateBoolean(const PlanScope& scope, std::optional<bool>& out) const {
  Vals v(scope.memory);
  if (!evaluate(scope, v)) return false;
  return toBool(v, out);
}

bool planText(const PlanScope& scope, const Val& v, std::optional<std::string_view>& out) {
  out.reset();
  switch (v.kind) {
    case Kind::kString:
      out = v.string;
      return true;
    case Kind::kBoolean:
      out = v.boolean ? std::string_view("true") : std::string_view("false");
      return true;
    case Kind::kInteger: {
      char buf[24];
      int n = std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v.integer));
      out = scope.keep(std::string_view(buf, static_cast<std::size_t>(n)));
      return true;
    }
    case Kind::kJson:
      return v.json->IsObject() || v.json->IsArray();  // not a primitive: no text
    case Kind::kOther:
      if (!v.node) return false;
      if (auto text = fhirpath::toFhirPathString(*v.node)) out = scope.keep(*text);
      return true;
  }
  return false;
}

Val planValue(const fhirpath::Node& node) {
  Val other;
  other.kind = Kind::kOther;
  other.node = &node;
  switch (node.kind()) {
    case fhirpath::Node::Kind::kString:
      return Val::str(node.stringValue());
    case fhirpath::Node::Kind::kBoolean:
      return Val::boolVal(node.booleanValue());
    case fhirpath::Node::Kind::kInteger:
      return Val::intVal(node.integerValue());
    case fhirpath::Node::Kind::kElement: {
      other.element = true;
      if (!node.json() || node.primitiveExtension()) return other;
      if (fhirpath::jsonTypeName(*node.json()) != node.typeName()) return other;
      auto v = Val::fromJson(*node.json());
      return v ? *v : other;
    }
    default:
      return other;
  }
}

}  // namespace switchboard::mapping

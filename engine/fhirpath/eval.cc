// The FHIRPath evaluator: operators with three-valued logic and empty propagation, and the
// function library (calls dispatch on the number compile() gave the function). Thread-safety:
// evaluation reads the immutable syntax tree and documents; per-evaluation state lives on the
// stack; the cache of compiled regular expressions is shared under a mutex.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <mutex>
#include <regex>
#include <set>
#include <unordered_map>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "engine/fhirpath/internal.h"

namespace switchboard::fhirpath {

using detail::ExprKind;
using detail::ExprNode;

namespace {

using R = Result<Collection>;

struct Ctx {
  const Environment* env = nullptr;
  Node thisNode;
  bool hasThis = false;
  std::optional<std::int64_t> index;
  const Collection* total = nullptr;
  Collection thisColl;  // [$this], or the evaluation's focus at the top level
  Node resource, rootResource, context;
  bool hasResource = false;
  std::chrono::system_clock::time_point now;
};

std::unexpected<Error> execError(const ExprNode& at, const std::string& msg) {
  std::string loc = std::to_string(at.line) + ":" + std::to_string(at.column);
  return std::unexpected<Error>(Error(ErrorCode::kInvalid, msg + " (at " + loc + ")", loc));
}

R eval(const ExprNode& n, const Collection& input, const Ctx& ctx);

Collection one(Node n) { return Collection{std::move(n)}; }
Collection boolColl(bool b) { return one(Node::boolean(b)); }

std::optional<Node> sysValue(const Node& n) { return n.toSystemValue(); }

bool isNumber(const Node& n) {
  return n.kind() == Node::Kind::kInteger || n.kind() == Node::Kind::kDecimal;
}

Decimal toDec(const Node& n) {
  return n.kind() == Node::Kind::kInteger ? Decimal::fromInt(n.integerValue()) : n.decimalValue();
}

// Single item or empty; more than one is an execution error.
Result<std::optional<Node>> singleton(const Collection& c, const ExprNode& at, const char* what) {
  if (c.empty()) return std::optional<Node>();
  if (c.size() > 1)
    return execError(
        at, std::string(what) + " expects a single item but got " + std::to_string(c.size()));
  return std::optional<Node>(c[0]);
}

// singleton() for a function's input (`suffix` ""), or its argument (" argument"): the label is
// built only for the error.
Result<std::optional<Node>> singletonOf(const Collection& c, const ExprNode& fn,
                                        const char* suffix = "") {
  if (c.size() <= 1) return c.empty() ? std::optional<Node>() : std::optional<Node>(c[0]);
  return singleton(c, fn, (fn.name + "()" + suffix).c_str());
}

// Singleton evaluation to a boolean (FHIRPath 4.5): one boolean -> it; one other item -> true.
Result<std::optional<bool>> toBool(const Collection& c, const ExprNode& at, const char* what) {
  if (c.empty()) return std::optional<bool>();
  if (c.size() > 1)
    return execError(at, std::string(what) + " expects a single boolean but got " +
                             std::to_string(c.size()) + " items");
  auto v = sysValue(c[0]);
  if (v && v->kind() == Node::Kind::kBoolean) return std::optional<bool>(v->booleanValue());
  return std::optional<bool>(true);
}

// ---------------------------------------------------------------- equality

bool jsonEqual(const rapidjson::Value& a, const rapidjson::Value& b) { return a == b; }

std::string normalizeWs(const std::string& s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// Equality of two items: true/false, or empty when undecidable (date precision, units).
std::optional<bool> itemEqual(const Node& a0, const Node& b0) {
  auto a = sysValue(a0), b = sysValue(b0);
  if (!a || !b) {
    if (a0.isElement() && b0.isElement() && a0.json() && b0.json() && !a && !b)
      return jsonEqual(*a0.json(), *b0.json());
    return false;
  }
  if (isNumber(*a) && isNumber(*b)) return toDec(*a).compare(toDec(*b)) == 0;
  if (a->kind() != b->kind()) {
    return false;
  }
  switch (a->kind()) {
    case Node::Kind::kBoolean:
      return a->booleanValue() == b->booleanValue();
    case Node::Kind::kString:
      return a->stringValue() == b->stringValue();
    case Node::Kind::kTemporal: {
      const Temporal &ta = a->temporalValue(), &tb = b->temporalValue();
      if ((ta.kind == TemporalKind::kTime) != (tb.kind == TemporalKind::kTime)) return false;
      auto c = temporalCompare(ta, tb);
      if (!c) return std::nullopt;
      return *c == 0;
    }
    case Node::Kind::kQuantity: {
      auto c = quantityCompare(a->quantityValue(), b->quantityValue(), false);
      if (!c) return std::nullopt;
      return *c == 0;
    }
    default:
      return false;
  }
}

bool itemEquivalent(const Node& a0, const Node& b0) {
  auto a = sysValue(a0), b = sysValue(b0);
  if (!a || !b) {
    if (a0.isElement() && b0.isElement() && a0.json() && b0.json() && !a && !b)
      return jsonEqual(*a0.json(), *b0.json());
    return false;
  }
  if (isNumber(*a) && isNumber(*b)) {
    Decimal x = toDec(*a), y = toDec(*b);
    int s = std::min(decNormalize(x).scale(), decNormalize(y).scale());
    return decRound(x, s).compare(decRound(y, s)) == 0;
  }
  if (a->kind() != b->kind()) return false;
  switch (a->kind()) {
    case Node::Kind::kBoolean:
      return a->booleanValue() == b->booleanValue();
    case Node::Kind::kString:
      return normalizeWs(a->stringValue()) == normalizeWs(b->stringValue());
    case Node::Kind::kTemporal: {
      const Temporal &ta = a->temporalValue(), &tb = b->temporalValue();
      if ((ta.kind == TemporalKind::kTime) != (tb.kind == TemporalKind::kTime)) return false;
      auto c = temporalCompare(ta, tb);
      return c && *c == 0;
    }
    case Node::Kind::kQuantity: {
      auto c = quantityCompare(a->quantityValue(), b->quantityValue(), true);
      return c && *c == 0;
    }
    default:
      return false;
  }
}

bool contains(const Collection& c, const Node& item) {
  for (const Node& x : c) {
    auto e = itemEqual(x, item);
    if (e && *e) return true;
  }
  return false;
}

Collection distinct(const Collection& c) {
  Collection out;
  for (const Node& n : c)
    if (!contains(out, n)) out.push_back(n);
  return out;
}

// ---------------------------------------------------------------- comparison

Result<std::optional<int>> compareItems(const Node& a0, const Node& b0, const ExprNode& at) {
  auto a = sysValue(a0), b = sysValue(b0);
  if (!a || !b) return execError(at, "cannot compare " + a0.typeName() + " with " + b0.typeName());
  if (isNumber(*a) && isNumber(*b)) return std::optional<int>(toDec(*a).compare(toDec(*b)));
  if (a->kind() == Node::Kind::kString && b->kind() == Node::Kind::kString) {
    int c = a->stringValue().compare(b->stringValue());
    return std::optional<int>(c < 0 ? -1 : c > 0 ? 1 : 0);
  }
  if (a->kind() == Node::Kind::kTemporal && b->kind() == Node::Kind::kTemporal) {
    const Temporal &ta = a->temporalValue(), &tb = b->temporalValue();
    if ((ta.kind == TemporalKind::kTime) != (tb.kind == TemporalKind::kTime))
      return execError(at, "cannot compare " + a->typeName() + " with " + b->typeName());
    return temporalCompare(ta, tb);
  }
  if (a->kind() == Node::Kind::kQuantity && b->kind() == Node::Kind::kQuantity)
    return quantityCompare(a->quantityValue(), b->quantityValue(), false);
  return execError(at, "cannot compare " + a->typeName() + " with " + b->typeName());
}

// ---------------------------------------------------------------- arithmetic

Result<Collection> arithmetic(const std::string& op, const Node& a0, const Node& b0,
                              const ExprNode& at) {
  auto a = sysValue(a0), b = sysValue(b0);
  if (!a || !b) return execError(at, "operator " + op + " cannot take " + a0.typeName());
  auto ka = a->kind(), kb = b->kind();
  if (op == "&") {
    return execError(at, "unreachable");
  }
  if (ka == Node::Kind::kString && kb == Node::Kind::kString) {
    if (op == "+") return one(Node::string(a->stringValue() + b->stringValue()));
    return execError(at, "operator " + op + " is not defined for String");
  }
  if (isNumber(*a) && isNumber(*b)) {
    bool ints = ka == Node::Kind::kInteger && kb == Node::Kind::kInteger;
    if (ints && (op == "+" || op == "-" || op == "*" || op == "div" || op == "mod")) {
      std::int64_t x = a->integerValue(), y = b->integerValue(), r = 0;
      if (op == "+") {
        if (__builtin_add_overflow(x, y, &r)) return Collection{};
      } else if (op == "-") {
        if (__builtin_sub_overflow(x, y, &r)) return Collection{};
      } else if (op == "*") {
        if (__builtin_mul_overflow(x, y, &r)) return Collection{};
      } else if (op == "div") {
        if (y == 0) return Collection{};
        r = x / y;
      } else {
        if (y == 0) return Collection{};
        r = x % y;
      }
      return one(Node::integer(r));
    }
    Decimal x = toDec(*a), y = toDec(*b);
    if (op == "+") return one(Node::decimal(decAdd(x, y)));
    if (op == "-") return one(Node::decimal(decSub(x, y)));
    if (op == "*") {
      auto r = decMul(x, y);
      if (!r) return Collection{};
      return one(Node::decimal(*r));
    }
    if (op == "/") {
      auto r = decDiv(x, y);
      if (!r) return Collection{};
      return one(Node::decimal(*r));
    }
    if (op == "div") {
      auto r = decDiv(x, y);
      if (!r) return Collection{};
      auto t = decToInt64(decTruncate(*r));
      if (!t) return Collection{};
      return one(Node::integer(*t));
    }
    if (op == "mod") {
      if (decIsZero(y)) return Collection{};
      auto q = decDiv(x, y);
      Decimal t = decTruncate(*q);
      auto prod = decMul(t, y);
      if (!prod) return Collection{};
      return one(Node::decimal(decSub(x, *prod)));
    }
  }
  if (ka == Node::Kind::kTemporal && kb == Node::Kind::kQuantity && (op == "+" || op == "-")) {
    Quantity q = b->quantityValue();
    std::string unit;
    if (auto cal = calendarUnit(q.unit)) {
      unit = *cal;
    } else {
      static const std::pair<const char*, const char*> kUcum[] = {
          {"wk", "week"},    {"d", "day"},    {"h", "hour"},
          {"min", "minute"}, {"s", "second"}, {"ms", "millisecond"}};
      for (auto& [u, w] : kUcum)
        if (q.unit == u) unit = w;
      if (unit.empty())
        return execError(at, "cannot add a quantity in '" + q.unit + "' to a date/time");
    }
    Decimal amount = op == "-" ? decNeg(q.value) : q.value;
    auto r = temporalAdd(a->temporalValue(), amount, unit);
    if (!r) return execError(at, "date/time arithmetic out of range");
    return one(Node::temporal(*r));
  }
  if (ka == Node::Kind::kQuantity && kb == Node::Kind::kQuantity) {
    const Quantity &qa = a->quantityValue(), &qb = b->quantityValue();
    if (op == "+" || op == "-") {
      if (qa.unit == qb.unit) {
        Quantity r{op == "+" ? decAdd(qa.value, qb.value) : decSub(qa.value, qb.value), qa.unit};
        return one(Node::quantity(r));
      }
      auto converted = quantityConvert(qb, qa.unit);
      if (!converted) return Collection{};
      Quantity r{
          op == "+" ? decAdd(qa.value, converted->value) : decSub(qa.value, converted->value),
          qa.unit};
      return one(Node::quantity(r));
    }
    if (op == "*" && qa.unit != qb.unit) {
      auto base = baseUnitOf(qa.unit);
      if (base && baseUnitOf(qb.unit) == base) {
        auto x = quantityConvert(qa, *base), y = quantityConvert(qb, *base);
        if (x && y) {
          auto v = decMul(x->value, y->value);
          if (!v) return Collection{};
          return one(Node::quantity(Quantity{*v, *base + "2"}));
        }
      }
    }
    if (op == "*") {
      auto v = decMul(qa.value, qb.value);
      if (!v) return Collection{};
      std::string unit = qa.unit == "1"   ? qb.unit
                         : qb.unit == "1" ? qa.unit
                                          : qa.unit + "." + qb.unit;
      return one(Node::quantity(Quantity{*v, unit}));
    }
    if (op == "/") {
      auto v = decDiv(qa.value, qb.value);
      if (!v) return Collection{};
      std::string unit = qa.unit == qb.unit ? "1" : qa.unit + "/" + qb.unit;
      return one(Node::quantity(Quantity{*v, unit}));
    }
  }
  if (ka == Node::Kind::kQuantity && isNumber(*b) && (op == "*" || op == "/")) {
    const Quantity& q = a->quantityValue();
    auto v = op == "*" ? decMul(q.value, toDec(*b)) : decDiv(q.value, toDec(*b));
    if (!v) return Collection{};
    return one(Node::quantity(Quantity{*v, q.unit}));
  }
  if (isNumber(*a) && kb == Node::Kind::kQuantity && op == "*") {
    const Quantity& q = b->quantityValue();
    auto v = decMul(q.value, toDec(*a));
    if (!v) return Collection{};
    return one(Node::quantity(Quantity{*v, q.unit}));
  }
  return execError(
      at, "operator " + op + " is not defined for " + a->typeName() + " and " + b->typeName());
}

// ---------------------------------------------------------------- conversions

std::optional<Node> convertToBoolean(const Node& v) {
  switch (v.kind()) {
    case Node::Kind::kBoolean:
      return v;
    case Node::Kind::kInteger:
      if (v.integerValue() == 1) return Node::boolean(true);
      if (v.integerValue() == 0) return Node::boolean(false);
      return std::nullopt;
    case Node::Kind::kDecimal: {
      int c1 = v.decimalValue().compare(Decimal::fromInt(1));
      int c0 = v.decimalValue().compare(Decimal::fromInt(0));
      if (c1 == 0) return Node::boolean(true);
      if (c0 == 0) return Node::boolean(false);
      return std::nullopt;
    }
    case Node::Kind::kString: {
      std::string s = v.stringValue();
      for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (s == "true" || s == "t" || s == "yes" || s == "y" || s == "1" || s == "1.0")
        return Node::boolean(true);
      if (s == "false" || s == "f" || s == "no" || s == "n" || s == "0" || s == "0.0")
        return Node::boolean(false);
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

std::optional<Node> convertToInteger(const Node& v) {
  switch (v.kind()) {
    case Node::Kind::kInteger:
      return v;
    case Node::Kind::kBoolean:
      return Node::integer(v.booleanValue() ? 1 : 0);
    case Node::Kind::kString: {
      const std::string& s = v.stringValue();
      std::size_t i = (s.size() > 0 && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
      if (i >= s.size()) return std::nullopt;
      for (std::size_t k = i; k < s.size(); ++k)
        if (!std::isdigit(static_cast<unsigned char>(s[k]))) return std::nullopt;
      errno = 0;
      long long n = std::strtoll(s.c_str(), nullptr, 10);
      if (errno == ERANGE) return std::nullopt;
      return Node::integer(n);
    }
    default:
      return std::nullopt;
  }
}

std::optional<Node> convertToDecimal(const Node& v) {
  switch (v.kind()) {
    case Node::Kind::kDecimal:
      return v;
    case Node::Kind::kInteger:
      return Node::decimal(Decimal::fromInt(v.integerValue()));
    case Node::Kind::kBoolean:
      return Node::decimal(Decimal::fromInt(v.booleanValue() ? 1 : 0));
    case Node::Kind::kString: {
      auto d = Decimal::parse(v.stringValue());
      if (!d) return std::nullopt;
      return Node::decimal(*d);
    }
    default:
      return std::nullopt;
  }
}

std::optional<Node> convertToString(const Node& v) {
  auto s = toFhirPathString(v);
  if (!s) return std::nullopt;
  return Node::string(*s);
}

std::optional<Node> convertToTemporal(const Node& v, TemporalKind kind) {
  if (v.kind() == Node::Kind::kTemporal) {
    Temporal t = v.temporalValue();
    if (t.kind == kind) return v;
    if (kind == TemporalKind::kDateTime && t.kind == TemporalKind::kDate) {
      t.kind = TemporalKind::kDateTime;
      return Node::temporal(t);
    }
    if (kind == TemporalKind::kDate && t.kind == TemporalKind::kDateTime) {
      t.kind = TemporalKind::kDate;
      if (t.precision > Precision::kDay) t.precision = Precision::kDay;
      t.tzOffsetMinutes.reset();
      return Node::temporal(t);
    }
    return std::nullopt;
  }
  if (v.kind() != Node::Kind::kString) return std::nullopt;
  std::string s = v.stringValue();
  if (kind == TemporalKind::kTime && s.starts_with("T")) s = s.substr(1);
  auto t = Temporal::parse(s, kind);
  if (!t && kind == TemporalKind::kDateTime) {
    std::string x = s;
    if (!x.empty() && x.back() == 'T') x.pop_back();
    t = Temporal::parse(x, TemporalKind::kDate);
    if (t) t->kind = TemporalKind::kDateTime;
  }
  if (!t && kind == TemporalKind::kDate) {
    // A dateTime string converts to its date part.
    auto dt = Temporal::parse(s, TemporalKind::kDateTime);
    if (dt) {
      dt->kind = TemporalKind::kDate;
      if (dt->precision > Precision::kDay) dt->precision = Precision::kDay;
      dt->tzOffsetMinutes.reset();
      t = dt;
    }
  }
  if (!t) return std::nullopt;
  return Node::temporal(*t);
}

std::optional<Node> convertToQuantity(const Node& v) {
  switch (v.kind()) {
    case Node::Kind::kQuantity:
      return v;
    case Node::Kind::kInteger:
    case Node::Kind::kDecimal:
      return Node::quantity(Quantity{toDec(v), "1"});
    case Node::Kind::kBoolean:
      return Node::quantity(Quantity{Decimal::fromInt(v.booleanValue() ? 1 : 0), "1"});
    case Node::Kind::kString: {
      std::string s = v.stringValue();
      std::size_t i = 0;
      while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
      std::size_t start = i;
      if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
      while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
      auto num = Decimal::parse(s.substr(start, i - start));
      if (!num) return std::nullopt;
      while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
      std::string rest = s.substr(i);
      while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.back())))
        rest.pop_back();
      if (rest.empty()) return Node::quantity(Quantity{*num, "1"});
      if (rest.size() >= 2 && rest.front() == '\'' && rest.back() == '\'')
        return Node::quantity(Quantity{*num, rest.substr(1, rest.size() - 2)});
      if (calendarUnit(rest)) return Node::quantity(Quantity{*num, rest});
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

// ---------------------------------------------------------------- functions

// Every function of the library, numbered: compile() stores the number in the syntax tree, so a
// call dispatches on it, not on the name.
enum class Fn : int {
  kEmpty,
  kExists,
  kAll,
  kAllTrue,
  kAnyTrue,
  kAllFalse,
  kAnyFalse,
  kSubsetOf,
  kSupersetOf,
  kCount,
  kDistinct,
  kIsDistinct,
  kWhere,
  kSelect,
  kRepeat,
  kOfType,
  kSingle,
  kFirst,
  kLast,
  kTail,
  kSkip,
  kTake,
  kIntersect,
  kExclude,
  kUnion,
  kCombine,
  kIif,
  kToBoolean,
  kConvertsToBoolean,
  kToInteger,
  kConvertsToInteger,
  kToDecimal,
  kConvertsToDecimal,
  kToString,
  kConvertsToString,
  kToDate,
  kConvertsToDate,
  kToDateTime,
  kConvertsToDateTime,
  kToTime,
  kConvertsToTime,
  kToQuantity,
  kConvertsToQuantity,
  kIndexOf,
  kLastIndexOf,
  kSubstring,
  kStartsWith,
  kEndsWith,
  kContains,
  kUpper,
  kLower,
  kReplace,
  kMatches,
  kMatchesFull,
  kReplaceMatches,
  kLength,
  kToChars,
  kTrim,
  kSplit,
  kJoin,
  kEncode,
  kDecode,
  kEscape,
  kUnescape,
  kAbs,
  kCeiling,
  kExp,
  kFloor,
  kLn,
  kLog,
  kPower,
  kRound,
  kSqrt,
  kTruncate,
  kChildren,
  kDescendants,
  kTrace,
  kNow,
  kTimeOfDay,
  kToday,
  kIs,
  kAs,
  kAggregate,
  kExtension,
  kHasValue,
  kGetValue,
  kResolve,
  kMemberOf,
  kConformsTo,
  kHtmlChecks,
  kHtmlchecks,
  kNot,
  kType,
  kSort,
  kLowBoundary,
  kHighBoundary,
  kPrecision,
  kComparable,
};

struct FnSpec {
  int minArgs, maxArgs;
  Fn id;
};

const std::unordered_map<std::string, FnSpec>& functionTable() {
  static const std::unordered_map<std::string, FnSpec> kTable = {
      {"empty", {0, 0, Fn::kEmpty}},
      {"exists", {0, 1, Fn::kExists}},
      {"all", {1, 1, Fn::kAll}},
      {"allTrue", {0, 0, Fn::kAllTrue}},
      {"anyTrue", {0, 0, Fn::kAnyTrue}},
      {"allFalse", {0, 0, Fn::kAllFalse}},
      {"anyFalse", {0, 0, Fn::kAnyFalse}},
      {"subsetOf", {1, 1, Fn::kSubsetOf}},
      {"supersetOf", {1, 1, Fn::kSupersetOf}},
      {"count", {0, 0, Fn::kCount}},
      {"distinct", {0, 0, Fn::kDistinct}},
      {"isDistinct", {0, 0, Fn::kIsDistinct}},
      {"where", {1, 1, Fn::kWhere}},
      {"select", {1, 1, Fn::kSelect}},
      {"repeat", {1, 1, Fn::kRepeat}},
      {"ofType", {1, 1, Fn::kOfType}},
      {"single", {0, 0, Fn::kSingle}},
      {"first", {0, 0, Fn::kFirst}},
      {"last", {0, 0, Fn::kLast}},
      {"tail", {0, 0, Fn::kTail}},
      {"skip", {1, 1, Fn::kSkip}},
      {"take", {1, 1, Fn::kTake}},
      {"intersect", {1, 1, Fn::kIntersect}},
      {"exclude", {1, 1, Fn::kExclude}},
      {"union", {1, 1, Fn::kUnion}},
      {"combine", {1, 1, Fn::kCombine}},
      {"iif", {2, 3, Fn::kIif}},
      {"toBoolean", {0, 0, Fn::kToBoolean}},
      {"convertsToBoolean", {0, 0, Fn::kConvertsToBoolean}},
      {"toInteger", {0, 0, Fn::kToInteger}},
      {"convertsToInteger", {0, 0, Fn::kConvertsToInteger}},
      {"toDecimal", {0, 0, Fn::kToDecimal}},
      {"convertsToDecimal", {0, 0, Fn::kConvertsToDecimal}},
      {"toString", {0, 0, Fn::kToString}},
      {"convertsToString", {0, 0, Fn::kConvertsToString}},
      {"toDate", {0, 0, Fn::kToDate}},
      {"convertsToDate", {0, 0, Fn::kConvertsToDate}},
      {"toDateTime", {0, 0, Fn::kToDateTime}},
      {"convertsToDateTime", {0, 0, Fn::kConvertsToDateTime}},
      {"toTime", {0, 0, Fn::kToTime}},
      {"convertsToTime", {0, 0, Fn::kConvertsToTime}},
      {"toQuantity", {0, 1, Fn::kToQuantity}},
      {"convertsToQuantity", {0, 1, Fn::kConvertsToQuantity}},
      {"indexOf", {1, 1, Fn::kIndexOf}},
      {"lastIndexOf", {1, 1, Fn::kLastIndexOf}},
      {"substring", {1, 2, Fn::kSubstring}},
      {"startsWith", {1, 1, Fn::kStartsWith}},
      {"endsWith", {1, 1, Fn::kEndsWith}},
      {"contains", {1, 1, Fn::kContains}},
      {"upper", {0, 0, Fn::kUpper}},
      {"lower", {0, 0, Fn::kLower}},
      {"replace", {2, 2, Fn::kReplace}},
      {"matches", {1, 1, Fn::kMatches}},
      {"matchesFull", {1, 1, Fn::kMatchesFull}},
      {"replaceMatches", {2, 2, Fn::kReplaceMatches}},
      {"length", {0, 0, Fn::kLength}},
      {"toChars", {0, 0, Fn::kToChars}},
      {"trim", {0, 0, Fn::kTrim}},
      {"split", {1, 1, Fn::kSplit}},
      {"join", {0, 1, Fn::kJoin}},
      {"encode", {1, 1, Fn::kEncode}},
      {"decode", {1, 1, Fn::kDecode}},
      {"escape", {1, 1, Fn::kEscape}},
      {"unescape", {1, 1, Fn::kUnescape}},
      {"abs", {0, 0, Fn::kAbs}},
      {"ceiling", {0, 0, Fn::kCeiling}},
      {"exp", {0, 0, Fn::kExp}},
      {"floor", {0, 0, Fn::kFloor}},
      {"ln", {0, 0, Fn::kLn}},
      {"log", {1, 1, Fn::kLog}},
      {"power", {1, 1, Fn::kPower}},
      {"round", {0, 1, Fn::kRound}},
      {"sqrt", {0, 0, Fn::kSqrt}},
      {"truncate", {0, 0, Fn::kTruncate}},
      {"children", {0, 0, Fn::kChildren}},
      {"descendants", {0, 0, Fn::kDescendants}},
      {"trace", {1, 2, Fn::kTrace}},
      {"now", {0, 0, Fn::kNow}},
      {"timeOfDay", {0, 0, Fn::kTimeOfDay}},
      {"today", {0, 0, Fn::kToday}},
      {"is", {1, 1, Fn::kIs}},
      {"as", {1, 1, Fn::kAs}},
      {"aggregate", {1, 2, Fn::kAggregate}},
      {"extension", {1, 1, Fn::kExtension}},
      {"hasValue", {0, 0, Fn::kHasValue}},
      {"getValue", {0, 0, Fn::kGetValue}},
      {"resolve", {0, 0, Fn::kResolve}},
      {"memberOf", {1, 1, Fn::kMemberOf}},
      {"conformsTo", {1, 1, Fn::kConformsTo}},
      {"htmlChecks", {0, 0, Fn::kHtmlChecks}},
      {"htmlchecks", {0, 0, Fn::kHtmlchecks}},
      {"not", {0, 0, Fn::kNot}},
      {"type", {0, 0, Fn::kType}},
      {"sort", {0, 8, Fn::kSort}},
      {"lowBoundary", {0, 1, Fn::kLowBoundary}},
      {"highBoundary", {0, 1, Fn::kHighBoundary}},
      {"precision", {0, 0, Fn::kPrecision}},
      {"comparable", {1, 1, Fn::kComparable}},
  };
  return kTable;
}

// The number of a function the parser did not number (a node built by hand).
Fn functionId(const std::string& name) {
  auto it = functionTable().find(name);
  return it == functionTable().end() ? static_cast<Fn>(-1) : it->second.id;
}

// Evaluates argument `i` (a non-lambda argument) against the enclosing $this.
R arg(const ExprNode& fn, std::size_t i, const Ctx& ctx) {
  return eval(*fn.children[i], ctx.thisColl, ctx);
}

// Single system-value argument (or empty).
Result<std::optional<Node>> argValue(const ExprNode& fn, std::size_t i, const Ctx& ctx) {
  auto c = arg(fn, i, ctx);
  if (!c) return std::unexpected(c.error());
  auto s = singletonOf(*c, fn, " argument");
  if (!s) return std::unexpected(s.error());
  if (!*s) return std::optional<Node>();
  auto v = sysValue(**s);
  if (!v) return execError(fn, fn.name + "() argument must be a primitive value");
  return std::optional<Node>(*v);
}

// Evaluates `body` for each item of `input` with $this / $index set.
template <typename F>
Result<bool> forEachItem(const ExprNode& body, const Collection& input, const Ctx& ctx, F&& f) {
  for (std::size_t i = 0; i < input.size(); ++i) {
    Ctx c = ctx;
    c.thisNode = input[i];
    c.hasThis = true;
    c.index = static_cast<std::int64_t>(i);
    c.thisColl = one(input[i]);
    auto r = eval(body, c.thisColl, c);
    if (!r) return std::unexpected(r.error());
    auto keepGoing = f(i, *r);
    if (!keepGoing) return std::unexpected(keepGoing.error());
    if (!*keepGoing) return false;
  }
  return true;
}

// The input as one string (or empty); non-strings are an error.
Result<std::optional<std::string>> inputString(const Collection& input, const ExprNode& fn) {
  auto s = singletonOf(input, fn);
  if (!s) return std::unexpected(s.error());
  if (!*s) return std::optional<std::string>();
  auto v = sysValue(**s);
  if (!v || v->kind() != Node::Kind::kString)
    return execError(fn, fn.name + "() expects a String input, got " + (*s)->typeName());
  return std::optional<std::string>(v->stringValue());
}

Result<std::optional<std::string>> argString(const ExprNode& fn, std::size_t i, const Ctx& ctx) {
  auto v = argValue(fn, i, ctx);
  if (!v) return std::unexpected(v.error());
  if (!*v) return std::optional<std::string>();
  if ((*v)->kind() != Node::Kind::kString)
    return execError(fn, fn.name + "() expects a String argument");
  return std::optional<std::string>((*v)->stringValue());
}

Result<std::optional<std::int64_t>> argInt(const ExprNode& fn, std::size_t i, const Ctx& ctx) {
  auto v = argValue(fn, i, ctx);
  if (!v) return std::unexpected(v.error());
  if (!*v) return std::optional<std::int64_t>();
  if ((*v)->kind() != Node::Kind::kInteger)
    return execError(fn, fn.name + "() expects an Integer argument");
  return std::optional<std::int64_t>((*v)->integerValue());
}

// Number of UTF-8 code points and code-point slicing.
std::vector<std::string> utf8Chars(const std::string& s) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

void descendantsOf(const Node& n, Collection& out, int depth) {
  if (depth > 200) return;
  for (const Node& c : childrenOf(n)) {
    out.push_back(c);
    descendantsOf(c, out, depth + 1);
  }
}

// Whether a type name is one the engine knows (FHIR or System).
bool knownTypeName(const std::string& type) {
  std::string_view t = type;
  if (t.starts_with("System."))
    t = t.substr(7);
  else if (t.starts_with("FHIR."))
    t = t.substr(5);
  static const std::set<std::string, std::less<>> kSystem = {
      "Boolean", "String", "Integer", "Decimal", "Date", "DateTime", "Time", "Quantity"};
  return kSystem.contains(t) || isKnownType(t);
}

// is(): honours inheritance (a code is a string). as()/ofType(): FHIR primitives must match
// exactly (code.as(string) is empty), complex types and resources by inheritance.
Result<bool> matchesType(const Node& n, const std::string& type, bool exactPrimitive,
                         const ExprNode& at) {
  if (!knownTypeName(type)) return execError(at, "unknown type '" + type + "'");
  if (exactPrimitive && n.isElement() && isPrimitiveType(n.typeName())) {
    std::string_view t = type;
    if (t.starts_with("FHIR.")) t = t.substr(5);
    return n.typeName() == t;
  }
  return nodeIsType(n, type);
}

Result<Collection> typeFilter(const Collection& input, const std::string& type,
                              const ExprNode& at) {
  Collection out;
  for (const Node& n : input) {
    auto m = matchesType(n, type, true, at);
    if (!m) return std::unexpected(m.error());
    if (*m) out.push_back(n);
  }
  if (input.empty() && !knownTypeName(type)) return execError(at, "unknown type '" + type + "'");
  return out;
}

// Compiled regular expressions by pattern, shared by all threads (a compiled std::regex is only
// read while matching); at most kRegexCacheSize, forgotten all at once when full. Throws
// std::regex_error for an invalid pattern, which is not kept.
std::shared_ptr<const std::regex> cachedRegex(const std::string& pattern) {
  static constexpr std::size_t kRegexCacheSize = 256;
  static std::mutex mu;
  static std::unordered_map<std::string, std::shared_ptr<const std::regex>> cache;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = cache.find(pattern); it != cache.end()) return it->second;
  }
  auto re = std::make_shared<const std::regex>(pattern, std::regex::ECMAScript);
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() >= kRegexCacheSize) cache.clear();
  cache.emplace(pattern, re);
  return re;
}

// FHIRPath regexes run in single-line mode: '.' also matches a newline.
std::string dotAll(const std::string& re) {
  std::string out;
  bool inClass = false;
  for (std::size_t i = 0; i < re.size(); ++i) {
    char c = re[i];
    if (c == '\\' && i + 1 < re.size()) {
      out += c;
      out += re[++i];
      continue;
    }
    if (c == '[')
      inClass = true;
    else if (c == ']')
      inClass = false;
    if (c == '.' && !inClass) {
      out += "[\\s\\S]";
      continue;
    }
    out += c;
  }
  return out;
}

std::string base64Encode(const std::string& in, bool url) {
  const char* tbl = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                        : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  while (i + 2 < in.size()) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += tbl[v & 63];
    i += 3;
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += i + 1 < in.size() ? tbl[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64Decode(const std::string& in) {
  std::string out;
  unsigned v = 0;
  int bits = 0;
  for (char c : in) {
    int d;
    if (c >= 'A' && c <= 'Z')
      d = c - 'A';
    else if (c >= 'a' && c <= 'z')
      d = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      d = c - '0' + 52;
    else if (c == '+' || c == '-')
      d = 62;
    else if (c == '/' || c == '_')
      d = 63;
    else if (c == '=')
      break;
    else
      return std::nullopt;
    v = (v << 6) | static_cast<unsigned>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((v >> bits) & 0xFF);
    }
  }
  return out;
}

Temporal nowTemporal(const Ctx& ctx) {
  auto tp = ctx.now;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count() +
            static_cast<long long>(ctx.env->utcOffsetMinutes) * 60000LL;
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  Temporal t;
  t.kind = TemporalKind::kDateTime;
  t.precision = Precision::kMillisecond;
  t.year = tm.tm_year + 1900;
  t.month = tm.tm_mon + 1;
  t.day = tm.tm_mday;
  t.hour = tm.tm_hour;
  t.minute = tm.tm_min;
  t.second = tm.tm_sec;
  t.millisecond = static_cast<int>(ms % 1000);
  t.tzOffsetMinutes = ctx.env->utcOffsetMinutes;
  return t;
}

// Makes a TypeInfo element {namespace, name}.
Node typeInfoNode(const Node& n) {
  auto doc = std::make_shared<rapidjson::Document>();
  doc->SetObject();
  std::string ns = n.isSystemValue() ? "System" : "FHIR";
  doc->AddMember("namespace", rapidjson::Value(ns.c_str(), doc->GetAllocator()),
                 doc->GetAllocator());
  doc->AddMember("name", rapidjson::Value(n.typeName().c_str(), doc->GetAllocator()),
                 doc->GetAllocator());
  DocumentPtr p = doc;
  return Node::element(p, p.get(), nullptr, "SimpleTypeInfo", "type");
}

// Low/high boundary of a decimal: the value -/+ half a unit of its last digit, floored/ceiled
// to `precision` digits (default 8).
std::optional<Node> decimalBoundary(const Decimal& d, std::optional<std::int64_t> precision,
                                    bool high) {
  int p = precision ? static_cast<int>(*precision) : 8;
  if (p < 0 || p > Decimal::kMaxScale - 1) return std::nullopt;
  // A value whose significant digits all lie below the requested precision has boundary 0.
  Decimal unit = Decimal::fromParts(0, 1, p);
  Decimal magnitude = decIsNegative(d) ? decNeg(d) : d;
  if (p < d.scale() && magnitude.compare(unit) < 0)
    return Node::decimal(decWithScale(Decimal(), p));
  Decimal half = Decimal::fromParts(0, 5, d.scale() + 1);
  Decimal r = high ? decAdd(d, half) : decSub(d, half);
  Decimal scaleUp = Decimal::fromInt(1);
  for (int i = 0; i < p; ++i) scaleUp = *decMul(scaleUp, Decimal::fromInt(10));
  auto x = decMul(r, scaleUp);
  if (!x) return std::nullopt;
  Decimal f = high ? decCeiling(*x) : decFloor(*x);
  return Node::decimal(Decimal::fromParts(f.mantissaHigh(), f.mantissaLow(), p));
}

R callFunction(const ExprNode& fn, const Collection& input, const Ctx& ctx);

// ---------------------------------------------------------------- operators

R evalBinary(const ExprNode& n, const Collection& input, const Ctx& ctx) {
  const std::string& op = n.name;
  auto left = eval(*n.children[0], input, ctx);
  if (!left) return left;
  // The logical operators do not evaluate their right side when the left decides: an invariant
  // such as `x.exists() implies x.single() ...` must not fail on its guarded part.
  if (op == "and" || op == "or" || op == "implies") {
    auto l = toBool(*left, n, op.c_str());
    if (!l) return std::unexpected(l.error());
    if (*l && ((op == "and" && !**l) || (op == "or" && **l))) return boolColl(**l);
    if (*l && op == "implies" && !**l) return boolColl(true);
  }
  auto right = eval(*n.children[1], input, ctx);
  if (!right) return right;
  const Collection &a = *left, &b = *right;

  if (op == "|") {
    Collection all = a;
    all.insert(all.end(), b.begin(), b.end());
    return distinct(all);
  }
  if (op == "and" || op == "or" || op == "xor" || op == "implies") {
    auto x = toBool(a, n, op.c_str());
    if (!x) return std::unexpected(x.error());
    auto y = toBool(b, n, op.c_str());
    if (!y) return std::unexpected(y.error());
    std::optional<bool> l = *x, r = *y;
    if (op == "and") {
      if ((l && !*l) || (r && !*r)) return boolColl(false);
      if (l && r) return boolColl(true);
      return Collection{};
    }
    if (op == "or") {
      if ((l && *l) || (r && *r)) return boolColl(true);
      if (l && r) return boolColl(false);
      return Collection{};
    }
    if (op == "xor") {
      if (!l || !r) return Collection{};
      return boolColl(*l != *r);
    }
    // implies
    if (l && !*l) return boolColl(true);
    if (r && *r) return boolColl(true);
    if (l && *l && r) return boolColl(false);
    return Collection{};
  }
  if (op == "=" || op == "!=") {
    if (a.empty() || b.empty()) return Collection{};
    if (a.size() != b.size()) return boolColl(op == "!=");
    bool unknown = false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      auto e = itemEqual(a[i], b[i]);
      if (!e) {
        unknown = true;
        continue;
      }
      if (!*e) return boolColl(op == "!=");
    }
    if (unknown) return Collection{};
    return boolColl(op == "=");
  }
  if (op == "~" || op == "!~") {
    bool eq;
    if (a.empty() && b.empty()) {
      eq = true;
    } else if (a.size() != b.size()) {
      eq = false;
    } else {
      eq = true;
      std::vector<bool> used(b.size(), false);
      for (const Node& x : a) {
        bool found = false;
        for (std::size_t j = 0; j < b.size(); ++j) {
          if (!used[j] && itemEquivalent(x, b[j])) {
            used[j] = found = true;
            break;
          }
        }
        if (!found) {
          eq = false;
          break;
        }
      }
    }
    return boolColl(op == "~" ? eq : !eq);
  }
  if (op == "<" || op == ">" || op == "<=" || op == ">=") {
    auto x = singleton(a, n, op.c_str());
    if (!x) return std::unexpected(x.error());
    auto y = singleton(b, n, op.c_str());
    if (!y) return std::unexpected(y.error());
    if (!*x || !*y) return Collection{};
    auto c = compareItems(**x, **y, n);
    if (!c) return std::unexpected(c.error());
    if (!*c) return Collection{};
    int v = **c;
    bool r = op == "<" ? v < 0 : op == ">" ? v > 0 : op == "<=" ? v <= 0 : v >= 0;
    return boolColl(r);
  }
  if (op == "in" || op == "contains") {
    const Collection& item = op == "in" ? a : b;
    const Collection& coll = op == "in" ? b : a;
    auto x = singleton(item, n, op.c_str());
    if (!x) return std::unexpected(x.error());
    if (!*x) return Collection{};
    return boolColl(contains(coll, **x));
  }
  if (op == "&") {
    auto x = singleton(a, n, "&");
    if (!x) return std::unexpected(x.error());
    auto y = singleton(b, n, "&");
    if (!y) return std::unexpected(y.error());
    std::string s;
    for (auto* v : {&*x, &*y}) {
      if (!*v) continue;
      auto sv = sysValue(**v);
      if (!sv || sv->kind() != Node::Kind::kString)
        return execError(n, "& expects String operands");
      s += sv->stringValue();
    }
    return one(Node::string(s));
  }
  // Arithmetic.
  auto x = singleton(a, n, op.c_str());
  if (!x) return std::unexpected(x.error());
  auto y = singleton(b, n, op.c_str());
  if (!y) return std::unexpected(y.error());
  if (!*x || !*y) return Collection{};
  return arithmetic(op, **x, **y, n);
}

R evalMember(const ExprNode& n, const Collection& input, const Ctx& ctx) {
  (void)ctx;
  Collection out;
  if (n.root && !n.name.empty() && std::isupper(static_cast<unsigned char>(n.name[0]))) {
    // A type name at the start of a path filters the focus by type (Patient.name).
    bool anyResource = false;
    Collection matched;
    for (const Node& item : input) {
      if (item.isElement() && isResourceType(item.typeName())) anyResource = true;
      if (nodeIsType(item, n.name)) matched.push_back(item);
    }
    if (!matched.empty()) return matched;
    if (anyResource && isResourceType(n.name))
      return execError(n, "the context is not a " + n.name);
  }
  bool allLack = !input.empty();
  for (const Node& item : input) {
    if (!item.isElement() || !typeIsComplete(item.typeName()) ||
        elementInfo(item.typeName(), n.name))
      allLack = false;
  }
  if (allLack) return execError(n, "'" + n.name + "' is not an element of " + input[0].typeName());
  for (const Node& item : input) {
    if (!item.isElement()) continue;
    Collection kids = childNamed(item, n.name);
    out.insert(out.end(), kids.begin(), kids.end());
  }
  return out;
}

R evalVariable(const ExprNode& n, const Ctx& ctx) {
  const std::string& v = n.name;
  if (v == "ucum") return one(Node::string("http://unitsofmeasure.org"));
  if (v == "sct") return one(Node::string("http://snomed.info/sct"));
  if (v == "loinc") return one(Node::string("http://loinc.org"));
  if (v == "resource") return ctx.hasResource ? one(ctx.resource) : Collection{};
  if (v == "rootResource") return ctx.hasResource ? one(ctx.rootResource) : Collection{};
  if (v == "context") return one(ctx.context);
  auto it = ctx.env->variables.find(v);
  if (it != ctx.env->variables.end()) return it->second;
  if (v.starts_with("vs-")) return one(Node::string("http://hl7.org/fhir/ValueSet/" + v.substr(3)));
  if (v.starts_with("ext-"))
    return one(Node::string("http://hl7.org/fhir/StructureDefinition/" + v.substr(4)));
  return execError(n, "undefined variable %" + v);
}

R eval(const ExprNode& n, const Collection& input, const Ctx& ctx) {
  switch (n.kind) {
    case ExprKind::kLiteral:
      return one(n.value);
    case ExprKind::kEmpty:
      return Collection{};
    case ExprKind::kMember:
      return evalMember(n, input, ctx);
    case ExprKind::kFunction:
      return callFunction(n, input, ctx);
    case ExprKind::kThis:
      return ctx.hasThis ? one(ctx.thisNode) : ctx.thisColl;
    case ExprKind::kIndex:
      if (!ctx.index) return Collection{};
      return one(Node::integer(*ctx.index));
    case ExprKind::kTotal:
      if (!ctx.total) return Collection{};
      return *ctx.total;
    case ExprKind::kVariable:
      return evalVariable(n, ctx);
    case ExprKind::kDot: {
      // Static check: (x as T).name where T has no element `name`.
      const ExprNode& l = *n.children[0];
      const ExprNode& r = *n.children[1];
      if (r.kind == ExprKind::kMember && ((l.kind == ExprKind::kTypeOp && l.name == "as") ||
                                          (l.kind == ExprKind::kFunction && l.name == "as"))) {
        std::string t = l.typeName.starts_with("FHIR.") ? l.typeName.substr(5) : l.typeName;
        if (typeIsComplete(t) && !elementInfo(t, r.name))
          return execError(r, "'" + r.name + "' is not an element of " + t);
      }
      auto left = eval(*n.children[0], input, ctx);
      if (!left) return left;
      return eval(*n.children[1], *left, ctx);
    }
    case ExprKind::kIndexer: {
      auto base = eval(*n.children[0], input, ctx);
      if (!base) return base;
      auto idx = eval(*n.children[1], ctx.thisColl, ctx);
      if (!idx) return idx;
      auto i = singleton(*idx, n, "indexer");
      if (!i) return std::unexpected(i.error());
      if (!*i) return Collection{};
      auto v = sysValue(**i);
      if (!v || v->kind() != Node::Kind::kInteger) return execError(n, "index must be an Integer");
      std::int64_t k = v->integerValue();
      if (k < 0 || k >= static_cast<std::int64_t>(base->size())) return Collection{};
      return one((*base)[static_cast<std::size_t>(k)]);
    }
    case ExprKind::kUnary: {
      auto v = eval(*n.children[0], input, ctx);
      if (!v) return v;
      auto s = singleton(*v, n, "unary operator");
      if (!s) return std::unexpected(s.error());
      if (!*s) return Collection{};
      auto x = sysValue(**s);
      if (!x) return execError(n, "unary " + n.name + " needs a number");
      if (n.name == "+") {
        if (isNumber(*x) || x->kind() == Node::Kind::kQuantity) return one(*x);
        return execError(n, "unary + needs a number");
      }
      if (x->kind() == Node::Kind::kInteger) return one(Node::integer(-x->integerValue()));
      if (x->kind() == Node::Kind::kDecimal) return one(Node::decimal(decNeg(x->decimalValue())));
      if (x->kind() == Node::Kind::kQuantity) {
        Quantity q = x->quantityValue();
        q.value = decNeg(q.value);
        return one(Node::quantity(q));
      }
      return execError(n, "unary - needs a number, got " + x->typeName());
    }
    case ExprKind::kBinary:
      return evalBinary(n, input, ctx);
    case ExprKind::kTypeOp: {
      auto v = eval(*n.children[0], input, ctx);
      if (!v) return v;
      if (v->empty()) return Collection{};
      if (v->size() > 1) return execError(n, n.name + " expects a single item");
      auto m = matchesType((*v)[0], n.typeName, n.name == "as", n);
      if (!m) return std::unexpected(m.error());
      if (n.name == "is") return boolColl(*m);
      return *m ? *v : Collection{};
    }
  }
  return Collection{};
}

// ---------------------------------------------------------------- the function library

R callFunction(const ExprNode& fn, const Collection& input, const Ctx& ctx) {
  const std::string& name = fn.name;
  const Fn id = fn.fnId >= 0 ? static_cast<Fn>(fn.fnId) : functionId(name);
  auto nargs = fn.children.size();

  // --- existence
  if (id == Fn::kEmpty) return boolColl(input.empty());
  if (id == Fn::kExists) {
    if (nargs == 0) return boolColl(!input.empty());
    bool found = false;
    auto r = forEachItem(*fn.children[0], input, ctx,
                         [&](std::size_t, const Collection& c) -> Result<bool> {
                           auto b = toBool(c, fn, "exists()");
                           if (!b) return std::unexpected(b.error());
                           if (*b && **b) {
                             found = true;
                             return false;
                           }
                           return true;
                         });
    if (!r) return std::unexpected(r.error());
    return boolColl(found);
  }
  if (id == Fn::kAll) {
    bool all = true;
    auto r = forEachItem(*fn.children[0], input, ctx,
                         [&](std::size_t, const Collection& c) -> Result<bool> {
                           auto b = toBool(c, fn, "all()");
                           if (!b) return std::unexpected(b.error());
                           if (!*b || !**b) {
                             all = false;
                             return false;
                           }
                           return true;
                         });
    if (!r) return std::unexpected(r.error());
    return boolColl(all);
  }
  if (id == Fn::kAllTrue || id == Fn::kAnyTrue || id == Fn::kAllFalse || id == Fn::kAnyFalse) {
    bool want = id == Fn::kAllTrue || id == Fn::kAnyTrue;
    bool isAll = id == Fn::kAllTrue || id == Fn::kAllFalse;
    bool result = isAll;
    for (const Node& item : input) {
      auto v = sysValue(item);
      if (!v || v->kind() != Node::Kind::kBoolean)
        return execError(fn, name + "() expects Booleans, got " + item.typeName());
      bool match = v->booleanValue() == want;
      if (isAll && !match) result = false;
      if (!isAll && match) result = true;
    }
    return boolColl(result);
  }
  if (id == Fn::kSubsetOf || id == Fn::kSupersetOf) {
    auto other = arg(fn, 0, ctx);
    if (!other) return other;
    const Collection& sub = id == Fn::kSubsetOf ? input : *other;
    const Collection& sup = id == Fn::kSubsetOf ? *other : input;
    for (const Node& x : sub)
      if (!contains(sup, x)) return boolColl(false);
    return boolColl(true);
  }
  if (id == Fn::kCount) return one(Node::integer(static_cast<std::int64_t>(input.size())));
  if (id == Fn::kDistinct) return distinct(input);
  if (id == Fn::kIsDistinct) return boolColl(distinct(input).size() == input.size());

  // --- filtering and projection
  if (id == Fn::kWhere) {
    Collection out;
    auto r = forEachItem(*fn.children[0], input, ctx,
                         [&](std::size_t i, const Collection& c) -> Result<bool> {
                           auto b = toBool(c, fn, "where()");
                           if (!b) return std::unexpected(b.error());
                           if (*b && **b) out.push_back(input[i]);
                           return true;
                         });
    if (!r) return std::unexpected(r.error());
    return out;
  }
  if (id == Fn::kSelect) {
    Collection out;
    auto r = forEachItem(*fn.children[0], input, ctx,
                         [&](std::size_t, const Collection& c) -> Result<bool> {
                           out.insert(out.end(), c.begin(), c.end());
                           return true;
                         });
    if (!r) return std::unexpected(r.error());
    return out;
  }
  if (id == Fn::kRepeat) {
    Collection out, frontier = input;
    for (int round = 0; round < 1000 && !frontier.empty(); ++round) {
      Collection next;
      auto r = forEachItem(*fn.children[0], frontier, ctx,
                           [&](std::size_t, const Collection& c) -> Result<bool> {
                             for (const Node& x : c) {
                               bool seen = false;
                               if (!x.isElement())
                                 seen = contains(out, x);
                               else
                                 for (const Node& y : out)
                                   if (y.isElement() && y.json() == x.json() &&
                                       y.primitiveExtension() == x.primitiveExtension())
                                     seen = true;
                               if (!seen) {
                                 out.push_back(x);
                                 next.push_back(x);
                               }
                             }
                             return true;
                           });
      if (!r) return std::unexpected(r.error());
      frontier = std::move(next);
    }
    return out;
  }
  if (id == Fn::kOfType) return typeFilter(input, fn.typeName, fn);
  if (id == Fn::kIs) {
    auto s = singleton(input, fn, "is()");
    if (!s) return std::unexpected(s.error());
    if (!*s) return Collection{};
    auto m = matchesType(**s, fn.typeName, false, fn);
    if (!m) return std::unexpected(m.error());
    return boolColl(*m);
  }
  if (id == Fn::kAs) {
    auto s = singleton(input, fn, "as()");
    if (!s) return std::unexpected(s.error());
    if (!*s) return Collection{};
    auto m = matchesType(**s, fn.typeName, true, fn);
    if (!m) return std::unexpected(m.error());
    return *m ? one(**s) : Collection{};
  }

  // --- subsetting
  if (id == Fn::kSingle) {
    if (input.size() > 1)
      return execError(fn, "single() found " + std::to_string(input.size()) + " items");
    return input;
  }
  if (id == Fn::kFirst) return input.empty() ? Collection{} : one(input.front());
  if (id == Fn::kLast) return input.empty() ? Collection{} : one(input.back());
  if (id == Fn::kTail)
    return input.size() <= 1 ? Collection{} : Collection(input.begin() + 1, input.end());
  if (id == Fn::kSkip || id == Fn::kTake) {
    auto k = argInt(fn, 0, ctx);
    if (!k) return std::unexpected(k.error());
    if (!*k) return id == Fn::kSkip ? input : Collection{};
    std::int64_t count = std::max<std::int64_t>(0, **k);
    std::size_t c = static_cast<std::size_t>(
        std::min<std::int64_t>(count, static_cast<std::int64_t>(input.size())));
    if (id == Fn::kSkip)
      return Collection(input.begin() + static_cast<std::ptrdiff_t>(c), input.end());
    return Collection(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(c));
  }
  if (id == Fn::kIntersect) {
    auto other = arg(fn, 0, ctx);
    if (!other) return other;
    Collection out;
    for (const Node& x : input)
      if (contains(*other, x) && !contains(out, x)) out.push_back(x);
    return out;
  }
  if (id == Fn::kExclude) {
    auto other = arg(fn, 0, ctx);
    if (!other) return other;
    Collection out;
    for (const Node& x : input)
      if (!contains(*other, x)) out.push_back(x);
    return out;
  }
  if (id == Fn::kUnion || id == Fn::kCombine) {
    auto other = arg(fn, 0, ctx);
    if (!other) return other;
    Collection all = input;
    all.insert(all.end(), other->begin(), other->end());
    return id == Fn::kUnion ? distinct(all) : all;
  }

  // --- iif (lazy)
  if (id == Fn::kIif) {
    if (input.size() > 1)
      return execError(
          fn, "iif() called on a collection of " + std::to_string(input.size()) + " items");
    Ctx c = ctx;
    if (input.size() == 1) {
      c.thisNode = input[0];
      c.hasThis = true;
      c.thisColl = input;
    }
    auto crit = eval(*fn.children[0], c.thisColl, c);
    if (!crit) return crit;
    if (crit->size() > 1) return execError(fn, "iif() criterion must be a single Boolean");
    std::optional<bool> b;
    if (crit->size() == 1) {
      auto v = sysValue((*crit)[0]);
      if (!v || v->kind() != Node::Kind::kBoolean)
        return execError(fn, "iif() criterion must be a Boolean");
      b = v->booleanValue();
    }
    if (b && *b) return eval(*fn.children[1], c.thisColl, c);
    if (nargs == 3) return eval(*fn.children[2], c.thisColl, c);
    return Collection{};
  }

  // --- conversions
  if (id >= Fn::kToBoolean && id <= Fn::kConvertsToQuantity) {
    // toX() and convertsToX() alternate in the numbering, Boolean first.
    static constexpr std::string_view kTargets[] = {"Boolean", "Integer",  "Decimal", "String",
                                                    "Date",    "DateTime", "Time",    "Quantity"};
    const int k = static_cast<int>(id) - static_cast<int>(Fn::kToBoolean);
    const bool converts = k % 2 == 1;
    const std::string_view target = kTargets[k / 2];
    {
      auto s = singletonOf(input, fn);
      if (!s) return std::unexpected(s.error());
      if (!*s) return Collection{};
      auto v = sysValue(**s);
      std::optional<Node> r;
      if (v) {
        if (target == "Boolean")
          r = convertToBoolean(*v);
        else if (target == "Integer")
          r = convertToInteger(*v);
        else if (target == "Decimal")
          r = convertToDecimal(*v);
        else if (target == "String")
          r = convertToString(*v);
        else if (target == "Date")
          r = convertToTemporal(*v, TemporalKind::kDate);
        else if (target == "DateTime")
          r = convertToTemporal(*v, TemporalKind::kDateTime);
        else if (target == "Time")
          r = convertToTemporal(*v, TemporalKind::kTime);
        else if (target == "Quantity") {
          r = convertToQuantity(*v);
          if (r && nargs == 1) {
            auto unit = argString(fn, 0, ctx);
            if (!unit) return std::unexpected(unit.error());
            if (*unit && r->quantityValue().unit != **unit) {
              auto converted = quantityConvert(r->quantityValue(), **unit);
              if (converted)
                r = Node::quantity(*converted);
              else
                r.reset();
            }
          }
        }
      }
      if (converts) return boolColl(r.has_value());
      if (!r) return Collection{};
      return one(*r);
    }
  }

  // --- strings
  if (id == Fn::kIndexOf || id == Fn::kLastIndexOf || id == Fn::kStartsWith || id == Fn::kEndsWith ||
      id == Fn::kContains || id == Fn::kMatches || id == Fn::kMatchesFull || id == Fn::kSplit) {
    auto s = inputString(input, fn);
    if (!s) return std::unexpected(s.error());
    auto a = argString(fn, 0, ctx);
    if (!a) return std::unexpected(a.error());
    if (!*s || !*a) return Collection{};
    const std::string &str = **s, &sub = **a;
    if (id == Fn::kIndexOf || id == Fn::kLastIndexOf) {
      auto pos = id == Fn::kIndexOf ? str.find(sub) : str.rfind(sub);
      if (pos == std::string::npos) return one(Node::integer(-1));
      return one(Node::integer(static_cast<std::int64_t>(utf8Chars(str.substr(0, pos)).size())));
    }
    if (id == Fn::kStartsWith) return boolColl(str.starts_with(sub));
    if (id == Fn::kEndsWith) return boolColl(str.ends_with(sub));
    if (id == Fn::kContains) return boolColl(str.find(sub) != std::string::npos);
    if (id == Fn::kSplit) {
      Collection out;
      if (sub.empty()) {
        for (auto& ch : utf8Chars(str)) out.push_back(Node::string(ch));
        return out;
      }
      std::size_t start = 0;
      while (true) {
        auto pos = str.find(sub, start);
        out.push_back(Node::string(
            str.substr(start, pos == std::string::npos ? std::string::npos : pos - start)));
        if (pos == std::string::npos) break;
        start = pos + sub.size();
      }
      return out;
    }
    try {
      auto re = cachedRegex(dotAll(sub));
      if (id == Fn::kMatchesFull) return boolColl(std::regex_match(str, *re));
      return boolColl(std::regex_search(str, *re));
    } catch (const std::regex_error& e) {
      return execError(fn, "invalid regular expression: " + std::string(e.what()));
    }
  }
  if (id == Fn::kSubstring) {
    auto s = inputString(input, fn);
    if (!s) return std::unexpected(s.error());
    auto start = argInt(fn, 0, ctx);
    if (!start) return std::unexpected(start.error());
    if (!*s || !*start) return Collection{};
    auto chars = utf8Chars(**s);
    std::int64_t from = **start;
    if (from < 0 || from >= static_cast<std::int64_t>(chars.size())) return Collection{};
    std::int64_t len = static_cast<std::int64_t>(chars.size()) - from;
    if (nargs == 2) {
      auto l = argInt(fn, 1, ctx);
      if (!l) return std::unexpected(l.error());
      if (*l) len = std::max<std::int64_t>(0, std::min(len, **l));
    }
    std::string out;
    for (std::int64_t i = from; i < from + len; ++i) out += chars[static_cast<std::size_t>(i)];
    return one(Node::string(out));
  }
  if (id == Fn::kUpper || id == Fn::kLower || id == Fn::kLength || id == Fn::kToChars ||
      id == Fn::kTrim) {
    auto s = inputString(input, fn);
    if (!s) return std::unexpected(s.error());
    if (!*s) return Collection{};
    std::string str = **s;
    if (id == Fn::kLength)
      return one(Node::integer(static_cast<std::int64_t>(utf8Chars(str).size())));
    if (id == Fn::kToChars) {
      Collection out;
      for (auto& ch : utf8Chars(str)) out.push_back(Node::string(ch));
      return out;
    }
    if (id == Fn::kTrim) {
      auto b = str.find_first_not_of(" \t\r\n");
      if (b == std::string::npos) return one(Node::string(""));
      auto e = str.find_last_not_of(" \t\r\n");
      return one(Node::string(str.substr(b, e - b + 1)));
    }
    for (char& c : str)
      c = static_cast<char>(id == Fn::kUpper ? std::toupper(static_cast<unsigned char>(c))
                                            : std::tolower(static_cast<unsigned char>(c)));
    return one(Node::string(str));
  }
  if (id == Fn::kReplace || id == Fn::kReplaceMatches) {
    auto s = inputString(input, fn);
    if (!s) return std::unexpected(s.error());
    auto pat = argString(fn, 0, ctx);
    if (!pat) return std::unexpected(pat.error());
    auto rep = argString(fn, 1, ctx);
    if (!rep) return std::unexpected(rep.error());
    if (!*s || !*pat || !*rep) return Collection{};
    const std::string &str = **s, &p = **pat, &r = **rep;
    if (id == Fn::kReplace) {
      std::string out;
      if (p.empty()) {
        // Inserts the replacement around every character.
        out = r;
        for (auto& ch : utf8Chars(str)) out += ch + r;
        return one(Node::string(out));
      }
      std::size_t start = 0;
      while (true) {
        auto pos = str.find(p, start);
        if (pos == std::string::npos) break;
        out += str.substr(start, pos - start) + r;
        start = pos + p.size();
      }
      out += str.substr(start);
      return one(Node::string(out));
    }
    if (p.empty()) return one(Node::string(str));
    try {
      auto re = cachedRegex(dotAll(p));
      return one(Node::string(std::regex_replace(str, *re, r)));
    } catch (const std::regex_error& e) {
      return execError(fn, "invalid regular expression: " + std::string(e.what()));
    }
  }
  if (id == Fn::kJoin) {
    std::string sep;
    if (nargs == 1) {
      auto a = argString(fn, 0, ctx);
      if (!a) return std::unexpected(a.error());
      if (*a) sep = **a;
    }
    std::string out;
    for (std::size_t i = 0; i < input.size(); ++i) {
      auto v = sysValue(input[i]);
      if (!v || v->kind() != Node::Kind::kString) return execError(fn, "join() expects Strings");
      if (i) out += sep;
      out += v->stringValue();
    }
    return one(Node::string(out));
  }
  if (id == Fn::kEncode || id == Fn::kDecode || id == Fn::kEscape || id == Fn::kUnescape) {
    auto s = inputString(input, fn);
    if (!s) return std::unexpected(s.error());
    auto a = argString(fn, 0, ctx);
    if (!a) return std::unexpected(a.error());
    if (!*s || !*a) return Collection{};
    const std::string &str = **s, &fmt = **a;
    if (id == Fn::kEncode) {
      if (fmt == "base64") return one(Node::string(base64Encode(str, false)));
      if (fmt == "urlbase64") return one(Node::string(base64Encode(str, true)));
      if (fmt == "hex") {
        std::string out;
        static const char* kHex = "0123456789abcdef";
        for (unsigned char c : str) {
          out += kHex[c >> 4];
          out += kHex[c & 15];
        }
        return one(Node::string(out));
      }
      return Collection{};
    }
    if (id == Fn::kDecode) {
      if (fmt == "base64" || fmt == "urlbase64") {
        auto d = base64Decode(str);
        if (!d) return Collection{};
        return one(Node::string(*d));
      }
      if (fmt == "hex") {
        if (str.size() % 2) return Collection{};
        std::string out;
        for (std::size_t i = 0; i < str.size(); i += 2)
          out += static_cast<char>(std::stoi(str.substr(i, 2), nullptr, 16));
        return one(Node::string(out));
      }
      return Collection{};
    }
    if (id == Fn::kEscape) {
      std::string out;
      for (char c : str) {
        if (fmt == "html") {
          if (c == '<')
            out += "&lt;";
          else if (c == '>')
            out += "&gt;";
          else if (c == '&')
            out += "&amp;";
          else if (c == '"')
            out += "&quot;";
          else
            out += c;
        } else if (fmt == "json") {
          if (c == '"')
            out += "\\\"";
          else if (c == '\\')
            out += "\\\\";
          else if (c == '\n')
            out += "\\n";
          else if (c == '\t')
            out += "\\t";
          else if (c == '\r')
            out += "\\r";
          else
            out += c;
        } else {
          return Collection{};
        }
      }
      return one(Node::string(out));
    }
    // unescape
    std::string out;
    if (fmt == "html") {
      static const std::pair<const char*, char> kEnt[] = {
          {"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
      for (std::size_t i = 0; i < str.size();) {
        bool done = false;
        for (auto& [e, ch] : kEnt) {
          if (str.compare(i, std::strlen(e), e) == 0) {
            out += ch;
            i += std::strlen(e);
            done = true;
            break;
          }
        }
        if (!done) out += str[i++];
      }
    } else if (fmt == "json") {
      for (std::size_t i = 0; i < str.size(); ++i) {
        if (str[i] == '\\' && i + 1 < str.size()) {
          char e = str[++i];
          out += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
        } else {
          out += str[i];
        }
      }
    } else {
      return Collection{};
    }
    return one(Node::string(out));
  }

  // --- math
  if (id == Fn::kAbs || id == Fn::kCeiling || id == Fn::kFloor || id == Fn::kTruncate ||
      id == Fn::kRound || id == Fn::kExp || id == Fn::kLn || id == Fn::kSqrt || id == Fn::kLog ||
      id == Fn::kPower) {
    auto s = singletonOf(input, fn);
    if (!s) return std::unexpected(s.error());
    if (!*s) return Collection{};
    auto v = sysValue(**s);
    if (!v) return execError(fn, name + "() expects a number");
    if (id == Fn::kAbs && v->kind() == Node::Kind::kQuantity) {
      Quantity q = v->quantityValue();
      if (decIsNegative(q.value)) q.value = decNeg(q.value);
      return one(Node::quantity(q));
    }
    if (!isNumber(*v)) return execError(fn, name + "() expects a number, got " + v->typeName());
    bool isInt = v->kind() == Node::Kind::kInteger;
    Decimal d = toDec(*v);
    if (id == Fn::kAbs) {
      if (isInt) return one(Node::integer(std::llabs(v->integerValue())));
      return one(Node::decimal(decIsNegative(d) ? decNeg(d) : d));
    }
    if (id == Fn::kCeiling || id == Fn::kFloor || id == Fn::kTruncate) {
      Decimal r = id == Fn::kCeiling ? decCeiling(d)
                  : id == Fn::kFloor ? decFloor(d)
                                    : decTruncate(d);
      auto i = decToInt64(r);
      if (!i) return Collection{};
      return one(Node::integer(*i));
    }
    if (id == Fn::kRound) {
      std::int64_t digits = 0;
      if (nargs == 1) {
        auto p = argInt(fn, 0, ctx);
        if (!p) return std::unexpected(p.error());
        if (!*p) return Collection{};
        digits = **p;
        if (digits < 0) return execError(fn, "round() precision must be >= 0");
      }
      return one(Node::decimal(decRound(d, static_cast<int>(digits))));
    }
    long double x = d.toLongDouble(), r = 0;
    if (id == Fn::kExp)
      r = std::exp(x);
    else if (id == Fn::kLn) {
      if (x <= 0) return Collection{};
      r = std::log(x);
    } else if (id == Fn::kSqrt) {
      if (x < 0) return Collection{};
      r = std::sqrt(x);
    } else if (id == Fn::kLog || id == Fn::kPower) {
      auto b = argValue(fn, 0, ctx);
      if (!b) return std::unexpected(b.error());
      if (!*b) return Collection{};
      if (!isNumber(**b)) return execError(fn, name + "() expects a number argument");
      long double y = toDec(**b).toLongDouble();
      if (id == Fn::kLog) {
        if (x <= 0 || y <= 0 || y == 1) return Collection{};
        r = std::log(x) / std::log(y);
      } else {
        if (isInt && (*b)->kind() == Node::Kind::kInteger &&
            toDec(**b).compare(Decimal::fromInt(0)) >= 0) {
          std::int64_t base = v->integerValue(), e = (*b)->integerValue(), acc = 1;
          for (std::int64_t i = 0; i < e; ++i)
            if (__builtin_mul_overflow(acc, base, &acc)) return Collection{};
          return one(Node::integer(acc));
        }
        r = std::pow(x, y);
        if (std::isnan(static_cast<double>(r))) return Collection{};
      }
    }
    if (!std::isfinite(static_cast<double>(r))) return Collection{};
    return one(Node::decimal(Decimal::fromDouble(static_cast<double>(r))));
  }

  // --- tree navigation
  if (id == Fn::kChildren) {
    Collection out;
    for (const Node& n : input) {
      Collection c = childrenOf(n);
      out.insert(out.end(), c.begin(), c.end());
    }
    return out;
  }
  if (id == Fn::kDescendants) {
    Collection out;
    for (const Node& n : input) descendantsOf(n, out, 0);
    return out;
  }

  // --- utility
  if (id == Fn::kTrace) {
    auto label = argString(fn, 0, ctx);
    if (!label) return std::unexpected(label.error());
    if (ctx.env->trace) {
      Collection shown = input;
      if (nargs == 2) {
        shown.clear();
        auto r = forEachItem(*fn.children[1], input, ctx,
                             [&](std::size_t, const Collection& c) -> Result<bool> {
                               shown.insert(shown.end(), c.begin(), c.end());
                               return true;
                             });
        if (!r) return std::unexpected(r.error());
      }
      ctx.env->trace(label->value_or(""), shown);
    }
    return input;
  }
  if (id == Fn::kNow) return one(Node::temporal(nowTemporal(ctx)));
  if (id == Fn::kToday) {
    Temporal t = nowTemporal(ctx);
    t.kind = TemporalKind::kDate;
    t.precision = Precision::kDay;
    t.tzOffsetMinutes.reset();
    return one(Node::temporal(t));
  }
  if (id == Fn::kTimeOfDay) {
    Temporal t = nowTemporal(ctx);
    t.kind = TemporalKind::kTime;
    t.tzOffsetMinutes.reset();
    return one(Node::temporal(t));
  }
  if (id == Fn::kNot) {
    auto b = toBool(input, fn, "not()");
    if (!b) return std::unexpected(b.error());
    if (!*b) return Collection{};
    return boolColl(!**b);
  }
  if (id == Fn::kType) {
    Collection out;
    for (const Node& n : input) out.push_back(typeInfoNode(n));
    return out;
  }

  // --- aggregate
  if (id == Fn::kAggregate) {
    Collection total;
    if (nargs == 2) {
      auto init = arg(fn, 1, ctx);
      if (!init) return init;
      total = *init;
    }
    for (std::size_t i = 0; i < input.size(); ++i) {
      Ctx c = ctx;
      c.thisNode = input[i];
      c.hasThis = true;
      c.index = static_cast<std::int64_t>(i);
      c.thisColl = one(input[i]);
      c.total = &total;
      auto r = eval(*fn.children[0], c.thisColl, c);
      if (!r) return r;
      total = std::move(*r);
    }
    return total;
  }

  // --- FHIR additions
  if (id == Fn::kExtension) {
    auto url = argString(fn, 0, ctx);
    if (!url) return std::unexpected(url.error());
    if (!*url) return Collection{};
    Collection out;
    for (const Node& n : input) {
      for (const Node& e : childNamed(n, "extension")) {
        for (const Node& u : childNamed(e, "url")) {
          auto s = sysValue(u);
          if (s && s->kind() == Node::Kind::kString && s->stringValue() == **url) out.push_back(e);
        }
      }
    }
    return out;
  }
  if (id == Fn::kHasValue) {
    if (input.size() != 1) return boolColl(false);
    const Node& n = input[0];
    if (!n.isElement()) return boolColl(true);
    return boolColl(n.json() && !n.json()->IsObject() && !n.json()->IsArray() &&
                    isPrimitiveType(n.typeName()));
  }
  if (id == Fn::kGetValue) {
    if (input.size() != 1) return Collection{};
    const Node& n = input[0];
    if (n.isElement() && !(n.json() && isPrimitiveType(n.typeName()))) return Collection{};
    auto v = sysValue(n);
    if (!v) return Collection{};
    return one(*v);
  }
  if (id == Fn::kResolve) {
    Collection out;
    for (const Node& n : input) {
      std::string ref;
      if (auto v = sysValue(n); v && v->kind() == Node::Kind::kString) {
        ref = v->stringValue();
      } else {
        for (const Node& r : childNamed(n, "reference"))
          if (auto s = sysValue(r); s && s->kind() == Node::Kind::kString) ref = s->stringValue();
      }
      if (ref.empty()) continue;
      if (ctx.env->resolve) {
        auto r = ctx.env->resolve(ref, n);
        if (!r) return std::unexpected(r.error());
        out.insert(out.end(), r->begin(), r->end());
        continue;
      }
      if (!ctx.hasResource) continue;
      if (ref.starts_with("#")) {
        for (const Node& c : childNamed(ctx.resource, "contained")) {
          for (const Node& id : childNamed(c, "id"))
            if (auto s = sysValue(id); s && s->stringValue() == ref.substr(1)) out.push_back(c);
        }
        continue;
      }
      // Bundle entries by fullUrl, or by Type/id.
      for (const Node& entry : childNamed(ctx.rootResource, "entry")) {
        bool match = false;
        for (const Node& fu : childNamed(entry, "fullUrl"))
          if (auto s = sysValue(fu);
              s && (s->stringValue() == ref || s->stringValue().ends_with("/" + ref)))
            match = true;
        if (match)
          for (const Node& r : childNamed(entry, "resource")) out.push_back(r);
      }
    }
    return out;
  }
  if (id == Fn::kMemberOf) {
    auto url = argString(fn, 0, ctx);
    if (!url) return std::unexpected(url.error());
    if (!*url || !ctx.env->memberOf) return Collection{};
    auto s = singleton(input, fn, "memberOf()");
    if (!s) return std::unexpected(s.error());
    if (!*s) return Collection{};
    auto r = ctx.env->memberOf(**s, **url);
    if (!r) return std::unexpected(r.error());
    return boolColl(*r);
  }
  if (id == Fn::kConformsTo) {
    auto url = argString(fn, 0, ctx);
    if (!url) return std::unexpected(url.error());
    if (!*url) return Collection{};
    static const std::string kBase = "http://hl7.org/fhir/StructureDefinition/";
    if (!url->value().starts_with(kBase))
      return execError(fn, "conformsTo(): unknown profile " + **url);
    std::string type = url->value().substr(kBase.size());
    if (!isKnownType(type)) return execError(fn, "conformsTo(): unknown profile " + **url);
    auto s = singleton(input, fn, "conformsTo()");
    if (!s) return std::unexpected(s.error());
    if (!*s) return Collection{};
    return boolColl(nodeIsType(**s, type));
  }
  if (id == Fn::kHtmlChecks || id == Fn::kHtmlchecks) return boolColl(true);
  if (id == Fn::kSort) {
    Collection out = input;
    if (nargs == 0) {
      bool ok = true;
      std::stable_sort(out.begin(), out.end(), [&](const Node& a, const Node& b) {
        auto c = compareItems(a, b, fn);
        if (!c || !*c) {
          ok = false;
          return false;
        }
        return **c < 0;
      });
      if (!ok) return execError(fn, "sort(): items are not comparable");
      return out;
    }
    // Keys per item.
    std::vector<std::vector<std::pair<std::optional<Node>, bool>>> keys(input.size());
    for (std::size_t k = 0; k < nargs; ++k) {
      const ExprNode* body = fn.children[k].get();
      bool desc = false;
      if (body->kind == ExprKind::kUnary && body->name == "-") {
        desc = true;
        body = body->children[0].get();
      }
      auto r =
          forEachItem(*body, input, ctx, [&](std::size_t i, const Collection& c) -> Result<bool> {
            keys[i].push_back({c.empty() ? std::nullopt : sysValue(c[0]), desc});
            return true;
          });
      if (!r) return std::unexpected(r.error());
    }
    std::vector<std::size_t> idx(input.size());
    for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::stable_sort(idx.begin(), idx.end(), [&](std::size_t x, std::size_t y) {
      for (std::size_t k = 0; k < nargs; ++k) {
        auto &a = keys[x][k], &b = keys[y][k];
        if (!a.first && !b.first) continue;
        if (!a.first) return true;  // empty keys sort first
        if (!b.first) return false;
        auto c = compareItems(*a.first, *b.first, fn);
        if (!c || !*c || **c == 0) continue;
        return a.second ? **c > 0 : **c < 0;
      }
      return false;
    });
    out.clear();
    for (auto i : idx) out.push_back(input[i]);
    return out;
  }
  if (id == Fn::kPrecision) {
    auto s = singleton(input, fn, "precision()");
    if (!s) return std::unexpected(s.error());
    if (!*s) return Collection{};
    auto v = sysValue(**s);
    if (!v) return Collection{};
    if (v->kind() == Node::Kind::kDecimal) return one(Node::integer(v->decimalValue().scale()));
    if (v->kind() == Node::Kind::kInteger) return one(Node::integer(0));
    if (v->kind() == Node::Kind::kTemporal) {
      const Temporal& t = v->temporalValue();
      static const int kDateDigits[] = {4, 6, 8, 10, 12, 14, 17};
      static const int kTimeDigits[] = {0, 0, 0, 2, 4, 6, 9};
      int p = static_cast<int>(t.precision);
      return one(Node::integer(t.kind == TemporalKind::kTime ? kTimeDigits[p] : kDateDigits[p]));
    }
    return Collection{};
  }
  if (id == Fn::kLowBoundary || id == Fn::kHighBoundary) {
    bool high = id == Fn::kHighBoundary;
    auto s = singletonOf(input, fn);
    if (!s) return std::unexpected(s.error());
    if (!*s) return Collection{};
    auto v = sysValue(**s);
    if (!v) return Collection{};
    std::optional<std::int64_t> precision;
    if (nargs == 1) {
      auto p = argInt(fn, 0, ctx);
      if (!p) return std::unexpected(p.error());
      precision = *p;
    }
    if (isNumber(*v)) {
      auto r = decimalBoundary(toDec(*v), precision, high);
      if (!r) return Collection{};
      return one(*r);
    }
    if (v->kind() == Node::Kind::kQuantity) {
      auto r = decimalBoundary(v->quantityValue().value, precision, high);
      if (!r) return Collection{};
      return one(Node::quantity(Quantity{r->decimalValue(), v->quantityValue().unit}));
    }
    if (v->kind() == Node::Kind::kTemporal) {
      Temporal t = v->temporalValue();
      // An hour alone is not a FHIR time: T08 means 08:00 (minute precision) for boundaries.
      if (t.kind == TemporalKind::kDateTime && t.precision == Precision::kHour) {
        t.precision = Precision::kMinute;
        t.minute = 0;
      }
      int p = static_cast<int>(t.precision);
      Precision target = t.kind == TemporalKind::kDate   ? Precision::kDay
                         : t.kind == TemporalKind::kTime ? Precision::kMillisecond
                                                         : Precision::kMillisecond;
      if (precision) {
        static const std::pair<int, Precision> kDate[] = {
            {4, Precision::kYear},        {6, Precision::kMonth},   {8, Precision::kDay},
            {10, Precision::kHour},       {12, Precision::kMinute}, {14, Precision::kSecond},
            {17, Precision::kMillisecond}};
        static const std::pair<int, Precision> kTime[] = {{2, Precision::kHour},
                                                          {4, Precision::kMinute},
                                                          {6, Precision::kSecond},
                                                          {9, Precision::kMillisecond}};
        bool found = false;
        for (auto& [d, pr] :
             (t.kind == TemporalKind::kTime
                  ? std::vector<std::pair<int, Precision>>(std::begin(kTime), std::end(kTime))
                  : std::vector<std::pair<int, Precision>>(std::begin(kDate), std::end(kDate))))
          if (d == *precision) {
            target = pr;
            found = true;
          }
        if (!found) return Collection{};
        if (t.kind == TemporalKind::kDate && target > Precision::kDay) return Collection{};
      }
      for (int k = p + 1; k <= static_cast<int>(target); ++k) {
        switch (static_cast<Precision>(k)) {
          case Precision::kMonth:
            t.month = high ? 12 : 1;
            break;
          case Precision::kDay: {
            static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
            int dm = kDays[t.month - 1];
            if (t.month == 2 && ((t.year % 4 == 0 && t.year % 100 != 0) || t.year % 400 == 0))
              dm = 29;
            t.day = high ? dm : 1;
            break;
          }
          case Precision::kHour:
            t.hour = high ? 23 : 0;
            break;
          case Precision::kMinute:
            t.minute = high ? 59 : 0;
            break;
          case Precision::kSecond:
            t.second = high ? 59 : 0;
            break;
          case Precision::kMillisecond:
            t.millisecond = high ? 999 : 0;
            break;
          default:
            break;
        }
      }
      t.precision = target;
      if (t.kind == TemporalKind::kDateTime && !t.tzOffsetMinutes && target >= Precision::kHour)
        t.tzOffsetMinutes = high ? -12 * 60 : 14 * 60;
      return one(Node::temporal(t));
    }
    return Collection{};
  }
  if (id == Fn::kComparable) {
    auto s = singleton(input, fn, "comparable()");
    if (!s) return std::unexpected(s.error());
    auto o = argValue(fn, 0, ctx);
    if (!o) return std::unexpected(o.error());
    if (!*s || !*o) return Collection{};
    auto v = sysValue(**s);
    if (!v || v->kind() != Node::Kind::kQuantity || (*o)->kind() != Node::Kind::kQuantity)
      return Collection{};
    return boolColl(quantityCompare(v->quantityValue(), (*o)->quantityValue(), false).has_value());
  }
  return execError(fn, "function " + name + "() is not supported");
}

}  // namespace

std::optional<std::string> checkFunction(std::string_view name, std::size_t argc, int& id) {
  const auto& table = functionTable();
  auto it = table.find(std::string(name));
  if (it == table.end()) return "unknown function '" + std::string(name) + "'";
  id = static_cast<int>(it->second.id);
  if (static_cast<int>(argc) < it->second.minArgs || static_cast<int>(argc) > it->second.maxArgs)
    return "function " + std::string(name) + "() takes " +
           (it->second.minArgs == it->second.maxArgs
                ? std::to_string(it->second.minArgs)
                : std::to_string(it->second.minArgs) + ".." + std::to_string(it->second.maxArgs)) +
           " argument(s), got " + std::to_string(argc);
  return std::nullopt;
}

Result<Collection> evaluate(const Expression& expr, const Node& focus, const Environment& env) {
  if (!expr.root()) return fail(ErrorCode::kInvalid, "empty FHIRPath expression");
  Ctx ctx;
  ctx.env = &env;
  ctx.thisColl = one(focus);
  ctx.thisNode = focus;
  ctx.hasThis = false;
  bool noFocus = focus.isElement() && !focus.json() && !focus.primitiveExtension();
  ctx.context = env.context.value_or(focus);
  if (env.resource) {
    ctx.resource = *env.resource;
    ctx.hasResource = true;
  } else if (focus.isElement() && !noFocus) {
    ctx.resource = focus;
    ctx.hasResource = true;
  }
  ctx.rootResource = env.rootResource.value_or(ctx.resource);
  ctx.now = env.now.value_or(std::chrono::system_clock::now());
  if (noFocus) ctx.thisColl.clear();
  return eval(*expr.root(), ctx.thisColl, ctx);
}

Result<Collection> evaluate(std::string_view text, const Node& focus, const Environment& env) {
  auto e = compile(text);
  if (!e) return std::unexpected(e.error());
  return evaluate(*e, focus, env);
}

Result<std::optional<bool>> evaluateBoolean(const Expression& expr, const Node& focus,
                                            const Environment& env) {
  auto r = evaluate(expr, focus, env);
  if (!r) return std::unexpected(r.error());
  if (r->empty()) return std::optional<bool>();
  if (r->size() > 1)
    return fail(ErrorCode::kInvalid, "expression returned " + std::to_string(r->size()) +
                                         " items where one boolean was expected");
  auto v = (*r)[0].toSystemValue();
  if (v && v->kind() == Node::Kind::kBoolean) return std::optional<bool>(v->booleanValue());
  return std::optional<bool>(true);
}

}  // namespace switchboard::fhirpath

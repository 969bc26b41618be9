// Compiled plans for reply templates; see reply_plan.h. Every rule here mirrors
// engine/fhirpath/eval.cc and node.cc (evalMember, childNamed, appendProperty, toSystemValue,
// itemEqual, the functions) for the covered subset; where the engine would raise an error, or
// the answer depends on what plans do not model, a plan declines.
#include "channels/reply/reply_plan.h"

#include <cctype>
#include <cstring>
#include <mutex>
#include <set>

#include "engine/fhirpath/syntax.h"
#include "engine/fhirpath/type_model.h"

namespace switchboard::channels::reply {

using fhirpath::detail::ExprKind;
using fhirpath::detail::ExprNode;

struct PlanStep {
  enum class Op : std::uint8_t {
    kMember,
    kDot,
    kString,
    kBoolean,
    kVariable,
    kThis,
    kWhere,
    kSelect,
    kExists,
    kEmpty,
    kFirst,
    kLast,
    kOfType,
    kStartsWith,
    kEndsWith,
    kContainsText,
    kToString,
    kNot,
    kEq,
    kNe,
    kAnd,
    kOr,
    kUnion,
    kContains,
    kIn
  };
  Op op = Op::kString;
  std::string name;  // member, variable, type name (without "FHIR."), string literal or argument
  std::string_view member;  // kMember: `name` as internName() keeps it
  bool boolean = false;
  int memo = -1;  // PlanScope slot of a shared subexpression over the focus
  std::vector<std::unique_ptr<PlanStep>> kids;
};

namespace {

using Op = PlanStep::Op;
using Kind = PlanItem::Kind;

// ------------------------------------------------------------------ compiling

void keyAppend(std::string& key, std::string_view s) {
  key += std::to_string(s.size());
  key += ':';
  key += s;
}

// Text that identifies what a subexpression computes from its input (names and literals
// length-prefixed, so no two different trees share a key).
std::string keyOf(const ExprNode& n) {
  std::string key(1, '(');
  key += std::to_string(static_cast<int>(n.kind));
  keyAppend(key, n.name);
  keyAppend(key, n.typeName);
  key += n.root ? 'r' : '-';
  if (n.kind == ExprKind::kLiteral) {
    if (n.value.kind() == fhirpath::Node::Kind::kString) {
      keyAppend(key, n.value.stringValue());
    } else if (n.value.kind() == fhirpath::Node::Kind::kBoolean) {
      key += n.value.booleanValue() ? "T" : "F";
    }
  }
  for (const auto& kid : n.children) key += keyOf(*kid);
  key += ')';
  return key;
}

// Member names of every plan, kept once for the process (a few hundred bytes: the names templates
// use), so that equal names share an address, which PlanScope::elementInfo() keys on.
std::string_view internName(std::string_view name) {
  static std::mutex mu;
  // Never freed: a plan may be used while statics are destroyed.
  static auto* names = new std::set<std::string, std::less<>>();
  std::lock_guard<std::mutex> lock(mu);
  return *names->emplace(name).first;
}

std::unique_ptr<PlanStep> step(Op op, std::string name = {}) {
  auto s = std::make_unique<PlanStep>();
  s->op = op;
  s->name = std::move(name);
  return s;
}

// `focusInput`: the node is evaluated over the template's focus (not inside where() or
// select()), so its result may be shared by other expressions of the render.
std::unique_ptr<PlanStep> compileNode(
    const ExprNode& n, bool focusInput, PlanMemo& memo,
    std::map<std::string, std::vector<PlanStep*>, std::less<>>& candidates) {
  auto sub = [&](const ExprNode& kid, bool overFocus) {
    return compileNode(kid, overFocus, memo, candidates);
  };
  switch (n.kind) {
    case ExprKind::kLiteral:
      if (n.value.kind() == fhirpath::Node::Kind::kString) {
        return step(Op::kString, n.value.stringValue());
      }
      if (n.value.kind() == fhirpath::Node::Kind::kBoolean) {
        auto s = step(Op::kBoolean);
        s->boolean = n.value.booleanValue();
        return s;
      }
      return nullptr;
    case ExprKind::kMember:
      // A capital at the start of a path may be a type filter; "_x" and resourceType are
      // spelled in JSON in ways plans do not read.
      if (n.name.empty() || n.name[0] == '_' || n.name == "resourceType") return nullptr;
      if (n.root && std::isupper(static_cast<unsigned char>(n.name[0]))) return nullptr;
      {
        auto s = step(Op::kMember, n.name);
        s->member = internName(n.name);
        return s;
      }
    case ExprKind::kThis:
      return step(Op::kThis);
    case ExprKind::kVariable:
      for (const char* builtin : {"ucum", "sct", "loinc", "resource", "rootResource", "context"}) {
        if (n.name == builtin) return nullptr;
      }
      return step(Op::kVariable, n.name);
    case ExprKind::kDot: {
      auto left = sub(*n.children[0], focusInput);
      if (!left) return nullptr;
      auto right = sub(*n.children[1], false);
      if (!right) return nullptr;
      auto s = step(Op::kDot);
      s->kids.push_back(std::move(left));
      s->kids.push_back(std::move(right));
      if (focusInput) candidates[keyOf(n)].push_back(s.get());
      return s;
    }
    case ExprKind::kFunction: {
      const std::string& f = n.name;
      const std::size_t args = n.children.size();
      if ((f == "where" || f == "select") && args == 1) {
        auto body = sub(*n.children[0], false);
        if (!body) return nullptr;
        auto s = step(f == "where" ? Op::kWhere : Op::kSelect);
        s->kids.push_back(std::move(body));
        return s;
      }
      if (args == 0) {
        if (f == "exists") return step(Op::kExists);
        if (f == "empty") return step(Op::kEmpty);
        if (f == "first") return step(Op::kFirst);
        if (f == "last") return step(Op::kLast);
        if (f == "toString") return step(Op::kToString);
        if (f == "not") return step(Op::kNot);
        return nullptr;
      }
      if (f == "ofType" && args == 1) {
        // Resource types only: the engine matches them by resourceType and inheritance, the
        // same for qualified and unqualified names.
        std::string_view t = n.typeName;
        if (t.starts_with("FHIR.")) t.remove_prefix(5);
        if (!fhirpath::isResourceType(t) || fhirpath::isPrimitiveType(t)) return nullptr;
        return step(Op::kOfType, std::string(t));
      }
      if ((f == "startsWith" || f == "endsWith" || f == "contains") && args == 1) {
        const ExprNode& a = *n.children[0];
        if (a.kind != ExprKind::kLiteral || a.value.kind() != fhirpath::Node::Kind::kString) {
          return nullptr;
        }
        return step(f == "startsWith" ? Op::kStartsWith
                    : f == "endsWith" ? Op::kEndsWith
                                      : Op::kContainsText,
                    a.value.stringValue());
      }
      return nullptr;
    }
    case ExprKind::kBinary: {
      static const std::pair<const char*, Op> kOps[] = {
          {"=", Op::kEq},  {"!=", Op::kNe},   {"and", Op::kAnd},
          {"or", Op::kOr}, {"|", Op::kUnion}, {"contains", Op::kContains},
          {"in", Op::kIn}};
      for (const auto& [text, op] : kOps) {
        if (n.name != text) continue;
        auto left = sub(*n.children[0], focusInput);
        if (!left) return nullptr;
        auto right = sub(*n.children[1], focusInput);
        if (!right) return nullptr;
        auto s = step(op);
        s->kids.push_back(std::move(left));
        s->kids.push_back(std::move(right));
        return s;
      }
      return nullptr;
    }
    default:
      return nullptr;
  }
}

// ------------------------------------------------------------------ values

// FHIR types whose JSON strings are not plain System Strings (toSystemValue parses them).
bool quantityLike(std::string_view t) {
  return t == "Quantity" || t == "Age" || t == "Count" || t == "Distance" || t == "Duration" ||
         t == "SimpleQuantity" || t == "MoneyQuantity";
}
bool stringIsText(std::string_view t) {
  return !(t == "boolean" || t == "integer" || t == "unsignedInt" || t == "positiveInt" ||
           t == "decimal" || t == "date" || t == "dateTime" || t == "instant" || t == "time" ||
           quantityLike(t));
}

// What Node::toSystemValue() gives for an item: nothing, a String, a Boolean, or something
// else (a number, a date, a Quantity, a string to convert) that plans leave to the engine.
struct Sys {
  enum class Kind : std::uint8_t { kNone, kString, kBoolean, kOther };
  Kind kind = Kind::kNone;
  bool boolean = false;
  std::string_view text;
};

Sys sysOf(const PlanItem& item) {
  Sys s;
  switch (item.kind) {
    case Kind::kString:
      s.kind = Sys::Kind::kString;
      s.text = item.text;
      return s;
    case Kind::kBoolean:
      s.kind = Sys::Kind::kBoolean;
      s.boolean = item.boolean;
      return s;
    case Kind::kElement:
      break;
  }
  const rapidjson::Value& v = *item.json;
  const bool quantity = quantityLike(item.text);
  if (v.IsString()) {
    if (!stringIsText(item.text)) {
      s.kind = Sys::Kind::kOther;
      return s;
    }
    s.kind = Sys::Kind::kString;
    s.text = std::string_view(v.GetString());  // as the engine's std::string(GetString())
    return s;
  }
  if (v.IsBool()) {
    if (!quantity) {
      s.kind = Sys::Kind::kBoolean;
      s.boolean = v.GetBool();
    }
    return s;
  }
  if (v.IsNumber()) {
    if (!quantity) s.kind = Sys::Kind::kOther;
    return s;
  }
  if (quantity && v.IsObject()) s.kind = Sys::Kind::kOther;
  return s;
}

fhirpath::Node engineNode(const PlanScope& scope, const PlanItem& item) {
  return fhirpath::Node::element(scope.focus().document(), item.json, nullptr,
                                 std::string(item.text), std::string());
}

PlanItem stringItem(std::string_view text) {
  PlanItem i;
  i.kind = Kind::kString;
  i.text = text;
  return i;
}
PlanItem booleanItem(bool b) {
  PlanItem i;
  i.kind = Kind::kBoolean;
  i.boolean = b;
  return i;
}

// toBool(): empty -> no value; one Boolean -> it; one other item -> true; more: the engine's
// error, so false (decline).
bool truthOf(const PlanScope& scope, const PlanItems& items, std::optional<bool>& out) {
  out.reset();
  if (items.empty()) return true;
  if (items.size() > 1) return false;
  const Sys s = sysOf(items[0]);
  if (s.kind == Sys::Kind::kBoolean) {
    out = s.boolean;
  } else if (s.kind == Sys::Kind::kOther) {
    auto v = engineNode(scope, items[0]).toSystemValue();
    out = v && v->kind() == fhirpath::Node::Kind::kBoolean ? v->booleanValue() : true;
  } else {
    out = true;
  }
  return true;
}

// itemEqual(): 1 equal, 0 not; -1 when the engine must decide (dates and quantities, where the
// engine may also find equality undecidable, are among those).
int itemEq(const PlanItem& a, const PlanItem& b) {
  const Sys x = sysOf(a), y = sysOf(b);
  if (x.kind == Sys::Kind::kOther || y.kind == Sys::Kind::kOther) return -1;
  if (x.kind == Sys::Kind::kNone || y.kind == Sys::Kind::kNone) {
    if (a.kind == Kind::kElement && b.kind == Kind::kElement && x.kind == Sys::Kind::kNone &&
        y.kind == Sys::Kind::kNone) {
      return *a.json == *b.json ? 1 : 0;
    }
    return 0;
  }
  if (x.kind != y.kind) return 0;
  if (x.kind == Sys::Kind::kBoolean) return x.boolean == y.boolean ? 1 : 0;
  return x.text == y.text ? 1 : 0;
}

// contains(): whether an item of `c` equals `item`; false when the engine must decide.
bool containsItem(const PlanItems& c, const PlanItem& item, bool& found) {
  found = false;
  for (const PlanItem& x : c) {
    const int e = itemEq(x, item);
    if (e < 0) return false;
    if (e == 1) {
      found = true;
      return true;
    }
  }
  return true;
}

// ------------------------------------------------------------------ navigation

std::string_view guessType(const rapidjson::Value& v) {
  if (v.IsBool()) return "boolean";
  if (v.IsInt64()) return "integer";
  if (v.IsNumber()) return "decimal";
  if (v.IsString()) return "string";
  return "";  // objects with a resourceType are typed by the caller
}

// appendProperty() without a primitive extension.
void appendValue(const rapidjson::Value& value, std::string_view type, PlanItems& out) {
  auto push = [&](const rapidjson::Value& item) {
    PlanItem p;
    p.json = &item;
    p.text = type;
    if (type == "Resource" || type.empty()) {
      if (item.IsObject()) {
        auto rt = item.FindMember("resourceType");
        if (rt != item.MemberEnd() && rt->value.IsString()) {
          std::string_view name(rt->value.GetString());  // as std::string(GetString())
          if (!name.empty() || type.empty()) {
            p.text = name;
            out.push_back(p);
            return;
          }
        }
      }
      if (type.empty()) p.text = guessType(item);
    }
    out.push_back(p);
  };
  if (value.IsArray()) {
    for (const auto& item : value.GetArray()) {
      if (!item.IsNull()) push(item);
    }
    return;
  }
  if (!value.IsNull()) push(value);
}

bool isUnderscored(std::string_view key, std::string_view name) {
  return key.size() == name.size() + 1 && key[0] == '_' && key.substr(1) == name;
}

// evalMember() over the items: false when the engine must decide (an unknown element, which
// it reports, or primitive extensions).
bool member(PlanScope& scope, const PlanItems& input, std::string_view name, PlanItems& out) {
  // The type model is asked once per run of items of one type (a collection's items mostly
  // share theirs).
  std::string_view type;
  bool looked = false;
  const fhirpath::ElementInfo* info = nullptr;
  int complete = -1;  // typeIsComplete(type), asked only when needed
  auto lookup = [&](std::string_view t) {
    if (looked && t.data() == type.data() && t.size() == type.size()) return;
    type = t;
    looked = true;
    info = scope.elementInfo(t, name);
    complete = -1;
  };
  auto isComplete = [&] {
    if (complete < 0) complete = fhirpath::typeIsComplete(type) ? 1 : 0;
    return complete == 1;
  };
  if (!input.empty()) {
    bool allLack = true;
    for (const PlanItem& item : input) {
      if (item.kind != Kind::kElement) {
        allLack = false;
        break;
      }
      lookup(item.text);
      if (info || !isComplete()) {
        allLack = false;
        break;
      }
    }
    if (allLack) return false;
  }
  for (const PlanItem& item : input) {
    if (item.kind != Kind::kElement || !item.json->IsObject()) continue;
    const rapidjson::Value& obj = *item.json;
    const rapidjson::Value* direct = nullptr;
    for (auto m = obj.MemberBegin(); m != obj.MemberEnd(); ++m) {
      std::string_view key(m->name.GetString(), m->name.GetStringLength());
      if (key == name) {
        if (!direct) direct = &m->value;
      } else if (isUnderscored(key, name)) {
        return false;
      }
    }
    lookup(item.text);
    if (direct) {
      if (info && info->choice) continue;  // value[x] is never spelled "value"
      appendValue(*direct, info ? std::string_view(info->type) : std::string_view(), out);
      continue;
    }
    if (info && !info->choice) continue;
    if (!info && isComplete()) continue;
    // A choice element: name + a type's suffix.
    const std::size_t before = out.size();
    for (auto m = obj.MemberBegin(); m != obj.MemberEnd(); ++m) {
      std::string_view key(m->name.GetString(), m->name.GetStringLength());
      if (key.size() <= name.size() || !key.starts_with(name)) continue;
      std::string_view suffix = key.substr(name.size());
      if (!std::isupper(static_cast<unsigned char>(suffix[0]))) continue;
      auto type = fhirpath::choiceSuffixType(suffix);
      if (!type) continue;
      for (auto e = obj.MemberBegin(); e != obj.MemberEnd(); ++e) {
        if (isUnderscored(std::string_view(e->name.GetString(), e->name.GetStringLength()), key)) {
          return false;
        }
      }
      appendValue(m->value, scope.keep(*type), out);
    }
    if (out.size() == before) {
      for (auto m = obj.MemberBegin(); m != obj.MemberEnd(); ++m) {
        std::string_view key(m->name.GetString(), m->name.GetStringLength());
        if (key.starts_with('_') && key.substr(1).starts_with(name)) return false;
      }
    }
  }
  return true;
}

// matchesType() of ofType() for an element of `type`: a primitive only by its own name, others
// by inheritance.
bool ofTypeMatches(std::string_view type, const std::string& wanted) {
  if (type == wanted) return true;
  // The rest depends on the type model alone (never on a message), so each thread keeps its
  // last answers instead of walking the bases again.
  struct Answer {
    std::string type, wanted;
    bool matches;
  };
  thread_local std::vector<Answer> answers;
  for (const Answer& a : answers) {
    if (a.type == type && a.wanted == wanted) return a.matches;
  }
  bool matches = false;
  if (!fhirpath::isPrimitiveType(type)) {
    std::string t(type);
    for (int guard = 1; guard < 8; ++guard) {
      t = fhirpath::baseType(t);
      if (t.empty()) break;
      if (t == wanted) {
        matches = true;
        break;
      }
    }
  }
  if (answers.size() >= 64) answers.clear();
  answers.push_back(Answer{std::string(type), wanted, matches});
  return matches;
}

// ------------------------------------------------------------------ evaluation

struct Ctx {
  PlanScope& scope;
  const PlanItems* self;  // what $this and function arguments see
};

bool eval(const PlanStep& s, const PlanItems& input, const Ctx& ctx, PlanItems& out);

bool evalStep(const PlanStep& s, const PlanItems& input, const Ctx& ctx, PlanItems& out) {
  PlanScope& scope = ctx.scope;
  switch (s.op) {
    case Op::kString:
      out.push_back(stringItem(s.name));
      return true;
    case Op::kBoolean:
      out.push_back(booleanItem(s.boolean));
      return true;
    case Op::kThis:
      out.insert(out.end(), ctx.self->begin(), ctx.self->end());
      return true;
    case Op::kVariable:
      return scope.variable(s.name, out);
    case Op::kMember:
      return member(scope, input, s.member, out);
    case Op::kDot: {
      PlanItems left(scope.memory());
      if (!eval(*s.kids[0], input, ctx, left)) return false;
      return eval(*s.kids[1], left, ctx, out);
    }
    case Op::kWhere:
    case Op::kSelect: {
      PlanItems one(scope.memory()), r(scope.memory());
      for (const PlanItem& item : input) {
        one.assign(1, item);
        r.clear();
        if (!eval(*s.kids[0], one, Ctx{scope, &one}, r)) return false;
        if (s.op == Op::kSelect) {
          out.insert(out.end(), r.begin(), r.end());
          continue;
        }
        std::optional<bool> b;
        if (!truthOf(scope, r, b)) return false;
        if (b && *b) out.push_back(item);
      }
      return true;
    }
    case Op::kExists:
      out.push_back(booleanItem(!input.empty()));
      return true;
    case Op::kEmpty:
      out.push_back(booleanItem(input.empty()));
      return true;
    case Op::kFirst:
      if (!input.empty()) out.push_back(input.front());
      return true;
    case Op::kLast:
      if (!input.empty()) out.push_back(input.back());
      return true;
    case Op::kOfType:
      for (const PlanItem& item : input) {
        if (item.kind == Kind::kElement && ofTypeMatches(item.text, s.name)) {
          out.push_back(item);
        }
      }
      return true;
    case Op::kStartsWith:
    case Op::kEndsWith:
    case Op::kContainsText: {
      if (input.size() > 1) return false;
      if (input.empty()) return true;
      const Sys v = sysOf(input[0]);
      if (v.kind != Sys::Kind::kString) return false;  // the engine's error, or a conversion
      const bool r = s.op == Op::kStartsWith ? v.text.starts_with(s.name)
                     : s.op == Op::kEndsWith ? v.text.ends_with(s.name)
                                             : v.text.find(s.name) != std::string_view::npos;
      out.push_back(booleanItem(r));
      return true;
    }
    case Op::kToString: {
      if (input.size() > 1) return false;
      if (input.empty()) return true;
      const Sys v = sysOf(input[0]);
      switch (v.kind) {
        case Sys::Kind::kNone:
          return true;
        case Sys::Kind::kString:
          out.push_back(stringItem(v.text));
          return true;
        case Sys::Kind::kBoolean:
          out.push_back(stringItem(v.boolean ? "true" : "false"));
          return true;
        case Sys::Kind::kOther:
          if (auto text = fhirpath::toFhirPathString(engineNode(scope, input[0]))) {
            out.push_back(stringItem(scope.keep(*text)));
          }
          return true;
      }
      return false;
    }
    case Op::kNot: {
      std::optional<bool> b;
      if (!truthOf(scope, input, b)) return false;
      if (b) out.push_back(booleanItem(!*b));
      return true;
    }
    case Op::kAnd:
    case Op::kOr: {
      PlanItems side(scope.memory());
      if (!eval(*s.kids[0], input, ctx, side)) return false;
      std::optional<bool> l, r;
      if (!truthOf(scope, side, l)) return false;
      const bool isAnd = s.op == Op::kAnd;
      if (l && *l != isAnd) {  // false and ..., true or ...
        out.push_back(booleanItem(*l));
        return true;
      }
      side.clear();
      if (!eval(*s.kids[1], input, ctx, side)) return false;
      if (!truthOf(scope, side, r)) return false;
      if (isAnd) {
        if ((l && !*l) || (r && !*r)) {
          out.push_back(booleanItem(false));
        } else if (l && r) {
          out.push_back(booleanItem(true));
        }
      } else {
        if ((l && *l) || (r && *r)) {
          out.push_back(booleanItem(true));
        } else if (l && r) {
          out.push_back(booleanItem(false));
        }
      }
      return true;
    }
    case Op::kEq:
    case Op::kNe:
    case Op::kUnion:
    case Op::kContains:
    case Op::kIn: {
      PlanItems a(scope.memory()), b(scope.memory());
      if (!eval(*s.kids[0], input, ctx, a)) return false;
      if (!eval(*s.kids[1], input, ctx, b)) return false;
      if (s.op == Op::kUnion) {
        for (const PlanItems* side : {&a, &b}) {
          for (const PlanItem& item : *side) {
            bool seen = false;
            if (!containsItem(out, item, seen)) return false;
            if (!seen) out.push_back(item);
          }
        }
        return true;
      }
      if (s.op == Op::kContains || s.op == Op::kIn) {
        const PlanItems& item = s.op == Op::kIn ? a : b;
        const PlanItems& coll = s.op == Op::kIn ? b : a;
        if (item.size() > 1) return false;
        if (item.empty()) return true;
        bool found = false;
        if (!containsItem(coll, item[0], found)) return false;
        out.push_back(booleanItem(found));
        return true;
      }
      const bool eq = s.op == Op::kEq;
      if (a.empty() || b.empty()) return true;
      if (a.size() != b.size()) {
        out.push_back(booleanItem(!eq));
        return true;
      }
      for (std::size_t i = 0; i < a.size(); ++i) {
        const int e = itemEq(a[i], b[i]);
        if (e < 0) return false;
        if (e == 0) {
          out.push_back(booleanItem(!eq));
          return true;
        }
      }
      out.push_back(booleanItem(eq));
      return true;
    }
  }
  return false;
}

bool eval(const PlanStep& s, const PlanItems& input, const Ctx& ctx, PlanItems& out) {
  if (s.memo < 0) return evalStep(s, input, ctx, out);
  if (const PlanItems* kept = ctx.scope.memo(s.memo)) {
    out.insert(out.end(), kept->begin(), kept->end());
    return true;
  }
  const std::size_t from = out.size();
  if (!evalStep(s, input, ctx, out)) return false;
  ctx.scope.store(s.memo, out.data() + from, out.size() - from);
  return true;
}

}  // namespace

// ------------------------------------------------------------------ public

PlanScope::PlanScope(const fhirpath::Node& focus, const fhirpath::Environment& env,
                     std::size_t memoSlots)
    : PlanScope(focus, &env, nullptr, memoSlots) {}

PlanScope::PlanScope(const fhirpath::Node& focus, const PlanVariables& variables,
                     std::size_t memoSlots)
    : PlanScope(focus, nullptr, &variables, memoSlots) {}

PlanScope::PlanScope(const fhirpath::Node& focus, const fhirpath::Environment* env,
                     const PlanVariables* variables, std::size_t memoSlots)
    : focus_(&focus),
      env_(env),
      variables_(variables),
      memory_(buffer_, sizeof buffer_),
      root_(&memory_),
      memo_(&memory_),
      done_(memoSlots, 0, &memory_) {
  memo_.reserve(memoSlots);
  for (std::size_t i = 0; i < memoSlots; ++i) memo_.emplace_back();  // in memory_, as memo_
  // evaluate()'s focus: the resource, or nothing for a default Node; anything else (a System
  // value, a primitive's extension) is the engine's.
  if (!focus.isElement() || focus.primitiveExtension()) {
    usable_ = false;
  } else if (focus.json()) {
    PlanItem root;
    root.json = focus.json();
    root.text = focus.typeName();
    root_.push_back(root);
  }
}

std::string_view PlanScope::keep(std::string_view text) {
  if (text.empty()) return {};
  char* p = static_cast<char*>(memory_.allocate(text.size(), 1));
  std::memcpy(p, text.data(), text.size());
  return std::string_view(p, text.size());
}

const fhirpath::ElementInfo* PlanScope::elementInfo(std::string_view type, std::string_view name) {
  const auto hash = (reinterpret_cast<std::uintptr_t>(type.data()) >> 3) ^
                    (reinterpret_cast<std::uintptr_t>(name.data()) >> 2) ^ type.size();
  ModelEntry& e = model_[(hash ^ (hash >> 6)) & 63];
  if (e.type != type.data() || e.size != type.size() || e.name != name.data() || !e.name) {
    e.type = type.data();
    e.size = type.size();
    e.name = name.data();
    e.info = fhirpath::elementInfo(type, name);
  }
  return e.info;
}

void PlanScope::store(int slot, const PlanItem* items, std::size_t size) {
  memo_[slot].assign(items, items + size);
  done_[slot] = 1;
}

bool PlanScope::variable(std::string_view name, PlanItems& out) const {
  if (variables_) {
    for (auto it = variables_->rbegin(); it != variables_->rend(); ++it) {
      if (it->first != name) continue;
      if (!it->second.empty()) out.push_back(stringItem(it->second));
      return true;
    }
    return false;
  }
  auto it = env_->variables.find(name);
  if (it == env_->variables.end()) return false;
  for (const fhirpath::Node& n : it->second) {
    if (n.kind() == fhirpath::Node::Kind::kString) {
      out.push_back(stringItem(n.stringValue()));
    } else if (n.kind() == fhirpath::Node::Kind::kBoolean) {
      out.push_back(booleanItem(n.booleanValue()));
    } else {
      return false;
    }
  }
  return true;
}

std::size_t PlanMemo::finish() {
  for (auto& [key, steps] : candidates_) {
    if (steps.size() < 2) continue;
    for (PlanStep* s : steps) s->memo = static_cast<int>(size_);
    ++size_;
  }
  candidates_.clear();
  return size_;
}

ReplyPlan::ReplyPlan(std::unique_ptr<PlanStep> root) : root_(std::move(root)) {}
ReplyPlan::~ReplyPlan() = default;

std::unique_ptr<ReplyPlan> ReplyPlan::compile(const fhirpath::Expression& expr, PlanMemo& memo) {
  if (!expr.root()) return nullptr;
  std::map<std::string, std::vector<PlanStep*>, std::less<>> candidates;
  auto root = compileNode(*expr.root(), true, memo, candidates);
  if (!root) return nullptr;
  // Only a whole plan's subexpressions count: those of a plan given up stay out.
  for (auto& [key, steps] : candidates) {
    auto& all = memo.candidates_[key];
    all.insert(all.end(), steps.begin(), steps.end());
  }
  return std::make_unique<ReplyPlan>(std::move(root));
}

bool ReplyPlan::evaluate(PlanScope& scope, PlanItems& out) const {
  if (!scope.usable()) return false;
  out.clear();
  return eval(*root_, scope.root(), Ctx{scope, &scope.root()}, out);
}

bool planText(PlanScope& scope, const PlanItems& items, std::string& out) {
  bool first = true;
  auto put = [&](std::string_view text) {
    if (!first) out += ", ";
    out += text;
    first = false;
  };
  for (const PlanItem& item : items) {
    const Sys v = sysOf(item);
    switch (v.kind) {
      case Sys::Kind::kNone:
        break;
      case Sys::Kind::kString:
        put(v.text);
        break;
      case Sys::Kind::kBoolean:
        put(v.boolean ? "true" : "false");
        break;
      case Sys::Kind::kOther:
        if (auto text = fhirpath::toFhirPathString(engineNode(scope, item))) put(*text);
        break;
    }
  }
  return true;
}

bool planTruth(PlanScope& scope, const PlanItems& items, bool& out) {
  if (items.size() != 1) {
    out = !items.empty();
    return true;
  }
  std::optional<bool> b;
  if (!truthOf(scope, items, b)) return false;
  out = *b;
  return true;
}

}  // namespace switchboard::channels::reply

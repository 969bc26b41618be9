// Fast path for simple FHIRPath expressions. Thread-safety: see fast_path.h.
#include "engine/mapping/fast_path.h"

#include <cctype>

namespace switchboard::mapping {

using fhirpath::Collection;
using fhirpath::Node;

namespace {

bool identStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool identChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

bool keyword(std::string_view s) {
  static const char* kWords[] = {
      "true",        "false",        "and",  "or",    "xor",    "implies", "div",       "mod",
      "in",          "contains",     "as",   "is",    "today",  "now",     "timeOfDay", "not",
      "day",         "days",         "hour", "hours", "minute", "minutes", "second",    "seconds",
      "millisecond", "milliseconds", "week", "weeks", "month",  "months",  "year",      "years"};
  for (const char* w : kWords) {
    if (s == w) return true;
  }
  return false;
}

std::string guessType(const rapidjson::Value& v) {
  if (v.IsBool()) return "boolean";
  if (v.IsInt64()) return "integer";
  if (v.IsNumber()) return "decimal";
  if (v.IsString()) return "string";
  if (v.IsObject()) {
    auto rt = v.FindMember("resourceType");
    if (rt != v.MemberEnd() && rt->value.IsString()) return rt->value.GetString();
  }
  return "";
}

// Children `name` of an untyped JSON object node; false when the engine must decide.
bool child(const Node& node, const std::string& name, Collection& out) {
  if (!node.isElement()) return false;
  const rapidjson::Value* obj = node.json();
  if (!obj) return false;
  if (!obj->IsObject()) return node.primitiveExtension() == nullptr;  // a primitive has no members
  if (!node.typeName().empty() || obj->HasMember("resourceType")) return false;
  const std::string underscore = "_" + name;
  if (obj->HasMember(underscore.c_str())) return false;
  auto it = obj->FindMember(rapidjson::StringRef(name.data(), name.size()));
  if (it == obj->MemberEnd()) {
    // A choice element (name + TypeSuffix) is the engine's business.
    for (auto m = obj->MemberBegin(); m != obj->MemberEnd(); ++m) {
      std::string_view key(m->name.GetString(), m->name.GetStringLength());
      if (key.size() > name.size() && key.starts_with(name) &&
          std::isupper(static_cast<unsigned char>(key[name.size()])))
        return false;
    }
    return true;
  }
  const rapidjson::Value& v = it->value;
  if (v.IsArray()) {
    for (const auto& item : v.GetArray()) {
      if (item.IsNull()) continue;
      out.push_back(Node::element(node.document(), &item, nullptr, guessType(item), name));
    }
  } else if (!v.IsNull()) {
    out.push_back(Node::element(node.document(), &v, nullptr, guessType(v), name));
  }
  return true;
}

// The string of a single item, or nullptr when it is not a string.
const std::string* stringOf(const Node& n, std::string& buffer) {
  if (n.kind() == Node::Kind::kString) return &n.stringValue();
  if (n.isElement() && n.json() && n.json()->IsString() && !n.primitiveExtension()) {
    buffer.assign(n.json()->GetString(), n.json()->GetStringLength());
    return &buffer;
  }
  return nullptr;
}

// Children `name` of a raw untyped JSON value; false when the engine must decide.
bool childJson(const rapidjson::Value* v, const std::string& name,
               std::vector<const rapidjson::Value*>& out) {
  if (!v->IsObject()) return true;  // a primitive has no members
  if (v->HasMember("resourceType")) return false;
  const std::string underscore = "_" + name;
  if (v->HasMember(underscore.c_str())) return false;
  auto it = v->FindMember(rapidjson::StringRef(name.data(), name.size()));
  if (it == v->MemberEnd()) {
    for (auto m = v->MemberBegin(); m != v->MemberEnd(); ++m) {
      std::string_view key(m->name.GetString(), m->name.GetStringLength());
      if (key.size() > name.size() && key.starts_with(name) &&
          std::isupper(static_cast<unsigned char>(key[name.size()])))
        return false;
    }
    return true;
  }
  if (it->value.IsArray()) {
    for (const auto& item : it->value.GetArray()) {
      if (item.IsArray()) return false;
      if (!item.IsNull()) out.push_back(&item);
    }
  } else if (!it->value.IsNull()) {
    out.push_back(&it->value);
  }
  return true;
}

}  // namespace

bool runFastJson(const FastPlan& plan, const Node& focus, const fhirpath::Environment& env,
                 std::vector<const rapidjson::Value*>& values, std::optional<std::string>& text) {
  if (plan.op != FastPlan::Op::kNone) return false;
  if (plan.fn != FastPlan::Fn::kNone && plan.fn != FastPlan::Fn::kTrim) return false;
  values.clear();
  text.reset();
  if (!plan.var.empty()) {
    auto it = env.variables.find(plan.var);
    if (it == env.variables.end()) return false;
    for (const Node& n : it->second) {
      if (n.kind() == Node::Kind::kString && plan.path.empty() && it->second.size() == 1) {
        text = n.stringValue();
        break;
      }
      if (!n.isElement() || !n.json() || n.primitiveExtension()) return false;
      if (n.json()->IsObject() && !n.typeName().empty()) return false;
      values.push_back(n.json());
    }
  } else {
    if (!focus.isElement() || !focus.json() || !focus.typeName().empty()) return false;
    values.push_back(focus.json());
  }
  for (const std::string& name : plan.path) {
    std::vector<const rapidjson::Value*> next;
    for (const rapidjson::Value* v : values) {
      if (!childJson(v, name, next)) return false;
    }
    values = std::move(next);
  }
  if (plan.fn == FastPlan::Fn::kTrim) {
    if (text) {
      // handled below
    } else if (values.empty()) {
      return true;
    } else if (values.size() > 1 || !values.front()->IsString()) {
      return false;
    } else {
      text = std::string(values.front()->GetString(), values.front()->GetStringLength());
      values.clear();
    }
    std::size_t b = 0, e = text->size();
    while (b < e && std::isspace(static_cast<unsigned char>((*text)[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>((*text)[e - 1]))) --e;
    *text = text->substr(b, e - b);
  }
  return true;
}

std::optional<FastPlan> planFast(std::string_view s) {
  FastPlan plan;
  std::size_t i = 0;
  auto ident = [&](std::string& out) {
    if (i >= s.size() || !identStart(s[i])) return false;
    std::size_t b = i;
    while (i < s.size() && identChar(s[i])) ++i;
    out.assign(s.substr(b, i - b));
    return true;
  };
  if (i < s.size() && s[i] == '%') {
    ++i;
    if (!ident(plan.var)) return std::nullopt;
  } else {
    std::string first;
    if (!ident(first) || keyword(first) || std::isupper(static_cast<unsigned char>(first[0])))
      return std::nullopt;
    plan.path.push_back(first);
  }
  while (i < s.size() && s[i] == '.') {
    ++i;
    std::string name;
    if (!ident(name)) return std::nullopt;
    if (i < s.size() && s[i] == '(') {
      if (s.substr(i, 2) != "()") return std::nullopt;
      i += 2;
      if (name == "trim")
        plan.fn = FastPlan::Fn::kTrim;
      else if (name == "lower")
        plan.fn = FastPlan::Fn::kLower;
      else if (name == "exists")
        plan.fn = FastPlan::Fn::kExists;
      else
        return std::nullopt;
      break;
    }
    if (keyword(name)) return std::nullopt;
    plan.path.push_back(name);
  }
  while (i < s.size() && s[i] == ' ') ++i;
  if (i < s.size()) {
    if (plan.fn == FastPlan::Fn::kExists) return std::nullopt;
    if (s.substr(i, 3) == "in " || s.substr(i, 3) == "in(") {
      // `in ('a' | 'b' | ...)`: string literals only.
      plan.op = FastPlan::Op::kIn;
      i += 2;
      while (i < s.size() && s[i] == ' ') ++i;
      if (i >= s.size() || s[i] != '(') return std::nullopt;
      ++i;
      for (;;) {
        while (i < s.size() && s[i] == ' ') ++i;
        if (i >= s.size() || s[i] != '\'') return std::nullopt;
        std::size_t close = s.find('\'', i + 1);
        if (close == std::string_view::npos) return std::nullopt;
        std::string lit(s.substr(i + 1, close - i - 1));
        if (lit.find('\\') != std::string::npos) return std::nullopt;
        plan.literals.push_back(std::move(lit));
        i = close + 1;
        while (i < s.size() && s[i] == ' ') ++i;
        if (i < s.size() && s[i] == '|') {
          ++i;
          continue;
        }
        if (i < s.size() && s[i] == ')') {
          ++i;
          break;
        }
        return std::nullopt;
      }
      while (i < s.size() && s[i] == ' ') ++i;
      if (i != s.size() || plan.literals.empty()) return std::nullopt;
      return plan;
    }
    if (s.substr(i, 2) == "!=") {
      plan.op = FastPlan::Op::kNe;
      i += 2;
    } else if (s[i] == '=') {
      plan.op = FastPlan::Op::kEq;
      i += 1;
    } else {
      return std::nullopt;
    }
    while (i < s.size() && s[i] == ' ') ++i;
    if (i >= s.size() || s[i] != '\'') return std::nullopt;
    std::size_t close = s.find('\'', i + 1);
    if (close == std::string_view::npos || close != s.size() - 1) return std::nullopt;
    plan.literal.assign(s.substr(i + 1, close - i - 1));
    if (plan.literal.find('\\') != std::string::npos) return std::nullopt;
  }
  return plan;
}

std::optional<Collection> runFast(const FastPlan& plan, const Node& focus,
                                  const fhirpath::Environment& env) {
  Collection items;
  if (!plan.var.empty()) {
    auto it = env.variables.find(plan.var);
    if (it == env.variables.end()) return std::nullopt;
    items = it->second;
  } else {
    items.push_back(focus);
  }
  for (const std::string& name : plan.path) {
    Collection next;
    for (const Node& n : items) {
      if (!child(n, name, next)) return std::nullopt;
    }
    items = std::move(next);
  }
  std::string buffer;
  switch (plan.fn) {
    case FastPlan::Fn::kNone:
      break;
    case FastPlan::Fn::kExists:
      return Collection{Node::boolean(!items.empty())};
    case FastPlan::Fn::kTrim:
    case FastPlan::Fn::kLower: {
      if (items.empty()) break;
      if (items.size() > 1) return std::nullopt;
      const std::string* s = stringOf(items.front(), buffer);
      if (!s) return std::nullopt;
      std::string v;
      if (plan.fn == FastPlan::Fn::kTrim) {
        std::size_t b = 0, e = s->size();
        while (b < e && std::isspace(static_cast<unsigned char>((*s)[b]))) ++b;
        while (e > b && std::isspace(static_cast<unsigned char>((*s)[e - 1]))) --e;
        v = s->substr(b, e - b);
      } else {
        v = *s;
        for (char& c : v) {
          if (static_cast<unsigned char>(c) >= 0x80) return std::nullopt;
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
      }
      items = Collection{Node::string(std::move(v))};
      break;
    }
  }
  if (plan.op == FastPlan::Op::kNone) return items;
  if (items.empty()) return Collection{};
  if (items.size() > 1) return std::nullopt;
  const std::string* s = stringOf(items.front(), buffer);
  if (!s) return std::nullopt;
  if (plan.op == FastPlan::Op::kIn) {
    bool found = false;
    for (const std::string& lit : plan.literals) found = found || *s == lit;
    return Collection{Node::boolean(found)};
  }
  const bool equal = *s == plan.literal;
  return Collection{Node::boolean(plan.op == FastPlan::Op::kEq ? equal : !equal)};
}

}  // namespace switchboard::mapping

// Mapping-file loader (checks and compiles the template once) and evaluator (one pass over the
// compiled template per input). Thread-safety: see mapping.h; all per-run state lives in Run.
#include "engine/mapping/mapping.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <vector>

#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "engine/core/time_zone.h"
#include "engine/mapping/directives.h"
#include "engine/mapping/flow_input.h"
#include "engine/mapping/hl7_input.h"
#include "engine/mapping/template.h"
#include "engine/mapping/uuid.h"
#include "hl7v2/message.h"
#include "hl7v2/path.h"

namespace switchboard::mapping {

using fhirpath::Collection;
using fhirpath::Node;
using JsonValue = rapidjson::Value;
using Alloc = rapidjson::Document::AllocatorType;
using namespace detail;  // NOLINT(google-build-using-namespace): the template types

namespace detail {

// Short, printable rendering of an input value for an error message (codes, not free text).
std::string quoteValue(std::string_view v) {
  std::string out = "\"";
  for (std::size_t i = 0; i < v.size() && i < 40; ++i) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    out.push_back(c < 0x20 || c == '"' || c == '\\' || c >= 0x7f ? '?' : static_cast<char>(c));
  }
  if (v.size() > 40) out += "...";
  return out + "\"";
}

std::string emptyUpdateSearch(const ResourceSpec& spec) {
  return spec.pointer + "/ifNoneExist: the search of a conditional update yields nothing";
}

void percentEncode(std::string_view s, std::string& out) {
  static const char* kHex = "0123456789ABCDEF";
  // Kept as they are: ASCII letters and digits (std::isalnum in the "C" locale, which the engine
  // never leaves) and - . _ ~ : / @.
  static constexpr auto kKeep = [] {
    std::array<bool, 256> keep{};
    for (int c = 0; c < 256; ++c) {
      keep[c] = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                c == '-' || c == '.' || c == '_' || c == '~' || c == ':' || c == '/' || c == '@';
    }
    return keep;
  }();
  const std::size_t start = out.size();
  out.resize_and_overwrite(start + 3 * s.size(), [&](char* p, std::size_t) {
    std::size_t k = start;
    for (char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      if (kKeep[c]) {
        p[k++] = ch;
      } else {
        p[k++] = '%';
        p[k++] = kHex[c >> 4];
        p[k++] = kHex[c & 15];
      }
    }
    return k;
  });
}

// Removes nulls, blank strings and empty objects/arrays; true when `v` itself is left empty.
bool prune(JsonValue& v) {
  if (v.IsNull()) return true;
  if (v.IsString()) return isBlank(std::string_view(v.GetString(), v.GetStringLength()));
  if (v.IsObject()) {
    for (auto it = v.MemberBegin(); it != v.MemberEnd();) {
      if (prune(it->value))
        it = v.EraseMember(it);
      else
        ++it;
    }
    return v.ObjectEmpty();
  }
  if (v.IsArray()) {
    for (auto it = v.Begin(); it != v.End();) {
      if (prune(*it))
        it = v.Erase(it);
      else
        ++it;
    }
    return v.Empty();
  }
  return false;
}

std::string locationOf(const TNode* n) {
  if (n && n->kind == TNode::Kind::kExpr) return n->expr.text();
  return n ? n->pointer : std::string();
}

}  // namespace detail

namespace {

std::string trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string escapePointer(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out.push_back(c);
  }
  return out;
}

bool validName(std::string_view s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

// Compiles one FHIRPath expression; in a mapping with HL7 v2 input (`rewritten` not null),
// `hl7('PATH')` is rewritten first (hl7_input.h) and the pair is recorded so that error messages
// can show the text as written.
Result<fhirpath::Expression> compileFhirPath(const std::string& text,
                                             std::map<std::string, std::string>* rewritten) {
  if (rewritten) {
    auto r = rewriteHl7Paths(text);
    if (!r) return std::unexpected(r.error());
    if (*r) {
      (*rewritten)[**r] = text;
      return fhirpath::compile(**r);
    }
  }
  return fhirpath::compile(text);
}

// Splits "a {{ x }} b" into pieces; an error for an unterminated `{{`.
Result<std::vector<Piece>> splitTemplate(std::string_view s, const std::string& where,
                                         std::map<std::string, std::string>* hl7) {
  std::vector<Piece> pieces;
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t open = s.find("{{", i);
    if (open == std::string_view::npos) {
      pieces.push_back({std::string(s.substr(i)), std::nullopt});
      break;
    }
    if (open > i) pieces.push_back({std::string(s.substr(i, open - i)), std::nullopt});
    std::size_t close = s.find("}}", open + 2);
    if (close == std::string_view::npos)
      return fail(ErrorCode::kInvalid, where + ": \"{{\" without \"}}\"", where);
    std::string text = trim(s.substr(open + 2, close - open - 2));
    if (text.empty()) return fail(ErrorCode::kInvalid, where + ": empty \"{{ }}\"", where);
    auto expr = compileFhirPath(text, hl7);
    if (!expr) {
      return fail(ErrorCode::kInvalid,
                  where + ": FHIRPath " + quoteValue(text) + ": " + expr.error().message, where);
    }
    pieces.push_back({text, std::move(*expr)});
    i = close + 2;
  }
  return pieces;
}

}  // namespace

// ------------------------------------------------------------------ the loaded mapping

Result<fhirpath::Expression> Mapping::Impl::compileExpr(const JsonValue& v,
                                                        const std::string& pointer) const {
  if (!v.IsString()) return std::unexpected(loadError(pointer, "expected a FHIRPath string"));
  std::string text = trim(std::string_view(v.GetString(), v.GetStringLength()));
  if (text.starts_with("{{") && text.ends_with("}}") && text.size() >= 4 &&
      text.find("{{", 2) == std::string::npos) {
    text = trim(std::string_view(text).substr(2, text.size() - 4));
  }
  if (text.empty()) return std::unexpected(loadError(pointer, "empty expression"));
  auto expr = compileFhirPath(text, hl7Input ? &hl7Rewritten : nullptr);
  if (!expr)
    return std::unexpected(
        loadError(pointer, "FHIRPath " + quoteValue(text) + ": " + expr.error().message));
  return expr;
}

Result<TNodePtr> Mapping::Impl::compile(const JsonValue& v, const std::string& pointer) const {
  auto node = std::make_unique<TNode>();
  node->pointer = pointer;
  if (v.IsString()) {
    std::string_view s(v.GetString(), v.GetStringLength());
    if (s.find("{{") == std::string_view::npos) {
      node->literal = &v;
      return node;
    }
    auto pieces = splitTemplate(s, file + ": " + pointer, hl7Input ? &hl7Rewritten : nullptr);
    if (!pieces)
      return std::unexpected(Error(pieces.error().code, pieces.error().message, pointer));
    bool single = false;
    int exprs = 0;
    for (auto& p : *pieces) exprs += p.expr ? 1 : 0;
    if (exprs == 1) {
      single = true;
      for (auto& p : *pieces) {
        if (!p.expr && !isBlank(p.text)) single = false;
      }
    }
    if (single) {
      node->kind = TNode::Kind::kExpr;
      for (auto& p : *pieces) {
        if (p.expr) node->expr = *p.expr;
      }
    } else {
      node->kind = TNode::Kind::kText;
      node->pieces = std::move(*pieces);
    }
    return node;
  }
  if (v.IsArray()) {
    node->kind = TNode::Kind::kArray;
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
      auto child = compile(v[i], pointer + "/" + std::to_string(i));
      if (!child) return child;
      node->elements.push_back(std::move(*child));
    }
    return node;
  }
  if (v.IsObject()) {
    node->kind = TNode::Kind::kObject;
    if (auto r = compileObject(v, *node); !r) return std::unexpected(r.error());
    return node;
  }
  node->literal = &v;  // number, boolean, null
  return node;
}

Result<void> Mapping::Impl::compileObject(const JsonValue& v, TNode& node) const {
  const std::string& ptr = node.pointer;
  bool hasAs = false;
  for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
    std::string key(it->name.GetString(), it->name.GetStringLength());
    const std::string at = ptr + "/" + escapePointer(key);
    const JsonValue& val = it->value;
    if (!key.starts_with("$")) {
      auto child = compile(val, at);
      if (!child) return std::unexpected(child.error());
      node.members.push_back({key, std::move(*child), -1, {}, 0, {}});
      continue;
    }
    if (key == "$if") {
      auto e = compileExpr(val, at);
      if (!e) return std::unexpected(e.error());
      node.ifExpr = std::move(*e);
    } else if (key == "$each") {
      auto e = compileExpr(val, at);
      if (!e) return std::unexpected(e.error());
      node.eachExpr = std::move(*e);
    } else if (key == "$as") {
      if (!val.IsString() || !validName(val.GetString()))
        return std::unexpected(loadError(at, "expected a variable name ([A-Za-z_][A-Za-z0-9_]*)"));
      node.asName = val.GetString();
      hasAs = true;
    } else if (key == "$let") {
      if (!val.IsObject())
        return std::unexpected(loadError(at, "expected an object of name: value"));
      for (auto l = val.MemberBegin(); l != val.MemberEnd(); ++l) {
        std::string name(l->name.GetString(), l->name.GetStringLength());
        if (!validName(name))
          return std::unexpected(loadError(at + "/" + escapePointer(name), "not a variable name"));
        auto child = compile(l->value, at + "/" + escapePointer(name));
        if (!child) return std::unexpected(child.error());
        node.lets.push_back({name, std::move(*child), -1, {}, 0, {}});
      }
    } else if (key == "$value") {
      if (node.value)
        return std::unexpected(loadError(at, "only one of $value, $translate, $localInstant"));
      auto child = compile(val, at);
      if (!child) return std::unexpected(child.error());
      node.value = std::move(*child);
    } else if (key == "$fromHl7Date" || key == "$toHl7Date") {
      if (node.value)
        return std::unexpected(loadError(at,
                                         "only one of $value, $translate, $localInstant, "
                                         "$fromHl7Date, $toHl7Date"));
      auto op = std::make_unique<TNode>();
      op->pointer = at;
      op->kind = key == "$toHl7Date" ? TNode::Kind::kToHl7Date : TNode::Kind::kFromHl7Date;
      op->select = "dateTime";
      if (!val.IsObject()) {  // shorthand: the value itself
        auto child = compile(val, at);
        if (!child) return std::unexpected(child.error());
        op->date = std::move(*child);
      } else {
        for (auto f = val.MemberBegin(); f != val.MemberEnd(); ++f) {
          const std::string k = f->name.GetString();
          const std::string fat = at + "/" + escapePointer(k);
          if (k == "value" || k == "zone") {
            auto child = compile(f->value, fat);
            if (!child) return std::unexpected(child.error());
            (k == "value" ? op->date : op->zone) = std::move(*child);
          } else if (k == "as" && op->kind == TNode::Kind::kFromHl7Date) {
            const std::string as = f->value.IsString() ? f->value.GetString() : "";
            if (as != "date" && as != "dateTime" && as != "instant")
              return std::unexpected(loadError(fat, "expected date, dateTime or instant"));
            op->select = as;
          } else {
            return std::unexpected(loadError(
                fat, "unknown key of " + key +
                         (op->kind == TNode::Kind::kFromHl7Date ? " (expected value, as, zone)"
                                                                : " (expected value)")));
          }
        }
        if (!op->date) return std::unexpected(loadError(at + "/value", "required"));
        if (op->zone && op->kind == TNode::Kind::kToHl7Date)
          return std::unexpected(loadError(at + "/zone", "unknown key of " + key));
      }
      node.value = std::move(op);
    } else if (key == "$translate" || key == "$localInstant") {
      if (node.value)
        return std::unexpected(loadError(at, "only one of $value, $translate, $localInstant"));
      if (!val.IsObject()) return std::unexpected(loadError(at, "expected an object"));
      auto op = std::make_unique<TNode>();
      op->pointer = at;
      auto sub = [&](const char* name, bool needed, TNodePtr& out) -> Result<void> {
        auto f = val.FindMember(name);
        if (f == val.MemberEnd()) {
          if (needed) return std::unexpected(loadError(at + "/" + name, "required"));
          return {};
        }
        auto child = compile(f->value, at + "/" + name);
        if (!child) return std::unexpected(child.error());
        out = std::move(*child);
        return {};
      };
      std::set<std::string> allowed;
      if (key == "$translate") {
        op->kind = TNode::Kind::kTranslate;
        allowed = {"map", "code", "system", "required", "select"};
        auto m = val.FindMember("map");
        if (m == val.MemberEnd() || !m->value.IsString())
          return std::unexpected(loadError(at + "/map", "expected the ConceptMap id, name or url"));
        op->mapName = m->value.GetString();
        if (maps) op->map = maps->find(op->mapName);
        if (!op->map)
          return std::unexpected(
              loadError(at + "/map", "no ConceptMap \"" + op->mapName + "\" loaded"));
        if (auto r = sub("code", true, op->code); !r) return r;
        if (auto r = sub("system", false, op->system); !r) return r;
        auto req = val.FindMember("required");
        if (req != val.MemberEnd()) {
          if (!req->value.IsBool())
            return std::unexpected(loadError(at + "/required", "expected a boolean"));
          op->required = req->value.GetBool();
        }
        op->select = "coding";
        auto sel = val.FindMember("select");
        if (sel != val.MemberEnd()) {
          static const std::set<std::string> kSelect = {"coding", "code", "system", "display",
                                                        "source-display"};
          if (!sel->value.IsString() || !kSelect.count(sel->value.GetString()))
            return std::unexpected(loadError(
                at + "/select", "expected coding, code, system, display or source-display"));
          op->select = sel->value.GetString();
        }
        op->selectKind = op->select == "code"             ? TNode::Select::kCode
                         : op->select == "system"         ? TNode::Select::kSystem
                         : op->select == "display"        ? TNode::Select::kDisplay
                         : op->select == "source-display" ? TNode::Select::kSourceDisplay
                                                          : TNode::Select::kCoding;
      } else {
        op->kind = TNode::Kind::kLocalInstant;
        allowed = {"date", "time", "zone", "addMinutes"};
        if (auto r = sub("date", true, op->date); !r) return r;
        if (auto r = sub("time", true, op->time); !r) return r;
        if (auto r = sub("zone", false, op->zone); !r) return r;
        if (auto r = sub("addMinutes", false, op->addMinutes); !r) return r;
      }
      for (auto f = val.MemberBegin(); f != val.MemberEnd(); ++f) {
        if (!allowed.count(f->name.GetString()))
          return std::unexpected(
              loadError(at + "/" + escapePointer(f->name.GetString()), "unknown key of " + key));
      }
      node.value = std::move(op);
    } else {
      return std::unexpected(loadError(
          at,
          "unknown directive (expected $if, $each, $as, $let, $value, $translate, $localInstant, "
          "$fromHl7Date, $toHl7Date)"));
    }
  }
  if (hasAs && !node.eachExpr) return std::unexpected(loadError(ptr + "/$as", "$as without $each"));
  if (node.eachExpr && node.asName.empty()) node.asName = "item";
  if (node.value && !node.members.empty()) {
    return std::unexpected(loadError(
        ptr, "an object with $value, $translate or $localInstant has no other (non-$) keys"));
  }
  return {};
}

Result<void> Mapping::Impl::compileSegments() {
  auto it = doc->FindMember("segments");
  if (it == doc->MemberEnd() || !it->value.IsArray() || it->value.Empty())
    return std::unexpected(
        loadError("/segments", "required: a non-empty array of segment templates"));
  for (rapidjson::SizeType i = 0; i < it->value.Size(); ++i) {
    const JsonValue& v = it->value[i];
    const std::string at = "/segments/" + std::to_string(i);
    if (!v.IsObject())
      return std::unexpected(loadError(at, "expected an object of HL7 path: value"));
    auto compiled = compile(v, at);
    if (!compiled) return std::unexpected(compiled.error());
    SegmentSpec spec;
    spec.node = std::move(*compiled);
    if (spec.node->value)
      return std::unexpected(
          loadError(at, "a segment takes HL7 path keys, not $value or operators"));
    for (const Member& member : spec.node->members) {
      const std::string mat = at + "/" + escapePointer(member.key);
      auto path = hl7v2::Path::parse(member.key);
      if (!path || path->field == 0 || member.key.find('[') != std::string::npos) {
        return std::unexpected(loadError(
            mat,
            "expected an HL7 path with a field and no [occurrence], such as PID-5.1 or "
            "PID-3(2).4 (" +
                (path ? std::string("the segment's place in the list gives its occurrence")
                      : path.error().message) +
                ")"));
      }
      if (spec.id.empty()) spec.id = path->segment;
      if (path->segment != spec.id)
        return std::unexpected(
            loadError(mat, "every key of one segment names the same segment (" + spec.id + ")"));
      if (spec.id == "MSH" && path->field <= 2)
        return std::unexpected(
            loadError(mat, "MSH-1 and MSH-2 are written by the engine (|^~\\&)"));
      spec.paths.push_back(member.key.substr(3));
    }
    if (spec.id.empty())
      return std::unexpected(loadError(at, "a segment needs at least one HL7 path key"));
    if (i == 0 && (spec.id != "MSH" || spec.node->eachExpr || spec.node->ifExpr))
      return std::unexpected(loadError(at, "the first segment is MSH (without $each or $if)"));
    if (i > 0 && spec.id == "MSH")
      return std::unexpected(loadError(at, "only one MSH (batches are not supported)"));
    segments.push_back(std::move(spec));
  }
  return {};
}

// ------------------------------------------------------------------ evaluation

namespace {

// Sets variables for a scope and restores what they were when it ends.
class VarScope {
 public:
  explicit VarScope(fhirpath::Environment& env) : env_(env) {}
  ~VarScope() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second)
        env_.variables[it->first] = std::move(*it->second);
      else
        env_.variables.erase(it->first);
    }
  }
  void set(const std::string& name, Collection value) {
    auto it = env_.variables.find(name);
    saved_.emplace_back(name, it == env_.variables.end()
                                  ? std::nullopt
                                  : std::optional<Collection>(std::move(it->second)));
    env_.variables[name] = std::move(value);
  }

 private:
  fhirpath::Environment& env_;
  std::vector<std::pair<std::string, std::optional<Collection>>> saved_;
};

}  // namespace

struct Run {
  const Mapping::Impl& m;
  fhirpath::Environment env;
  Node focus;
  rapidjson::Document out;

  Error error(ErrorCode code, const std::string& what, const std::string& location) const {
    return Error(code, "mapping " + m.id + ": " + what, location);
  }

  Result<Collection> eval(const fhirpath::Expression& e, const std::string& pointer) {
    auto r = fhirpath::evaluate(e, focus, env);
    if (!r) {
      return std::unexpected(
          error(ErrorCode::kInvalid,
                pointer + ": " + quoteValue(e.text()) + " failed: " + r.error().message, e.text()));
    }
    return r;
  }

  // As FHIR invariants convert: empty -> no value, one boolean -> it, one other item -> true.
  Result<std::optional<bool>> evalBool(const fhirpath::Expression& e) {
    return fhirpath::evaluateBoolean(e, focus, env);
  }

  // One item as output JSON; false when it vanishes.
  bool itemToJson(const Node& item, JsonValue& v) {
    if (item.kind() == Node::Kind::kString) {
      if (isBlank(item.stringValue())) return false;
      v.SetString(item.stringValue().c_str(),
                  static_cast<rapidjson::SizeType>(item.stringValue().size()), out.GetAllocator());
      return true;
    }
    fhirpath::toJson(item, v, out.GetAllocator());
    return !prune(v);
  }

  // The single string value of `node` (for $translate codes, $localInstant parts): empty optional
  // when it vanishes.
  Result<std::optional<std::string>> scalarText(const TNode& node) {
    std::vector<JsonValue> vals;
    if (auto r = evalMany(node, vals); !r) return std::unexpected(r.error());
    if (vals.empty()) return std::optional<std::string>();
    if (vals.size() > 1)
      return std::unexpected(
          error(ErrorCode::kInvalid,
                node.pointer + ": expected one value, got " + std::to_string(vals.size()),
                locationOf(&node)));
    const JsonValue& v = vals.front();
    if (v.IsString())
      return std::optional<std::string>(std::string(v.GetString(), v.GetStringLength()));
    if (v.IsInt64()) return std::optional<std::string>(std::to_string(v.GetInt64()));
    if (v.IsNumber())
      return std::optional<std::string>(fhirpath::Decimal::fromDouble(v.GetDouble()).toString());
    if (v.IsBool()) return std::optional<std::string>(v.GetBool() ? "true" : "false");
    return std::unexpected(error(ErrorCode::kInvalid, node.pointer + ": expected a primitive value",
                                 locationOf(&node)));
  }

  Result<void> evalMany(const TNode& node, std::vector<JsonValue>& vals);
  Result<void> evalObjectBody(const TNode& node, std::vector<JsonValue>& vals);
  Result<void> evalTranslate(const TNode& node, std::vector<JsonValue>& vals);
  Result<void> evalLocalInstant(const TNode& node, std::vector<JsonValue>& vals);
  Result<void> evalHl7Date(const TNode& node, std::vector<JsonValue>& vals);
  Result<std::optional<std::string>> defaultZone();
  Result<std::optional<std::string>> evalText(const std::vector<Piece>& pieces,
                                              const std::string& pointer, bool urlEncode);
};

Result<std::optional<std::string>> Run::evalText(const std::vector<Piece>& pieces,
                                                 const std::string& pointer, bool urlEncode) {
  std::string text;
  for (const Piece& p : pieces) {
    if (!p.expr) {
      text += p.text;
      continue;
    }
    auto items = eval(*p.expr, pointer);
    if (!items) return std::unexpected(items.error());
    if (items->empty()) return std::optional<std::string>();
    if (items->size() > 1) {
      return std::unexpected(error(ErrorCode::kInvalid,
                                   pointer + ": " + quoteValue(p.text) + " yields " +
                                       std::to_string(items->size()) + " items inside text",
                                   p.text));
    }
    auto s = fhirpath::toFhirPathString(items->front());
    if (!s) {
      return std::unexpected(
          error(ErrorCode::kInvalid,
                pointer + ": " + quoteValue(p.text) + " is not a primitive value", p.text));
    }
    if (isBlank(*s)) return std::optional<std::string>();
    if (urlEncode)
      percentEncode(*s, text);
    else
      text += *s;
  }
  if (isBlank(text)) return std::optional<std::string>();
  return std::optional<std::string>(std::move(text));
}

Result<void> Run::evalMany(const TNode& node, std::vector<JsonValue>& vals) {
  auto& alloc = out.GetAllocator();
  switch (node.kind) {
    case TNode::Kind::kLiteral: {
      JsonValue v(*node.literal, alloc);
      if (!prune(v)) vals.push_back(std::move(v));
      return {};
    }
    case TNode::Kind::kExpr: {
      auto items = eval(node.expr, node.pointer);
      if (!items) return std::unexpected(items.error());
      for (const Node& item : *items) {
        JsonValue v;
        if (itemToJson(item, v)) vals.push_back(std::move(v));
      }
      return {};
    }
    case TNode::Kind::kText: {
      auto s = evalText(node.pieces, node.pointer, false);
      if (!s) return std::unexpected(s.error());
      if (*s)
        vals.emplace_back((*s)->c_str(), static_cast<rapidjson::SizeType>((*s)->size()), alloc);
      return {};
    }
    case TNode::Kind::kArray: {
      std::vector<JsonValue> items;
      for (const auto& el : node.elements) {
        if (auto r = evalMany(*el, items); !r) return r;
      }
      if (items.empty()) return {};
      JsonValue a(rapidjson::kArrayType);
      a.Reserve(static_cast<rapidjson::SizeType>(items.size()), alloc);
      for (auto& i : items) a.PushBack(std::move(i), alloc);
      vals.push_back(std::move(a));
      return {};
    }
    case TNode::Kind::kObject: {
      if (!node.eachExpr) return evalObjectBody(node, vals);
      auto items = eval(*node.eachExpr, node.pointer + "/$each");
      if (!items) return std::unexpected(items.error());
      for (std::size_t i = 0; i < items->size(); ++i) {
        VarScope scope(env);
        scope.set(node.asName, Collection{(*items)[i]});
        scope.set(node.asName + "Index", Collection{Node::integer(static_cast<std::int64_t>(i))});
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
      return evalHl7Date(node, vals);
  }
  return {};
}

Result<void> Run::evalHl7Date(const TNode& node, std::vector<JsonValue>& vals) {
  return hl7DateDirective(*this, node, vals, out.GetAllocator());
}

Result<void> Run::evalObjectBody(const TNode& node, std::vector<JsonValue>& vals) {
  VarScope scope(env);
  for (const Member& let : node.lets) {
    Collection value;
    if (let.node->kind == TNode::Kind::kExpr) {
      auto items = eval(let.node->expr, let.node->pointer);
      if (!items) return std::unexpected(items.error());
      value = std::move(*items);
    } else {
      std::vector<JsonValue> parts;
      if (auto r = evalMany(*let.node, parts); !r) return r;
      fhirpath::Environment tmp;
      for (auto& part : parts) {
        tmp.setVariable("v", part);
        for (auto& n : tmp.variables["v"]) value.push_back(std::move(n));
      }
    }
    scope.set(let.key, std::move(value));
  }
  if (node.ifExpr) {
    auto cond = evalBool(*node.ifExpr);
    if (!cond) {
      return std::unexpected(error(ErrorCode::kInvalid,
                                   node.pointer + "/$if: " + quoteValue(node.ifExpr->text()) +
                                       " failed: " + cond.error().message,
                                   node.ifExpr->text()));
    }
    if (!cond->value_or(false)) return {};
  }
  if (node.value) return evalMany(*node.value, vals);
  auto& alloc = out.GetAllocator();
  JsonValue obj(rapidjson::kObjectType);
  for (const Member& member : node.members) {
    std::vector<JsonValue> parts;
    if (auto r = evalMany(*member.node, parts); !r) return r;
    if (parts.empty()) continue;
    const bool repeated = member.node->kind == TNode::Kind::kObject && member.node->eachExpr;
    JsonValue key(member.key.c_str(), static_cast<rapidjson::SizeType>(member.key.size()), alloc);
    if (parts.size() == 1 && !repeated) {
      obj.AddMember(key, std::move(parts.front()), alloc);
    } else {
      JsonValue a(rapidjson::kArrayType);
      for (auto& p : parts) a.PushBack(std::move(p), alloc);
      obj.AddMember(key, std::move(a), alloc);
    }
  }
  if (!obj.ObjectEmpty()) vals.push_back(std::move(obj));
  return {};
}

Result<void> Run::evalTranslate(const TNode& node, std::vector<JsonValue>& vals) {
  return translateDirective(*this, node, vals, out.GetAllocator());
}

Result<void> Run::evalLocalInstant(const TNode& node, std::vector<JsonValue>& vals) {
  return localInstantDirective(*this, node, vals, out.GetAllocator());
}

Result<std::optional<std::string>> Run::defaultZone() {
  if (auto it = env.variables.find("timezone");
      it != env.variables.end() && it->second.size() == 1) {
    if (auto s = fhirpath::toFhirPathString(it->second.front())) return s;
  }
  return std::optional<std::string>();
}

// ------------------------------------------------------------------ loading

Mapping::Mapping(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Mapping::~Mapping() = default;
const std::string& Mapping::id() const { return impl_->id; }
const std::string& Mapping::file() const { return impl_->file; }
const std::string& Mapping::conceptMapDir() const { return impl_->conceptMapDir; }

Result<std::shared_ptr<const Mapping>> Mapping::loadFile(const std::string& path,
                                                         const LoadOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::kNotFound, path + ": cannot read the mapping file");
  std::ostringstream text;
  text << in.rdbuf();
  return load(text.str(), path, nullptr, options);
}

Result<std::shared_ptr<const Mapping>> Mapping::load(std::string_view json, const std::string& file,
                                                     std::shared_ptr<const ConceptMapSet> maps,
                                                     const LoadOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->file = file;
  impl->zoneinfoRoot = options.zoneinfoRoot;
  impl->doc = std::make_shared<rapidjson::Document>();
  rapidjson::Document& doc = *impl->doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError()) {
    return fail(ErrorCode::kStructure, file + ": invalid JSON at offset " +
                                           std::to_string(doc.GetErrorOffset()) + ": " +
                                           rapidjson::GetParseError_En(doc.GetParseError()));
  }
  if (!doc.IsObject()) return std::unexpected(impl->loadError("", "expected a JSON object"));
  static const std::set<std::string> kTop = {"id",          "description", "input",   "variables",
                                             "key",         "required",    "assert",  "output",
                                             "conceptmaps", "resources",   "segments"};
  for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
    if (!kTop.count(it->name.GetString())) {
      return std::unexpected(impl->loadError(
          "/" + escapePointer(it->name.GetString()),
          "unknown key (expected id, description, input, variables, key, required, assert, output, "
          "conceptmaps, resources, segments)"));
    }
  }
  auto idIt = doc.FindMember("id");
  if (idIt == doc.MemberEnd() || !idIt->value.IsString() || idIt->value.GetStringLength() == 0)
    return std::unexpected(
        impl->loadError("/id", "required: the mapping's id (a non-empty string)"));
  impl->id = idIt->value.GetString();
  if (auto it = doc.FindMember("input"); it != doc.MemberEnd()) {
    const std::string mode = it->value.IsString() ? it->value.GetString() : "";
    if (mode != "flow" && mode != "json" && mode != "hl7v2")
      return std::unexpected(impl->loadError("/input", "expected \"flow\", \"json\" or \"hl7v2\""));
    impl->flowInput = mode == "flow";
    impl->hl7Input = mode == "hl7v2";
  }
  if (auto it = doc.FindMember("output"); it != doc.MemberEnd()) {
    const std::string mode = it->value.IsString() ? it->value.GetString() : "";
    if (mode != "transaction" && mode != "resources" && mode != "hl7v2")
      return std::unexpected(
          impl->loadError("/output", "expected \"transaction\", \"resources\" or \"hl7v2\""));
    impl->transaction = mode == "transaction";
    impl->hl7Output = mode == "hl7v2";
  }
  // ConceptMaps.
  if (maps) {
    impl->maps = std::move(maps);
  } else {
    std::string dir = options.conceptMapDir;
    if (dir.empty()) {
      std::filesystem::path base = std::filesystem::path(file).parent_path();
      std::string rel = "conceptmaps";
      if (auto it = doc.FindMember("conceptmaps"); it != doc.MemberEnd()) {
        if (!it->value.IsString())
          return std::unexpected(impl->loadError("/conceptmaps", "expected a folder path"));
        rel = it->value.GetString();
      }
      dir = std::filesystem::path(rel).is_absolute() ? rel : (base / rel).string();
    }
    impl->conceptMapDir = dir;
    auto loaded = ConceptMapSet::loadDirectory(dir);
    if (!loaded) return std::unexpected(loaded.error());
    impl->maps = *loaded;
  }
  if (auto it = doc.FindMember("variables"); it != doc.MemberEnd()) {
    if (!it->value.IsObject())
      return std::unexpected(impl->loadError("/variables", "expected an object of name: value"));
    fhirpath::Environment tmp;
    for (auto v = it->value.MemberBegin(); v != it->value.MemberEnd(); ++v) {
      if (!validName(v->name.GetString()))
        return std::unexpected(impl->loadError("/variables/" + escapePointer(v->name.GetString()),
                                               "not a variable name"));
      tmp.setVariable(v->name.GetString(), v->value);
    }
    impl->defaults = std::move(tmp.variables);
  }
  if (auto it = doc.FindMember("key"); it != doc.MemberEnd()) {
    auto e = impl->compileExpr(it->value, "/key");
    if (!e) return std::unexpected(e.error());
    impl->keyExpr = std::move(*e);
  }
  if (auto it = doc.FindMember("required"); it != doc.MemberEnd()) {
    if (!it->value.IsArray())
      return std::unexpected(
          impl->loadError("/required", "expected an array of FHIRPath expressions"));
    for (rapidjson::SizeType i = 0; i < it->value.Size(); ++i) {
      auto e = impl->compileExpr(it->value[i], "/required/" + std::to_string(i));
      if (!e) return std::unexpected(e.error());
      impl->required.push_back(std::move(*e));
    }
  }
  if (auto it = doc.FindMember("assert"); it != doc.MemberEnd()) {
    if (!it->value.IsArray())
      return std::unexpected(
          impl->loadError("/assert", "expected an array of {that, message, field}"));
    for (rapidjson::SizeType i = 0; i < it->value.Size(); ++i) {
      const JsonValue& a = it->value[i];
      const std::string at = "/assert/" + std::to_string(i);
      if (!a.IsObject() || !a.HasMember("that") || !a.HasMember("message") ||
          !a["message"].IsString())
        return std::unexpected(
            impl->loadError(at, "expected {\"that\": expr, \"message\": text, \"field\"?: name}"));
      for (auto f = a.MemberBegin(); f != a.MemberEnd(); ++f) {
        const std::string k = f->name.GetString();
        if (k != "that" && k != "message" && k != "field")
          return std::unexpected(impl->loadError(at + "/" + escapePointer(k), "unknown key"));
      }
      auto e = impl->compileExpr(a["that"], at + "/that");
      if (!e) return std::unexpected(e.error());
      Assertion as{std::move(*e), a["message"].GetString(), ""};
      if (a.HasMember("field")) {
        if (!a["field"].IsString())
          return std::unexpected(impl->loadError(at + "/field", "expected a string"));
        as.field = a["field"].GetString();
      }
      impl->assertions.push_back(std::move(as));
    }
  }
  if (impl->hl7Output) {
    if (doc.HasMember("resources"))
      return std::unexpected(impl->loadError(
          "/resources", "not with \"output\": \"hl7v2\" (its template is \"segments\")"));
    if (auto r = impl->compileSegments(); !r) return std::unexpected(r.error());
    impl->compilePlans();
    impl->planned = false;  // HL7 v2 output runs on the general evaluator
    return std::shared_ptr<const Mapping>(new Mapping(std::move(impl)));
  }
  if (doc.HasMember("segments"))
    return std::unexpected(
        impl->loadError("/segments", "only with \"output\": \"hl7v2\" (FHIR uses resources)"));
  auto resIt = doc.FindMember("resources");
  if (resIt == doc.MemberEnd() || !resIt->value.IsArray() || resIt->value.Empty())
    return std::unexpected(impl->loadError("/resources", "required: a non-empty array"));
  std::set<std::string> keys;
  for (rapidjson::SizeType i = 0; i < resIt->value.Size(); ++i) {
    const JsonValue& r = resIt->value[i];
    const std::string at = "/resources/" + std::to_string(i);
    if (!r.IsObject()) return std::unexpected(impl->loadError(at, "expected an object"));
    ResourceSpec spec;
    spec.pointer = at;
    for (auto f = r.MemberBegin(); f != r.MemberEnd(); ++f) {
      const std::string k = f->name.GetString();
      if (k != "key" && k != "$if" && k != "identity" && k != "resource" && k != "ifNoneExist" &&
          k != "conditional")
        return std::unexpected(impl->loadError(
            at + "/" + escapePointer(k),
            "unknown key (expected key, $if, identity, resource, ifNoneExist, conditional)"));
    }
    if (!r.HasMember("key") || !r["key"].IsString() || !validName(r["key"].GetString()))
      return std::unexpected(
          impl->loadError(at + "/key", "required: a name ([A-Za-z_][A-Za-z0-9_]*)"));
    spec.key = r["key"].GetString();
    if (!keys.insert(spec.key).second)
      return std::unexpected(impl->loadError(at + "/key", "duplicate key \"" + spec.key + "\""));
    if (r.HasMember("$if")) {
      auto e = impl->compileExpr(r["$if"], at + "/$if");
      if (!e) return std::unexpected(e.error());
      spec.ifExpr = std::move(*e);
    }
    if (r.HasMember("identity")) {
      auto e = impl->compileExpr(r["identity"], at + "/identity");
      if (!e) return std::unexpected(e.error());
      spec.identity = std::move(*e);
    }
    if (!r.HasMember("resource") || !r["resource"].IsObject())
      return std::unexpected(impl->loadError(at + "/resource", "required: the resource template"));
    const JsonValue& tmpl = r["resource"];
    if (!tmpl.HasMember("resourceType") || !tmpl["resourceType"].IsString() ||
        std::string_view(tmpl["resourceType"].GetString()).find("{{") != std::string_view::npos)
      return std::unexpected(
          impl->loadError(at + "/resource/resourceType", "required: a literal resource type"));
    spec.resourceType = tmpl["resourceType"].GetString();
    auto compiled = impl->compile(tmpl, at + "/resource");
    if (!compiled) return std::unexpected(compiled.error());
    spec.resource = std::move(*compiled);
    if (spec.resource->eachExpr || spec.resource->value)
      return std::unexpected(impl->loadError(
          at + "/resource", "$each, $value and operators belong inside the resource"));
    if (r.HasMember("ifNoneExist")) {
      if (!r["ifNoneExist"].IsString())
        return std::unexpected(impl->loadError(at + "/ifNoneExist", "expected a search string"));
      if (!impl->transaction)
        return std::unexpected(
            impl->loadError(at + "/ifNoneExist", "only for \"output\": \"transaction\""));
      auto pieces = splitTemplate(r["ifNoneExist"].GetString(), file + ": " + at + "/ifNoneExist",
                                  impl->hl7Input ? &impl->hl7Rewritten : nullptr);
      if (!pieces) return std::unexpected(pieces.error());
      spec.ifNoneExist = std::move(*pieces);
    }
    if (auto c = r.FindMember("conditional"); c != r.MemberEnd()) {
      const std::string cat = at + "/conditional";
      if (!c->value.IsString() || (std::string_view(c->value.GetString()) != "create" &&
                                   std::string_view(c->value.GetString()) != "update"))
        return std::unexpected(impl->loadError(cat, "expected \"create\" or \"update\""));
      if (!impl->transaction)
        return std::unexpected(impl->loadError(cat, "only for \"output\": \"transaction\""));
      if (spec.ifNoneExist.empty() || isBlank(r["ifNoneExist"].GetString()))
        return std::unexpected(
            impl->loadError(cat, "needs the search that finds the resource in \"ifNoneExist\""));
      spec.update = std::string_view(c->value.GetString()) == "update";
    }
    impl->resources.push_back(std::move(spec));
  }
  impl->compilePlans();
  return std::shared_ptr<const Mapping>(new Mapping(std::move(impl)));
}

// ------------------------------------------------------------------ running

namespace {

// The input a mapping's expressions read: for "input": "hl7v2" the JSON model of the ER7 text
// (kept in `holder`), else the input itself.
Result<std::string_view> mappedInput(const Mapping::Impl& m, std::string_view input,
                                     std::string& holder) {
  if (!m.hl7Input) return input;
  auto json = hl7InputJson(input);
  if (!json) {
    Error e = json.error();
    e.message = "mapping " + m.id + ": HL7 v2 input: " + e.message;
    return std::unexpected(e);
  }
  holder = std::move(*json);
  return std::string_view(holder);
}

// One template value of an HL7 segment as text: strings as they are, numbers as written,
// booleans Y/N; empty optional for anything else.
std::optional<std::string> hl7Text(const JsonValue& v) {
  if (v.IsString()) return std::string(v.GetString(), v.GetStringLength());
  if (v.IsInt64()) return std::to_string(v.GetInt64());
  if (v.IsUint64()) return std::to_string(v.GetUint64());
  if (v.IsNumber()) return fhirpath::Decimal::fromDouble(v.GetDouble()).toString();
  if (v.IsBool()) return std::string(v.GetBool() ? "Y" : "N");
  return std::nullopt;
}

}  // namespace

namespace {

// An error of a mapping with hl7('PATH') expressions, with each rewritten expression shown as
// the file wrote it (longest first, so that one inside another is not split).
Result<MappingOutput> asWritten(const Mapping::Impl& m, Result<MappingOutput> out) {
  if (out || m.hl7Rewritten.empty()) return out;
  Error e = out.error();
  std::vector<const std::pair<const std::string, std::string>*> pairs;
  for (const auto& p : m.hl7Rewritten) pairs.push_back(&p);
  std::sort(pairs.begin(), pairs.end(),
            [](auto* a, auto* b) { return a->first.size() > b->first.size(); });
  for (std::string* text : {&e.message, &e.location}) {
    for (const auto* p : pairs) {
      for (std::size_t at = text->find(p->first); at != std::string::npos;
           at = text->find(p->first, at + p->second.size()))
        text->replace(at, p->first.size(), p->second);
    }
  }
  return std::unexpected(e);
}

}  // namespace

Result<MappingOutput> Mapping::run(std::string_view input,
                                   const fhirpath::Environment& variables) const {
  if (!impl_->hl7Rewritten.empty()) return asWritten(*impl_, runUnrestored(input, variables));
  return runUnrestored(input, variables);
}

Result<MappingOutput> Mapping::runUnrestored(std::string_view input,
                                             const fhirpath::Environment& variables) const {
  if (impl_->planned) {
    std::string holder;
    auto mapped = mappedInput(*impl_, input, holder);
    if (!mapped) return std::unexpected(mapped.error());
    bool declined = false;
    auto out = impl_->runPlanned(*mapped, variables, declined);
    if (!declined) return out;
  }
  return runGeneralUnrestored(input, variables);
}

Result<MappingOutput> Mapping::runPlanned(std::string_view input,
                                          const fhirpath::Environment& variables) const {
  if (!impl_->hl7Rewritten.empty())
    return asWritten(*impl_, runPlannedUnrestored(input, variables));
  return runPlannedUnrestored(input, variables);
}

Result<MappingOutput> Mapping::runPlannedUnrestored(std::string_view input,
                                                    const fhirpath::Environment& variables) const {
  if (!impl_->planned)
    return fail(ErrorCode::kNotSupported,
                "mapping " + impl_->id + ": not every expression has a plan");
  std::string holder;
  auto mapped = mappedInput(*impl_, input, holder);
  if (!mapped) return std::unexpected(mapped.error());
  bool declined = false;
  auto out = impl_->runPlanned(*mapped, variables, declined);
  if (declined)
    return fail(ErrorCode::kNotSupported,
                "mapping " + impl_->id + ": the plan declined this input");
  return out;
}

bool Mapping::planned() const { return impl_->planned; }

namespace {

// The ER7 message of an "output": "hl7v2" mapping: each segment template in order (repeated by
// its $each, left out by its $if or when every value vanished), values escaped by hl7v2's set(),
// then MSH-7, MSH-10, MSH-11 and MSH-12 filled when the template left them empty.
Result<MappingOutput> runHl7Output(Run& run, const std::string& inputKey) {
  const Mapping::Impl& m = run.m;
  // %controlId: 20 hex digits (MSH-10 is ST 20 in v2.5.1) of the uuid of this input.
  std::string controlId;
  for (char c : nameUuid(m.id + "/message/" + inputKey)) {
    if (c != '-' && controlId.size() < 20)
      controlId.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  run.env.setVariable("controlId", controlId);
  hl7v2::Message msg = hl7v2::Message::create();
  std::map<std::string, std::size_t> counts;
  for (const SegmentSpec& seg : m.segments) {
    std::vector<JsonValue> instances;
    if (auto r = run.evalMany(*seg.node, instances); !r) return std::unexpected(r.error());
    for (const JsonValue& inst : instances) {
      if (!inst.IsObject()) continue;
      const std::size_t occurrence = seg.id == "MSH" ? 1 : ++counts[seg.id];
      const std::string prefix = seg.id + "[" + std::to_string(occurrence) + "]";
      for (auto it = inst.MemberBegin(); it != inst.MemberEnd(); ++it) {
        const std::string key(it->name.GetString(), it->name.GetStringLength());
        std::vector<std::string> texts;
        auto add = [&](const JsonValue& v) -> Result<void> {
          auto t = hl7Text(v);
          if (!t)
            return std::unexpected(run.error(
                ErrorCode::kInvalid,
                seg.node->pointer + "/" + key + ": expected text, a number or a boolean", key));
          texts.push_back(std::move(*t));
          return {};
        };
        if (it->value.IsArray()) {
          for (const auto& v : it->value.GetArray())
            if (auto r = add(v); !r) return std::unexpected(r.error());
        } else if (auto r = add(it->value); !r) {
          return std::unexpected(r.error());
        }
        const std::string path = prefix + key.substr(3);
        if (texts.size() == 1) {
          if (auto r = msg.set(path, texts.front()); !r)
            return std::unexpected(run.error(r.error().code, key + ": " + r.error().message, key));
          continue;
        }
        auto parsed = hl7v2::Path::parse(key);
        if (!parsed || parsed->repetition != 0 || parsed->component != 0) {
          return std::unexpected(run.error(
              ErrorCode::kInvalid,
              seg.node->pointer + "/" + key + ": " + std::to_string(texts.size()) +
                  " values for one element (several values need a field path, e.g. PID-13, "
                  "and become its repetitions)",
              key));
        }
        for (std::size_t r = 0; r < texts.size(); ++r) {
          if (auto s = msg.set(path + "(" + std::to_string(r + 1) + ")", texts[r]); !s)
            return std::unexpected(run.error(s.error().code, key + ": " + s.error().message, key));
        }
      }
    }
  }
  auto fill = [&](const char* path, const std::string& value) -> Result<void> {
    auto current = msg.getRaw(path);
    if (current && !current->empty()) return {};
    return msg.set(path, value);
  };
  if (msg.getRaw("MSH-9.1").value_or("").empty())
    return std::unexpected(run.error(
        ErrorCode::kRequired, "/segments/0: MSH-9.1 (message type) has no value", "MSH-9.1"));
  if (msg.getRaw("MSH-7").value_or("").empty()) {
    std::optional<std::string> received;
    if (auto it = run.env.variables.find("receivedAt");
        it != run.env.variables.end() && it->second.size() == 1)
      received = fhirpath::toFhirPathString(it->second.front());
    if (!received || received->empty())
      return std::unexpected(run.error(
          ErrorCode::kRequired,
          "MSH-7 has no value: give it in the template or set the variable receivedAt", "MSH-7"));
    auto ts = fhirToHl7Date(*received);
    if (!ts)
      return std::unexpected(
          run.error(ts.error().code, "MSH-7: " + ts.error().message, "%receivedAt"));
    if (auto r = fill("MSH-7", *ts); !r) return std::unexpected(r.error());
  }
  if (auto r = fill("MSH-10", controlId); !r) return std::unexpected(r.error());
  if (auto r = fill("MSH-11", "P"); !r) return std::unexpected(r.error());
  if (auto r = fill("MSH-12", "2.5.1"); !r) return std::unexpected(r.error());
  return MappingOutput{msg.toEr7(), "application/hl7-v2"};
}

}  // namespace

Result<MappingOutput> Mapping::runGeneral(std::string_view input,
                                          const fhirpath::Environment& variables) const {
  if (!impl_->hl7Rewritten.empty())
    return asWritten(*impl_, runGeneralUnrestored(input, variables));
  return runGeneralUnrestored(input, variables);
}

Result<MappingOutput> Mapping::runGeneralUnrestored(std::string_view input,
                                                    const fhirpath::Environment& variables) const {
  const Impl& m = *impl_;
  std::string holder;
  auto mapped = mappedInput(m, input, holder);
  if (!mapped) return std::unexpected(mapped.error());
  input = *mapped;
  auto parsed = m.flowInput ? normalizeFlowInput(input) : parseJsonInput(input);
  if (!parsed) {
    Error e = parsed.error();
    e.message = "mapping " + m.id + ": " + e.message;
    return std::unexpected(e);
  }
  Run run{m, fhirpath::Environment(), parsed->root, rapidjson::Document()};
  run.env.variables = m.defaults;
  for (const auto& [name, value] : variables.variables) run.env.variables[name] = value;
  run.env.now = variables.now;
  run.env.utcOffsetMinutes = variables.utcOffsetMinutes;
  auto senderIt = run.env.variables.find("sender");
  if ((senderIt == run.env.variables.end() || senderIt->second.empty()) && !parsed->sender.empty())
    run.env.setVariable("sender", parsed->sender);
  run.env.variables["input"] = Collection{parsed->root};
  // The channel variables always exist, empty when the channel does not know them.
  for (const char* name : kChannelVariables) run.env.variables.try_emplace(name);

  for (const auto& req : m.required) {
    auto items = run.eval(req, "/required");
    if (!items) return std::unexpected(items.error());
    bool present = false;
    for (const Node& item : *items) {
      auto s = fhirpath::toFhirPathString(item);
      if (!s || !isBlank(*s)) present = true;
    }
    if (!present)
      return std::unexpected(
          run.error(ErrorCode::kRequired, "required answer missing: " + req.text(), req.text()));
  }
  for (const auto& a : m.assertions) {
    auto ok = run.evalBool(a.that);
    if (!ok) {
      return std::unexpected(
          run.error(ErrorCode::kInvalid,
                    "/assert: " + quoteValue(a.that.text()) + " failed: " + ok.error().message,
                    a.field.empty() ? a.that.text() : a.field));
    }
    if (*ok && !**ok) {
      return std::unexpected(run.error(ErrorCode::kValue,
                                       (a.field.empty() ? "" : a.field + ": ") + a.message,
                                       a.field.empty() ? a.that.text() : a.field));
    }
  }

  // The input-derived key: "key" when the file gives one, else a digest of the input and sender.
  std::string inputKey;
  if (m.keyExpr) {
    auto items = run.eval(*m.keyExpr, "/key");
    if (!items) return std::unexpected(items.error());
    std::optional<std::string> s;
    if (items->size() == 1) s = fhirpath::toFhirPathString(items->front());
    if (!s || isBlank(*s))
      return std::unexpected(run.error(
          ErrorCode::kRequired, "/key: " + quoteValue(m.keyExpr->text()) + " must yield one value",
          m.keyExpr->text()));
    inputKey = *s;
  } else {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    parsed->root.json()->Accept(w);
    std::string basis(sb.GetString(), sb.GetSize());
    if (auto it = run.env.variables.find("sender");
        it != run.env.variables.end() && it->second.size() == 1) {
      if (auto s = fhirpath::toFhirPathString(it->second.front())) basis += "\n" + *s;
    }
    inputKey = sha1Hex(basis);
  }

  // Which resources are produced, their ids and references.
  std::vector<bool> produced(m.resources.size(), true);
  std::vector<std::string> uuids(m.resources.size());
  rapidjson::Document refs(rapidjson::kObjectType), ids(rapidjson::kObjectType);
  for (std::size_t i = 0; i < m.resources.size(); ++i) {
    const ResourceSpec& spec = m.resources[i];
    if (spec.ifExpr) {
      auto cond = run.evalBool(*spec.ifExpr);
      if (!cond) {
        return std::unexpected(run.error(ErrorCode::kInvalid,
                                         spec.pointer + "/$if: " + quoteValue(spec.ifExpr->text()) +
                                             " failed: " + cond.error().message,
                                         spec.ifExpr->text()));
      }
      produced[i] = cond->value_or(false);
    }
    std::string identity = inputKey;
    if (spec.identity) {
      auto items = run.eval(*spec.identity, spec.pointer + "/identity");
      if (!items) return std::unexpected(items.error());
      if (items->size() > 1)
        return std::unexpected(run.error(ErrorCode::kInvalid,
                                         spec.pointer + "/identity: more than one value",
                                         spec.identity->text()));
      if (items->size() == 1) {
        if (auto s = fhirpath::toFhirPathString(items->front()); s && !isBlank(*s))
          identity = "=" + *s;
      }
    }
    uuids[i] = nameUuid(m.id + "/" + spec.key + "/" + identity);
    ids.AddMember(JsonValue(spec.key.c_str(), ids.GetAllocator()),
                  JsonValue(uuids[i].c_str(), ids.GetAllocator()), ids.GetAllocator());
    if (produced[i]) {
      const std::string ref =
          m.transaction ? "urn:uuid:" + uuids[i] : spec.resourceType + "/" + uuids[i];
      refs.AddMember(JsonValue(spec.key.c_str(), refs.GetAllocator()),
                     JsonValue(ref.c_str(), refs.GetAllocator()), refs.GetAllocator());
    }
  }
  run.env.setVariable("ref", refs);
  run.env.setVariable("id", ids);
  if (m.hl7Output) return runHl7Output(run, inputKey);

  auto& alloc = run.out.GetAllocator();
  JsonValue entries(rapidjson::kArrayType);
  for (std::size_t i = 0; i < m.resources.size(); ++i) {
    if (!produced[i]) continue;
    const ResourceSpec& spec = m.resources[i];
    std::vector<JsonValue> vals;
    if (auto r = run.evalMany(*spec.resource, vals); !r) return std::unexpected(r.error());
    if (vals.size() != 1 || !vals.front().IsObject()) continue;  // its own $if said no
    JsonValue resource = std::move(vals.front());
    if (!m.transaction) {
      JsonValue withId(rapidjson::kObjectType);
      for (auto it = resource.MemberBegin(); it != resource.MemberEnd(); ++it) {
        withId.AddMember(std::move(it->name), std::move(it->value), alloc);
        if (withId.MemberCount() == 1)
          withId.AddMember("id", JsonValue(uuids[i].c_str(), alloc), alloc);
      }
      entries.PushBack(std::move(withId), alloc);
      continue;
    }
    JsonValue entry(rapidjson::kObjectType);
    entry.AddMember("fullUrl", JsonValue(("urn:uuid:" + uuids[i]).c_str(), alloc), alloc);
    entry.AddMember("resource", std::move(resource), alloc);
    JsonValue request(rapidjson::kObjectType);
    if (spec.update) {
      auto q = run.evalText(spec.ifNoneExist, spec.pointer + "/ifNoneExist", true);
      if (!q) return std::unexpected(q.error());
      if (!*q)
        return std::unexpected(run.error(ErrorCode::kRequired, emptyUpdateSearch(spec),
                                         spec.pointer + "/ifNoneExist"));
      request.AddMember("method", "PUT", alloc);
      request.AddMember("url", JsonValue((spec.resourceType + "?" + **q).c_str(), alloc), alloc);
    } else {
      request.AddMember("method", "POST", alloc);
      request.AddMember("url", JsonValue(spec.resourceType.c_str(), alloc), alloc);
      if (!spec.ifNoneExist.empty()) {
        auto q = run.evalText(spec.ifNoneExist, spec.pointer + "/ifNoneExist", true);
        if (!q) return std::unexpected(q.error());
        if (*q) request.AddMember("ifNoneExist", JsonValue((*q)->c_str(), alloc), alloc);
      }
    }
    entry.AddMember("request", std::move(request), alloc);
    entries.PushBack(std::move(entry), alloc);
  }

  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>,
                    rapidjson::CrtAllocator, rapidjson::kWriteValidateEncodingFlag>
      w(sb);
  bool ok = true;
  if (m.transaction) {
    JsonValue bundle(rapidjson::kObjectType);
    bundle.AddMember("resourceType", "Bundle", alloc);
    bundle.AddMember("type", "transaction", alloc);
    if (!entries.Empty()) bundle.AddMember("entry", std::move(entries), alloc);
    ok = bundle.Accept(w);
  } else {
    ok = entries.Accept(w);
  }
  if (!ok)
    return std::unexpected(
        run.error(ErrorCode::kValue, "the input holds text that is not valid UTF-8", ""));
  return MappingOutput{std::string(sb.GetString(), sb.GetSize()), "application/fhir+json"};
}

}  // namespace switchboard::mapping

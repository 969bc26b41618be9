// Mapping template lint. Thread-safety: each call keeps its state on the stack.
#include "engine/fhir/lint.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <string_view>

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

#include "engine/fhir/primitive_format.h"

namespace switchboard::fhir {

namespace {

using rapidjson::Value;

std::string escapePointer(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::string plainName(const ElementDef& def) {
  return def.choice ? def.name.substr(0, def.name.size() - 3) : def.name;
}

bool hasTemplate(std::string_view s) { return s.find("{{") != std::string_view::npos; }

// A string that is exactly one `{{ expression }}`: its output may be any JSON value.
bool wholeExpression(std::string_view s) {
  auto b = s.find_first_not_of(" \t\r\n");
  auto e = s.find_last_not_of(" \t\r\n");
  if (b == std::string_view::npos) return false;
  s = s.substr(b, e - b + 1);
  return s.starts_with("{{") && s.ends_with("}}") && s.find("{{", 2) == std::string_view::npos;
}

const Value* member(const Value& obj, const char* key) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(key);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

// A literal (template-free) string member, or empty.
std::string literal(const Value& obj, const char* key) {
  const Value* v = member(obj, key);
  if (!v || !v->IsString() || hasTemplate(v->GetString())) return {};
  return v->GetString();
}

// Line of every value of a JSON text by JSON pointer (a SAX pass; the stream position at each
// value callback lies on the value's line).
class PointerLines : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, PointerLines> {
 public:
  explicit PointerLines(const std::string& text) : text_(text) {
    for (std::size_t i = 0; i < text.size(); ++i)
      if (text[i] == '\n') newlines_.push_back(i);
  }

  void run() {
    rapidjson::Reader reader;
    rapidjson::StringStream ss(text_.c_str());
    stream_ = &ss;
    reader.Parse(ss, *this);
    stream_ = nullptr;
  }

  int line(const std::string& pointer) const {
    auto it = lines_.find(pointer);
    return it == lines_.end() ? 0 : it->second;
  }

  bool Default() {
    value();
    return true;
  }
  bool String(const char*, rapidjson::SizeType, bool) { return Default(); }
  bool StartObject() {
    stack_.push_back({false, 0, {}, value()});
    return true;
  }
  bool Key(const char* str, rapidjson::SizeType length, bool) {
    stack_.back().key = escapePointer(std::string_view(str, length));
    return true;
  }
  bool EndObject(rapidjson::SizeType) {
    stack_.pop_back();
    return true;
  }
  bool StartArray() {
    stack_.push_back({true, 0, {}, value()});
    return true;
  }
  bool EndArray(rapidjson::SizeType) {
    stack_.pop_back();
    return true;
  }

 private:
  struct Frame {
    bool array;
    std::size_t index;
    std::string key;
    std::string pointer;
  };

  // Records the current value's pointer and line; returns the pointer.
  std::string value() {
    std::string pointer;
    if (!stack_.empty()) {
      Frame& top = stack_.back();
      pointer = top.pointer + "/" + (top.array ? std::to_string(top.index++) : top.key);
    }
    std::size_t offset = stream_ ? stream_->Tell() : 0;
    int line = static_cast<int>(std::lower_bound(newlines_.begin(), newlines_.end(), offset) -
                                newlines_.begin()) +
               1;
    lines_.emplace(pointer, line);
    return pointer;
  }

  const std::string& text_;
  rapidjson::StringStream* stream_ = nullptr;
  std::vector<std::size_t> newlines_;
  std::vector<Frame> stack_;
  std::map<std::string, int> lines_;
};

class Linter {
 public:
  Linter(const Definitions& defs, std::string file, std::vector<LintFinding>& out)
      : defs_(defs), file_(std::move(file)), out_(out) {}

  void resource(const Value& obj, const std::string& ptr) {
    if (!obj.IsObject()) {
      add(ptr, "", "a resource template must be a JSON object");
      return;
    }
    const Value* rtv = member(obj, "resourceType");
    if (!rtv || !rtv->IsString() || hasTemplate(rtv->GetString())) {
      add(ptr + "/resourceType", "", "resourceType must be a literal resource type name");
      return;
    }
    std::string rt = rtv->GetString();
    const StructureDefinition* sd = defs_.type(rt);
    if (!sd || sd->kind != "resource") {
      add(ptr + "/resourceType", rt,
          "resource type \"" + rt + "\" has no StructureDefinition in fhir-profiles/");
      return;
    }
    object(*sd, sd->type, obj, ptr, rt);
  }

 private:
  void object(const StructureDefinition& sd, const std::string& path, const Value& obj,
              const std::string& ptr, const std::string& fp) {
    const auto& defs = sd.children(path);
    std::vector<const ElementDef*> present;
    bool isRoot = path.find('.') == std::string::npos && sd.kind == "resource";
    for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
      std::string key(it->name.GetString(), it->name.GetStringLength());
      if (key.starts_with("$")) continue;
      if (key == "resourceType" && isRoot) continue;
      std::string at = ptr + "/" + escapePointer(key);
      bool underscore = key.starts_with("_");
      std::string name = underscore ? key.substr(1) : key;
      const ElementDef* def = nullptr;
      const TypeRef* type = nullptr;
      for (const ElementDef* d : defs) {
        if (d->choice) {
          std::string prefix = plainName(*d);
          if (name.size() > prefix.size() && name.starts_with(prefix)) {
            if (const TypeRef* t = d->typeForSuffix(std::string_view(name).substr(prefix.size()))) {
              def = d;
              type = t;
              break;
            }
          }
        } else if (d->name == name) {
          def = d;
          type = d->types.empty() ? nullptr : &d->types.front();
          break;
        }
      }
      std::string childFp = fp + "." + name;
      if (!def) {
        const ElementDef* choice = nullptr;
        for (const ElementDef* d : defs)
          if (d->choice && plainName(*d) == name) choice = d;
        if (choice) {
          std::string names;
          for (const auto& t : choice->types)
            names += (names.empty() ? "" : ", ") + name + choiceSuffix(t.code);
          add(at, childFp,
              "\"" + name + "\" is a choice element: name it with its type (" + names + ")");
        } else {
          add(at, childFp, "unknown element \"" + name + "\" in " + path);
        }
        continue;
      }
      present.push_back(def);
      if (underscore) {
        if (!type || !defs_.isPrimitive(type->code))
          add(at, childFp, "\"_" + name + "\" is only allowed beside a primitive value");
        continue;
      }
      value(sd, *def, type, it->value, at, childFp, false);
    }
    for (const ElementDef* d : defs) {
      if (d->min == 0) continue;
      if (std::find(present.begin(), present.end(), d) != present.end()) continue;
      add(ptr, fp + "." + plainName(*d),
          "required element \"" + plainName(*d) + "\" (min " + std::to_string(d->min) +
              ") is never produced");
    }
  }

  void value(const StructureDefinition& sd, const ElementDef& def, const TypeRef* type,
             const Value& v, const std::string& ptr, const std::string& fp, bool inArray) {
    std::string code = type ? type->code : "";
    if (!def.contentReference.empty()) code = "BackboneElement";
    bool primitive = !code.empty() && (defs_.isPrimitive(code) || code == "xhtml");
    if (v.IsArray()) {
      if (inArray) {
        add(ptr, fp, "nested arrays are not FHIR");
        return;
      }
      if (!def.repeats())
        add(ptr, fp, "\"" + plainName(def) + "\" does not repeat (max 1): no array");
      if (v.Empty()) add(ptr, fp, "empty array (it is always left out)");
      for (rapidjson::SizeType i = 0; i < v.Size(); ++i)
        value(sd, def, type, v[i], ptr + "/" + std::to_string(i), fp, true);
      return;
    }
    bool dynamic = v.IsString() && wholeExpression(v.GetString());
    if (def.repeats() && !inArray && !dynamic && !directiveValue(v)) {
      add(ptr, fp, "\"" + plainName(def) + "\" repeats: write it as a JSON array");
    }
    if (v.IsObject()) {
      if (const Value* t = member(v, "$translate")) {
        std::string select = literal(*t, "select");
        if (select.empty() || select == "coding") {
          if (code != "Coding")
            add(ptr, fp, "$translate yields a Coding but " + def.path + " is " + code);
        } else if (!primitive) {
          add(ptr, fp,
              "$translate (select " + select + ") yields text but " + def.path + " is " + code);
        }
        return;
      }
      if (member(v, "$localInstant")) {
        if (code != "instant" && code != "dateTime" && code != "string")
          add(ptr, fp, "$localInstant yields an instant but " + def.path + " is " + code);
        return;
      }
      if (const Value* h = member(v, "$fromHl7Date")) {
        std::string as = h->IsObject() ? literal(*h, "as") : std::string();
        if (as.empty()) as = "dateTime";
        const bool fits = code == "string" || code == as || (as == "date" && code == "dateTime") ||
                          (as == "instant" && code == "dateTime");
        if (!fits) add(ptr, fp, "$fromHl7Date yields a " + as + " but " + def.path + " is " + code);
        return;
      }
      if (member(v, "$toHl7Date")) {
        if (!primitive) add(ptr, fp, "$toHl7Date yields text but " + def.path + " is " + code);
        return;
      }
      if (member(v, "$value")) return;
      if (primitive) {
        add(ptr, fp, def.path + " is a " + code + ", not an object");
        return;
      }
      if (code == "Resource" || defs_.isResourceType(code)) {
        resource(v, ptr);
        return;
      }
      if (code.empty()) return;
      codedBinding(def, code, v, ptr, fp);
      std::string childPath = def.contentReference.empty() ? def.path : def.contentReference;
      const StructureDefinition* childSd = &sd;
      if (sd.children(childPath).empty()) {
        childSd = defs_.type(code);
        if (!childSd) return;
        childPath = childSd->type;
      }
      object(*childSd, childPath, v, ptr, fp);
      return;
    }
    if (v.IsNull()) {
      add(ptr, fp, "null is not a FHIR value");
      return;
    }
    if (code.empty()) return;
    if (v.IsString() && hasTemplate(v.GetString())) {
      if (dynamic) return;  // one expression: any value, checked when validating output
      if (!primitive) {
        add(ptr, fp, def.path + " is a " + code + ": a text template cannot produce it");
      } else if (expectedJsonKind(code) != "a JSON string") {
        add(ptr, fp,
            def.path + " is a " + code + " (" + expectedJsonKind(code) +
                "): a text template yields a string; use one {{ expression }}");
      }
      return;
    }
    if (!primitive) {
      add(ptr, fp,
          def.path + " is a " + code + ": a literal " + (v.IsString() ? "string" : "value") +
              " cannot be one");
      return;
    }
    if (auto why = checkPrimitive(code, v)) {
      add(ptr, fp, def.path + " (" + code + "): " + *why);
      return;
    }
    if (v.IsString()) codeBinding(def, v.GetString(), ptr, fp);
  }

  static bool directiveValue(const Value& v) {
    return v.IsObject() &&
           (member(v, "$value") || member(v, "$translate") || member(v, "$localInstant") ||
            member(v, "$fromHl7Date") || member(v, "$toHl7Date") || member(v, "$each"));
  }

  const ValueSetExpansion* requiredValueSet(const ElementDef& def) const {
    if (!def.binding || def.binding->strength != "required") return nullptr;
    const ValueSetExpansion* vs = defs_.valueSet(def.binding->valueSet);
    return vs && vs->complete ? vs : nullptr;
  }

  void codeBinding(const ElementDef& def, const std::string& code, const std::string& ptr,
                   const std::string& fp) {
    const ValueSetExpansion* vs = requiredValueSet(def);
    if (vs && !vs->containsCode(code))
      add(ptr, fp, "code \"" + code + "\" is not in the required value set " + vs->url);
  }

  // Literal codings of a Coding or CodeableConcept with a required binding.
  void codedBinding(const ElementDef& def, const std::string& type, const Value& v,
                    const std::string& ptr, const std::string& fp) {
    const ValueSetExpansion* vs = requiredValueSet(def);
    if (!vs) return;
    auto check = [&](const Value& coding, const std::string& at) {
      std::string c = literal(coding, "code");
      if (c.empty()) return;
      const Value* sys = member(coding, "system");
      if (sys && sys->IsString() && hasTemplate(sys->GetString())) return;
      std::string system = sys && sys->IsString() ? sys->GetString() : "";
      bool ok = system.empty() ? vs->containsCode(c) : vs->contains(system, c);
      if (!ok)
        add(at, fp, "coding " + system + "|" + c + " is not in the required value set " + vs->url);
    };
    if (type == "Coding") check(v, ptr);
    if (type == "CodeableConcept") {
      const Value* codings = member(v, "coding");
      if (codings && codings->IsArray()) {
        for (rapidjson::SizeType i = 0; i < codings->Size(); ++i)
          check((*codings)[i], ptr + "/coding/" + std::to_string(i));
      }
    }
  }

  void add(const std::string& ptr, const std::string& fp, std::string message) {
    out_.push_back(LintFinding{file_, ptr, fp, std::move(message)});
  }

  const Definitions& defs_;
  std::string file_;
  std::vector<LintFinding>& out_;
};

// An entry's "conditional" ("create": POST with ifNoneExist, the default; "update": PUT
// Type?search) must be one of those, in a transaction, with the search in "ifNoneExist".
void lintConditional(const Value& entry, bool transaction, const std::string& file,
                     const std::string& at, std::vector<LintFinding>& out) {
  const Value* search = member(entry, "ifNoneExist");
  if (search && !search->IsString())
    out.push_back({file, at + "/ifNoneExist", "", "ifNoneExist must be a search string"});
  const Value* conditional = member(entry, "conditional");
  if (!conditional) return;
  const std::string where = at + "/conditional";
  const std::string_view value = conditional->IsString() ? conditional->GetString() : "";
  if (value != "create" && value != "update") {
    out.push_back({file, where, "",
                   "conditional must be \"create\" (POST with ifNoneExist) or \"update\" (PUT "
                   "Type?search)"});
    return;
  }
  if (!transaction)
    out.push_back({file, where, "", "conditional is only for \"output\": \"transaction\""});
  if (!search || !search->IsString() ||
      std::string_view(search->GetString()).find_first_not_of(" \t\r\n") == std::string_view::npos)
    out.push_back({file, where, "",
                   "a conditional " + std::string(value) +
                       " needs the search that finds the resource in \"ifNoneExist\""});
}

}  // namespace

std::vector<LintFinding> lintResourceTemplate(const Definitions& definitions,
                                              const rapidjson::Value& resource,
                                              const std::string& file, const std::string& pointer) {
  std::vector<LintFinding> out;
  Linter(definitions, file, out).resource(resource, pointer);
  return out;
}

std::vector<LintFinding> lintMapping(const Definitions& definitions,
                                     const rapidjson::Value& mapping, const std::string& file) {
  std::vector<LintFinding> out;
  // HL7 v2 output: no FHIR template to check (its HL7 paths are checked when the file loads).
  if (const Value* output = member(mapping, "output");
      output && output->IsString() && std::string_view(output->GetString()) == "hl7v2")
    return out;
  const Value* resources = member(mapping, "resources");
  if (!resources || !resources->IsArray()) {
    out.push_back({file, "/resources", "", "a mapping file needs a \"resources\" array"});
    return out;
  }
  const Value* output = member(mapping, "output");
  const bool transaction =
      !output || (output->IsString() && std::string_view(output->GetString()) == "transaction");
  for (rapidjson::SizeType i = 0; i < resources->Size(); ++i) {
    std::string at = "/resources/" + std::to_string(i);
    const Value& entry = (*resources)[i];
    lintConditional(entry, transaction, file, at, out);
    const Value* resource = member(entry, "resource");
    if (!resource) {
      out.push_back({file, at, "", "an entry of \"resources\" needs a \"resource\" template"});
      continue;
    }
    Linter(definitions, file, out).resource(*resource, at + "/resource");
  }
  return out;
}

std::vector<LintFinding> lintMappingFile(const Definitions& definitions, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {LintFinding{path, "", "", "cannot read the file"}};
  std::ostringstream text;
  text << in.rdbuf();
  rapidjson::Document doc;
  std::string s = text.str();
  doc.Parse(s.data(), s.size());
  if (doc.HasParseError()) {
    return {LintFinding{path, "", "",
                        "malformed JSON at offset " + std::to_string(doc.GetErrorOffset()) + ": " +
                            rapidjson::GetParseError_En(doc.GetParseError())}};
  }
  auto findings = lintMapping(definitions, doc, path);
  PointerLines lines(s);
  lines.run();
  for (auto& f : findings) f.line = lines.line(f.pointer);
  return findings;
}

std::string formatFinding(const LintFinding& f) {
  std::string out = f.file + (f.line > 0 ? ":" + std::to_string(f.line) : std::string()) + ": " +
                    (f.pointer.empty() ? "/" : f.pointer);
  if (!f.fhirPath.empty()) out += " (" + f.fhirPath + ")";
  return out + ": " + f.message;
}

}  // namespace switchboard::fhir

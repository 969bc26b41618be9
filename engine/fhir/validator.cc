// The validator's walk over a FHIR JSON tree, guided by StructureDefinition snapshots.
// Thread-safety: validate() keeps all state on its own stack; the definitions are read-only.
#include "engine/fhir/validator.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>
#include <unordered_map>

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "engine/fhir/primitive_format.h"

namespace switchboard::fhir {

namespace {

using fhirpath::Node;
using rapidjson::Value;

std::string strMember(const Value& obj, const char* key) {
  if (!obj.IsObject()) return {};
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

const Value* findMember(const Value& obj, std::string_view key) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(rapidjson::Value(rapidjson::StringRef(key.data(), key.size())));
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

const Value* member(const Value& obj, const char* key) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(key);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

std::string quote(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 80)) out += (static_cast<unsigned char>(c) < 0x20) ? '?' : c;
  if (s.size() > 80) out += "...";
  return out + "'";
}

const std::string& plainName(const ElementDef& def) { return def.plain; }

// Deep equality of JSON values (fixed[x]).
bool jsonEqual(const Value& a, const Value& b) {
  if (a.IsNumber() && b.IsNumber()) return a.GetDouble() == b.GetDouble();
  return a == b;
}

// Whether `value` contains everything in `pattern` (pattern[x]).
bool jsonContains(const Value& value, const Value& pattern) {
  if (pattern.IsObject()) {
    if (!value.IsObject()) return false;
    for (auto it = pattern.MemberBegin(); it != pattern.MemberEnd(); ++it) {
      auto vit = value.FindMember(it->name);
      if (vit == value.MemberEnd() || !jsonContains(vit->value, it->value)) return false;
    }
    return true;
  }
  if (pattern.IsArray()) {
    if (!value.IsArray()) return false;
    for (const auto& p : pattern.GetArray()) {
      bool found = false;
      for (const auto& v : value.GetArray()) found = found || jsonContains(v, p);
      if (!found) return false;
    }
    return true;
  }
  return jsonEqual(value, pattern);
}

// The resource type a literal reference names ("Patient/1", "http://x/fhir/Patient/1/_history/2").
std::string referencedType(std::string_view ref, const Definitions& defs) {
  if (ref.starts_with("#") || ref.starts_with("urn:")) return {};
  std::size_t end = ref.find('?');
  std::string_view path = ref.substr(0, end);
  if (auto h = path.find("/_history/"); h != std::string_view::npos) path = path.substr(0, h);
  auto slash = path.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return {};
  std::string_view head = path.substr(0, slash);
  auto prev = head.rfind('/');
  std::string type(prev == std::string_view::npos ? head : head.substr(prev + 1));
  if (type.empty() || !std::isupper(static_cast<unsigned char>(type[0]))) return {};
  const StructureDefinition* sd = defs.type(type);
  return !sd || sd->kind == "resource" ? type : std::string();
}

class Walk {
 public:
  Walk(const Definitions& defs, const ValidationOptions& options, fhirpath::DocumentPtr doc,
       std::vector<Issue>& issues)
      : defs_(defs), options_(options), doc_(std::move(doc)), issues_(issues) {
    root_ = Node::resource(doc_);
    env_.rootResource = root_;
    env_.memberOf = [this](const Node& coded, const std::string& url) -> Result<bool> {
      return memberOf(coded, url);
    };
    if (strMember(*doc_, "resourceType") == "Bundle") {
      if (const auto* entries = member(*doc_, "entry"); entries && entries->IsArray()) {
        for (const auto& e : entries->GetArray()) {
          std::string fullUrl = strMember(e, "fullUrl");
          const Value* r = member(e, "resource");
          if (!fullUrl.empty() && r) bundleTypes_[fullUrl] = strMember(*r, "resourceType");
        }
      }
      inBundle_ = true;
    }
  }

  void run() {
    const Value& root = *doc_;
    if (!root.IsObject()) {
      add("fatal", "structure", "a FHIR resource must be a JSON object", "");
      return;
    }
    resource(root, "", root_, true);
  }

 private:
  // A resource at `loc` ("" for the root, "Bundle.entry[0].resource" for entries).
  void resource(const Value& obj, const std::string& loc, const Node& node, bool applyProfiles,
                bool contained = false) {
    std::string rt = strMember(obj, "resourceType");
    std::string here = loc.empty() ? rt : loc;
    if (rt.empty()) {
      add("error", "structure", "resourceType is missing", loc.empty() ? "Resource" : loc);
      return;
    }
    const StructureDefinition* sd = defs_.type(rt);
    if (!sd || sd->kind != "resource" || !sd->root()) {
      add("warning", "not-supported",
          "no StructureDefinition for resource type " + quote(rt) +
              " in fhir-profiles/; not validated",
          here);
      return;
    }
    Node saved = resourceNode_;
    bool savedContained = inContained_;
    inContained_ = contained;
    resourceNode_ = node;
    env_.resource = node;
    profilePass_ = false;
    constraints(*sd->root(), node, here, nullptr);
    object(*sd, sd->type, *sd->root()->children, obj, here);

    std::vector<const StructureDefinition*> profiles;
    if (applyProfiles) {
      for (const auto& url : options_.profiles) {
        const StructureDefinition* p = defs_.byUrl(url);
        if (!p) {
          if (loc.empty()) add("error", "not-found", "unknown profile " + quote(url), here);
          continue;
        }
        if (p->type == rt && p->root()) profiles.push_back(p);
      }
    }
    if (const auto* meta = member(obj, "meta")) {
      if (const auto* declared = member(*meta, "profile"); declared && declared->IsArray()) {
        for (const auto& u : declared->GetArray()) {
          if (!u.IsString()) continue;
          const StructureDefinition* p = defs_.byUrl(u.GetString());
          if (!p) {
            add("information", "not-supported",
                "profile " + quote(u.GetString()) +
                    " is not in fhir-profiles/; checked against the base definition only",
                here + ".meta.profile");
          } else if (p->type == rt && p->root() &&
                     std::find(profiles.begin(), profiles.end(), p) == profiles.end()) {
            profiles.push_back(p);
          }
        }
      }
    }
    for (const StructureDefinition* p : profiles) {
      profilePass_ = true;
      profileUrl_ = p->url;
      constraints(*p->root(), node, here, sd->root());
      object(*p, p->type, *p->root()->children, obj, here);
      profilePass_ = false;
    }
    resourceNode_ = saved;
    env_.resource = saved;
    inContained_ = savedContained;
  }

  // The members of a JSON object holding the element at `path` of `sd`.
  void object(const StructureDefinition& sd, const std::string& path,
              const std::vector<const ElementDef*>& defs, const Value& obj,
              const std::string& loc) {
    if (depth_ >= kMaxDepth) {
      add("error", "too-long",
          "elements nested deeper than " + std::to_string(kMaxDepth) + " levels are not validated",
          loc);
      return;
    }
    struct DepthGuard {
      int& d;
      explicit DepthGuard(int& depth) : d(++depth) {}
      ~DepthGuard() { --d; }
    } guard(depth_);
    struct Found {
      std::string key;
      const TypeRef* type = nullptr;
      const Value* value = nullptr;
      const Value* ext = nullptr;
    };
    std::vector<std::pair<const ElementDef*, Found>> found;
    bool isResourceRoot = path.find('.') == std::string::npos && sd.kind == "resource";
    // Most objects carry no "_name" primitive extensions: skip those look-ups then.
    bool anyUnderscore = false;
    for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it)
      anyUnderscore =
          anyUnderscore || (it->name.GetStringLength() > 0 && it->name.GetString()[0] == '_');
    for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
      std::string_view key(it->name.GetString(), it->name.GetStringLength());
      if (isResourceRoot && key == "resourceType") continue;
      bool underscore = key.starts_with("_");
      std::string_view name = underscore ? key.substr(1) : key;
      if (underscore && findMember(obj, name)) continue;  // paired with its value below
      const ElementDef* def = nullptr;
      const TypeRef* type = nullptr;
      for (const ElementDef* d : defs) {
        if (d->choice) {
          const std::string& prefix = plainName(*d);
          if (name.size() > prefix.size() && name.starts_with(prefix)) {
            if (const TypeRef* t = d->typeForSuffix(name.substr(prefix.size()))) {
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
      if (!def) {
        if (!profilePass_) {
          add("error", "structure", "unknown element " + quote(key) + " in " + path,
              loc + "." + std::string(key));
        }
        continue;
      }
      Found f;
      f.key = std::string(name);
      f.type = type;
      f.value = underscore ? nullptr : &it->value;
      f.ext = underscore      ? &it->value
              : anyUnderscore ? findMember(obj, "_" + std::string(name))
                              : nullptr;
      if (f.ext && !profilePass_ && (!type || !type->primitive)) {
        add("error", "structure",
            quote("_" + std::string(name)) + " is only allowed beside a primitive value",
            loc + "._" + std::string(name));
        f.ext = nullptr;
      }
      found.emplace_back(def, std::move(f));
    }

    for (const ElementDef* def : defs) {
      std::size_t count = 0;
      bool any = false;
      for (const auto& [d, f] : found) {
        if (d != def) continue;
        any = true;
        const Value* v = f.value ? f.value : f.ext;
        count += v->IsArray() ? v->Size() : 1;
      }
      if (count < def->min) {
        add("error", "required",
            path + "." + plainName(*def) + ": minimum required = " + std::to_string(def->min) +
                ", but only found " + std::to_string(count),
            loc + "." + plainName(*def));
      }
      if (def->max && count > *def->max) {
        add("error", "structure",
            path + "." + plainName(*def) + ": maximum allowed = " + std::to_string(*def->max) +
                ", but found " + std::to_string(count),
            loc + "." + plainName(*def));
      }
      if (!any) {
        if (!def->slices->empty()) extensionSlices(*def, nullptr, loc);
        continue;
      }
      for (const auto& [d, f] : found) {
        if (d != def) continue;
        if (f.value && !def->slices->empty()) extensionSlices(*def, f.value, loc);
        items(sd, *def, f.type, f.key, f.value, f.ext, loc);
      }
    }
  }

  // Cardinality of extension slices (US Core race, ethnicity, birthsex ...), counted by url.
  void extensionSlices(const ElementDef& def, const Value* value, const std::string& loc) {
    const auto& slices = *def.slices;
    for (const ElementDef* slice : slices) {
      const std::string& url = slice->types.front().profiles.front();
      std::size_t count = 0;
      if (value && value->IsArray()) {
        for (const auto& e : value->GetArray())
          if (strMember(e, "url") == url) ++count;
      }
      std::string where = loc + "." + plainName(def);
      if (count < slice->min) {
        add("error", "required",
            def.path + ":" + slice->sliceName +
                ": minimum required = " + std::to_string(slice->min) + " extension " + url +
                ", but only found " + std::to_string(count),
            where);
      }
      if (slice->max && count > *slice->max) {
        add("error", "structure",
            def.path + ":" + slice->sliceName +
                ": maximum allowed = " + std::to_string(*slice->max) + " extension " + url +
                ", but found " + std::to_string(count),
            where);
      }
    }
  }

  // One element's JSON value(s): an array when it repeats, a single value otherwise.
  void items(const StructureDefinition& sd, const ElementDef& def, const TypeRef* type,
             const std::string& key, const Value* value, const Value* ext, const std::string& loc) {
    const Value* shape = value ? value : ext;
    std::string base = loc + "." + key;
    if (!profilePass_) {
      if (def.repeats() && !shape->IsArray()) {
        add("error", "structure", key + " repeats, so it must be a JSON array", base);
      } else if (!def.repeats() && shape->IsArray()) {
        add("error", "structure", key + " does not repeat, so it must not be a JSON array", base);
      }
      if (value && ext && value->IsArray() != ext->IsArray()) {
        add("error", "structure", quote("_" + key) + " must have the same shape as " + quote(key),
            loc + "._" + key);
        ext = nullptr;
      }
    }
    if (shape->IsArray()) {
      if (shape->Empty() && !profilePass_) {
        add("error", "structure", "empty array (FHIR forbids empty arrays)", base);
      }
      std::size_t n = shape->Size();
      for (std::size_t i = 0; i < n; ++i) {
        const Value* v = value ? &(*value)[static_cast<rapidjson::SizeType>(i)] : nullptr;
        const Value* e = nullptr;
        if (ext && ext->IsArray() && i < ext->Size())
          e = &(*ext)[static_cast<rapidjson::SizeType>(i)];
        if (e && e->IsNull()) e = nullptr;
        if (v && v->IsNull()) v = nullptr;
        std::string itemLoc = base + "[" + std::to_string(i) + "]";
        if (!v && !e) {
          if (!profilePass_)
            add("error", "structure", "null entry without a value or extension", itemLoc);
          continue;
        }
        item(sd, def, type, v, e, itemLoc);
      }
      return;
    }
    if (value && value->IsNull()) {
      if (!profilePass_) add("error", "structure", "null is not a FHIR value", base);
      return;
    }
    item(sd, def, type, value, ext, base);
  }

  void item(const StructureDefinition& sd, const ElementDef& def, const TypeRef* type,
            const Value* value, const Value* ext, const std::string& loc) {
    std::string code = type ? type->code : "";
    if (!def.contentReference.empty()) code = "BackboneElement";
    // Resource.id is an id although the snapshot types it System.String.
    if (def.name == "id" && sd.kind == "resource" && def.path.find('.') == def.path.rfind('.') &&
        def.path.find('.') != std::string::npos)
      code = "id";

    if (ext) primitiveExtension(*ext, loc);

    if (code.empty()) return;
    if (code == "id" || (type && type->primitive && def.contentReference.empty())) {
      if (!value) {
        if (!ext && !profilePass_)
          add("error", "required", "a value or an extension is required", loc);
      } else if (!profilePass_) {
        if (auto why = checkPrimitive(code, *value)) {
          add("error", value->IsString() && value->GetStringLength() == 0 ? "invariant" : "value",
              def.path + ": " + *why, loc);
          return;
        }
      }
      if (value) {
        binding(def, code, *value, loc);
        fixedAndPattern(def, *value, loc);
      }
      if (evaluable(def))
        constraints(def, Node::element(doc_, value, ext, code, plainName(def)), loc, nullptr);
      return;
    }
    if (!value) return;
    if (!value->IsObject()) {
      if (!profilePass_)
        add("error", "structure", def.path + ": must be a JSON object (" + code + ")", loc);
      return;
    }
    if (type && type->resource) {
      if (profilePass_) return;
      bool entry = def.path == "Bundle.entry.resource";
      resource(*value, loc, Node::resource(doc_, value), entry, def.path.ends_with(".contained"));
      return;
    }
    if (!profilePass_) {
      bool hasContent = false;
      for (auto it = value->MemberBegin(); it != value->MemberEnd(); ++it) {
        std::string_view k(it->name.GetString(), it->name.GetStringLength());
        if (k != "id") hasContent = true;
      }
      if (!hasContent) {
        add("error", "invariant",
            "ele-1: All FHIR elements must have a @value or children (empty object)", loc);
        return;
      }
    }
    binding(def, code, *value, loc);
    fixedAndPattern(def, *value, loc);
    if (code == "Reference") reference(*type, *value, loc);

    const ElementDef* owner = &def;
    if (!def.contentReference.empty()) owner = sd.element(def.contentReference);
    const StructureDefinition* childSd = &sd;
    const ElementDef* typeRoot = nullptr;
    if (!owner || owner->children->empty()) {
      if (profilePass_) {
        constraints(def, Node::element(doc_, value, nullptr, code, plainName(def)), loc, nullptr);
        return;  // the base pass covered the data type
      }
      childSd = type ? type->definition : nullptr;
      if (!childSd || !childSd->root()) {
        add("warning", "not-supported", "no StructureDefinition for type " + quote(code), loc);
        return;
      }
      typeRoot = childSd->root();
    }
    if (evaluable(def) || (typeRoot && evaluable(*typeRoot))) {
      Node node =
          Node::element(doc_, value, nullptr, typeRoot ? code : owner->path, plainName(def));
      constraints(def, node, loc, nullptr);
      if (typeRoot) constraints(*typeRoot, node, loc, &def);
    }
    if (typeRoot) {
      object(*childSd, childSd->type, *typeRoot->children, *value, loc);
    } else {
      object(sd, owner->path, *owner->children, *value, loc);
    }
  }

  // The "_name" object of a primitive: id and extension only.
  void primitiveExtension(const Value& ext, const std::string& loc) {
    if (profilePass_) return;
    if (!ext.IsObject()) {
      add("error", "structure", "the extension part of a primitive must be a JSON object", loc);
      return;
    }
    const StructureDefinition* element = defs_.type("Element");
    if (element && element->root())
      object(*element, "Element", *element->root()->children, ext, loc);
  }

  void reference(const TypeRef& type, const Value& value, const std::string& loc) {
    if (profilePass_) return;
    std::string ref = strMember(value, "reference");
    if (ref.empty()) return;
    bool anyType = type.targetTypes.empty();
    const std::vector<std::string>& allowed = type.targetTypes;
    std::string target;
    if (ref.starts_with("urn:uuid:") || ref.starts_with("urn:oid:")) {
      if (!inBundle_) return;
      auto it = bundleTypes_.find(ref);
      if (it == bundleTypes_.end()) {
        add("error", "not-found",
            "reference " + quote(ref) + " matches no entry fullUrl in the Bundle",
            loc + ".reference");
        return;
      }
      target = it->second;
    } else {
      target = referencedType(ref, defs_);
      if (target.empty() && inBundle_) {
        auto it = bundleTypes_.find(ref);
        if (it != bundleTypes_.end()) target = it->second;
      }
    }
    if (target.empty() || anyType) return;
    if (std::find(allowed.begin(), allowed.end(), target) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      add("error", "structure",
          "reference to a " + target + " where only " + list + " may be referenced",
          loc + ".reference");
    }
  }

  void binding(const ElementDef& def, const std::string& code, const Value& value,
               const std::string& loc) {
    if (!def.binding || def.binding->strength != "required") return;
    const ValueSetExpansion* vs = defs_.valueSet(def.binding->valueSet);
    if (!vs || !vs->complete) return;
    auto allowedList = [&] {
      if (vs->bareCodes.size() > 20) return std::string();
      std::string list;
      for (const auto& c : vs->bareCodes) list += (list.empty() ? "" : ", ") + c;
      return " (allowed: " + list + ")";
    };
    auto codingOk = [&](const Value& coding) {
      std::string system = strMember(coding, "system");
      std::string c = strMember(coding, "code");
      if (c.empty()) return false;
      return system.empty() ? vs->containsCode(c) : vs->contains(system, c);
    };
    if (value.IsString()) {
      std::string c(value.GetString(), value.GetStringLength());
      if (!vs->containsCode(c)) {
        add("error", "code-invalid",
            "the code " + quote(c) + " is not in the required value set " + vs->url + allowedList(),
            loc);
      }
      return;
    }
    if (code == "Coding") {
      if (!codingOk(value)) {
        add("error", "code-invalid",
            "the Coding " + quote(strMember(value, "system") + "|" + strMember(value, "code")) +
                " is not in the required value set " + vs->url + allowedList(),
            loc);
      }
      return;
    }
    if (code == "CodeableConcept") {
      const Value* codings = member(value, "coding");
      if (codings && codings->IsArray()) {
        for (const auto& c : codings->GetArray())
          if (codingOk(c)) return;
      }
      add("error", "code-invalid",
          "no coding is in the required value set " + vs->url + allowedList(), loc);
    }
  }

  void fixedAndPattern(const ElementDef& def, const Value& value, const std::string& loc) {
    if (def.fixed && !jsonEqual(value, *def.fixed)) {
      add("error", "value",
          def.path + ": the value must be exactly the " + def.fixedName + " of the profile", loc);
    }
    if (def.pattern && !jsonContains(value, *def.pattern)) {
      add("error", "value",
          def.path + ": the value does not match the " + def.fixedName + " of the profile", loc);
    }
  }

  // Whether `def` has an invariant that needs a FHIRPath node (ele-1 is checked natively).
  static bool evaluable(const ElementDef& def) { return def.hasInvariants; }

  // Evaluates the invariants of `def` on `node`; `skipFrom` lists keys already evaluated there.
  void constraints(const ElementDef& def, const Node& node, const std::string& loc,
                   const ElementDef* skipFrom) {
    if (!options_.invariants) return;
    for (const Constraint& c : def.constraints) {
      if (c.key == "ele-1") continue;  // checked natively (empty values, arrays, objects)
      if (c.bestPractice && !options_.bestPractice) continue;
      if (!c.expression) continue;
      if (skipFrom && std::any_of(skipFrom->constraints.begin(), skipFrom->constraints.end(),
                                  [&](const Constraint& o) { return o.key == c.key; }))
        continue;
      if (c.bestPractice && inContained_) continue;  // contained resources have no narrative
      std::optional<bool> holds = knownResult(c, node);
      if (!holds) {
        auto result = fhirpath::evaluateBoolean(*c.expression, node, env_);
        if (!result) {
          add("warning", "processing",
              c.key + ": the invariant could not be evaluated: " + result.error().message, loc);
          continue;
        }
        holds = !result->has_value() || **result;
      }
      if (!*holds) {
        add(c.severity == "error" ? "error" : "warning", "invariant", c.key + ": " + c.human, loc);
      }
    }
  }

  // Invariants whose outcome is known without FHIRPath, recognised by their exact expression
  // (the hot path of every Bundle): empty when FHIRPath must decide.
  static std::optional<bool> knownResult(const Constraint& c, const Node& node) {
    const Value* json = node.json();
    if (!json || !json->IsObject()) return std::nullopt;
    const std::string& e = c.expressionText;
    auto present = [&](const char* name) {
      return member(*json, name) || member(*json, ("_" + std::string(name)).c_str());
    };
    // dom-2, dom-4, dom-5: only about contained resources.
    if (c.key.starts_with("dom-") && e.starts_with("contained.") &&
        !e.starts_with("contained.where("))
      return present("contained") ? std::nullopt : std::optional<bool>(true);
    // dom-3 (its as(canonical) over many descendants is an error in strict FHIRPath).
    if (c.key == "dom-3" && e.starts_with("contained.where(")) return containedReferenced(node);
    if (e == "text.`div`.exists()") {
      const Value* text = member(*json, "text");
      return text && member(*text, "div");
    }
    if (c.key == "ref-1" && e.starts_with("reference.startsWith('#').not() or")) {
      const Value* ref = member(*json, "reference");
      if (!ref || !ref->IsString() || ref->GetStringLength() == 0 || ref->GetString()[0] != '#')
        return true;
      return std::nullopt;
    }
    if (e == "resource.exists() or request.exists() or response.exists()")
      return present("resource") || present("request") || present("response");
    if (e == "fullUrl.exists() implies fullUrl.contains('/_history/').not()") {
      const Value* url = member(*json, "fullUrl");
      if (!url) return true;
      if (!url->IsString()) return std::nullopt;
      return std::string_view(url->GetString(), url->GetStringLength()).find("/_history/") ==
             std::string_view::npos;
    }
    // "type = 'document' implies ...": vacuously true unless type is that code.
    static const std::string kTypeIs = "type = '";
    if (e.starts_with(kTypeIs)) {
      auto close = e.find('\'', kTypeIs.size());
      if (close != std::string::npos && e.compare(close, 10, "' implies ") == 0) {
        std::string_view code(e.data() + kTypeIs.size(), close - kTypeIs.size());
        const Value* type = member(*json, "type");
        if (!type) return member(*json, "_type") ? std::nullopt : std::optional<bool>(true);
        if (type->IsString() &&
            std::string_view(type->GetString(), type->GetStringLength()) != code)
          return true;
      }
    }
    return std::nullopt;
  }

  // dom-3 without FHIRPath (its as(canonical) over many descendants is an error in strict
  // FHIRPath): every contained resource is referenced as "#id" from somewhere in the resource,
  // or something references the container as "#".
  static bool containedReferenced(const Node& node) {
    const Value* json = node.json();
    const Value* contained = json ? member(*json, "contained") : nullptr;
    if (!contained || !contained->IsArray()) return true;
    std::set<std::string, std::less<>> refs;
    std::vector<const Value*> stack{json};
    while (!stack.empty()) {
      const Value* v = stack.back();
      stack.pop_back();
      if (v->IsObject()) {
        for (auto it = v->MemberBegin(); it != v->MemberEnd(); ++it) stack.push_back(&it->value);
      } else if (v->IsArray()) {
        for (const auto& item : v->GetArray()) stack.push_back(&item);
      } else if (v->IsString() && v->GetStringLength() > 0 && v->GetString()[0] == '#') {
        refs.emplace(v->GetString(), v->GetStringLength());
      }
    }
    if (refs.contains("#")) return true;
    for (const auto& c : contained->GetArray()) {
      std::string id = strMember(c, "id");
      if (!refs.contains("#" + id)) return false;
    }
    return true;
  }

  Result<bool> memberOf(const Node& coded, const std::string& url) const {
    const ValueSetExpansion* vs = defs_.valueSet(url);
    if (!vs)
      return fail(ErrorCode::kNotSupported, "value set " + url + " is not in fhir-profiles/");
    if (!coded.isElement() || !coded.json()) {
      auto s = fhirpath::toFhirPathString(coded);
      return s && vs->containsCode(*s);
    }
    const Value& v = *coded.json();
    if (v.IsString()) return vs->containsCode(v.GetString());
    auto codingIn = [&](const Value& c) {
      std::string system = strMember(c, "system"), code = strMember(c, "code");
      return !code.empty() &&
             (system.empty() ? vs->containsCode(code) : vs->contains(system, code));
    };
    if (const Value* codings = member(v, "coding"); codings && codings->IsArray()) {
      for (const auto& c : codings->GetArray())
        if (codingIn(c)) return true;
      return false;
    }
    return codingIn(v);
  }

  void add(std::string severity, std::string code, std::string diagnostics,
           std::string expression) {
    std::string key = severity + "|" + code + "|" + expression + "|" + diagnostics;
    if (!seen_.insert(key).second) return;
    if (profilePass_) diagnostics += " (profile " + profileUrl_ + ")";
    issues_.push_back(
        Issue{std::move(severity), std::move(code), std::move(diagnostics), std::move(expression)});
  }

  const Definitions& defs_;
  const ValidationOptions& options_;
  fhirpath::DocumentPtr doc_;
  std::vector<Issue>& issues_;
  Node root_;
  Node resourceNode_;
  fhirpath::Environment env_;
  std::unordered_map<std::string, std::string> bundleTypes_;
  bool inBundle_ = false;
  bool inContained_ = false;
  static constexpr int kMaxDepth = 64;
  int depth_ = 0;
  bool profilePass_ = false;
  std::string profileUrl_;
  std::set<std::string> seen_;
};

}  // namespace

Validator::Validator(std::shared_ptr<const Definitions> definitions)
    : definitions_(std::move(definitions)) {}

Result<Validator> Validator::fromDirectory(const std::string& directory) {
  auto defs = Definitions::load(directory);
  if (!defs) return std::unexpected(defs.error());
  return Validator(std::move(*defs));
}

std::vector<Issue> Validator::validate(const fhirpath::DocumentPtr& document,
                                       const ValidationOptions& options) const {
  std::vector<Issue> issues;
  if (!document) {
    issues.push_back(Issue{"fatal", "structure", "no resource", ""});
    return issues;
  }
  Walk walk(*definitions_, options, document, issues);
  walk.run();
  return issues;
}

std::vector<Issue> Validator::validate(const rapidjson::Value& resource,
                                       const ValidationOptions& options) const {
  auto doc = std::make_shared<rapidjson::Document>();
  doc->CopyFrom(resource, doc->GetAllocator());
  return validate(fhirpath::DocumentPtr(std::move(doc)), options);
}

std::vector<Issue> Validator::validateText(std::string_view text,
                                           const ValidationOptions& options) const {
  auto parsed = fhirpath::parseResource(text);
  if (!parsed) {
    return {Issue{"fatal", "structure", "not FHIR JSON or XML: " + parsed.error().message,
                  parsed.error().location}};
  }
  return validate(parsed->document(), options);
}

bool hasErrors(const std::vector<Issue>& issues) {
  return std::any_of(issues.begin(), issues.end(),
                     [](const Issue& i) { return i.severity == "error" || i.severity == "fatal"; });
}

void toOperationOutcome(const std::vector<Issue>& issues, rapidjson::Value& out,
                        rapidjson::Document::AllocatorType& alloc) {
  out.SetObject();
  out.AddMember("resourceType", "OperationOutcome", alloc);
  rapidjson::Value list(rapidjson::kArrayType);
  auto addIssue = [&](const Issue& issue) {
    rapidjson::Value i(rapidjson::kObjectType);
    i.AddMember("severity", rapidjson::Value(issue.severity.c_str(), alloc), alloc);
    i.AddMember("code", rapidjson::Value(issue.code.c_str(), alloc), alloc);
    i.AddMember("diagnostics", rapidjson::Value(issue.diagnostics.c_str(), alloc), alloc);
    if (!issue.expression.empty()) {
      rapidjson::Value expr(rapidjson::kArrayType);
      expr.PushBack(rapidjson::Value(issue.expression.c_str(), alloc), alloc);
      i.AddMember("expression", expr, alloc);
    }
    list.PushBack(i, alloc);
  };
  if (issues.empty()) {
    addIssue(Issue{"information", "informational", "no issues found", ""});
  }
  for (const auto& issue : issues) addIssue(issue);
  out.AddMember("issue", list, alloc);
}

std::string toOperationOutcomeJson(const std::vector<Issue>& issues, bool pretty) {
  rapidjson::Document doc;
  toOperationOutcome(issues, doc, doc.GetAllocator());
  rapidjson::StringBuffer buffer;
  if (pretty) {
    rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buffer);
    writer.SetIndent(' ', 2);
    doc.Accept(writer);
  } else {
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    doc.Accept(writer);
  }
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace switchboard::fhir

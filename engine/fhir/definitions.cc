// Loading StructureDefinitions, ValueSets and CodeSystems; value set expansion from the shipped
// CodeSystems. Thread-safety: construction is single-threaded; the result is immutable.
#include "engine/fhir/definitions.h"

#include "engine/fhir/invariants.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <rapidjson/error/en.h>

namespace switchboard::fhir {

namespace {

const char* const kFhirTypeExtension =
    "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type";
const char* const kBestPracticeExtension =
    "http://hl7.org/fhir/StructureDefinition/elementdefinition-bestpractice";

std::string str(const rapidjson::Value& obj, const char* key) {
  if (!obj.IsObject()) return {};
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

const rapidjson::Value* member(const rapidjson::Value& obj, const char* key) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(key);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

std::string stripVersion(std::string_view url) {
  auto bar = url.find('|');
  return std::string(url.substr(0, bar));
}

// Type code of ElementDefinition.type[i]: System.String and friends map to the FHIR type the
// structuredefinition-fhir-type extension names, or to the matching FHIR primitive.
std::string typeCode(const rapidjson::Value& type) {
  std::string code = str(type, "code");
  static const std::string kSystem = "http://hl7.org/fhirpath/System.";
  if (!code.starts_with(kSystem)) return code;
  if (const auto* ext = member(type, "extension"); ext && ext->IsArray()) {
    for (const auto& e : ext->GetArray()) {
      if (str(e, "url") != kFhirTypeExtension) continue;
      std::string v = str(e, "valueUrl");
      if (v.empty()) v = str(e, "valueUri");
      if (!v.empty()) return v;
    }
  }
  std::string sys = code.substr(kSystem.size());
  if (sys == "String") return "string";
  if (sys == "Boolean") return "boolean";
  if (sys == "Integer") return "integer";
  if (sys == "Decimal") return "decimal";
  if (sys == "Date") return "date";
  if (sys == "DateTime") return "dateTime";
  if (sys == "Time") return "time";
  return "string";
}

std::vector<std::string> strings(const rapidjson::Value& obj, const char* key) {
  std::vector<std::string> out;
  const auto* arr = member(obj, key);
  if (!arr || !arr->IsArray()) return out;
  for (const auto& v : arr->GetArray())
    if (v.IsString()) out.push_back(stripVersion(v.GetString()));
  return out;
}

Result<std::unique_ptr<rapidjson::Document>> parseJson(const std::string& file,
                                                       const std::string& text) {
  auto doc = std::make_unique<rapidjson::Document>();
  doc->Parse(text.data(), text.size());
  if (doc->HasParseError()) {
    return fail(ErrorCode::kStructure, file + ": malformed JSON at offset " +
                                           std::to_string(doc->GetErrorOffset()) + ": " +
                                           rapidjson::GetParseError_En(doc->GetParseError()));
  }
  return doc;
}

}  // namespace

std::string choiceSuffix(std::string_view typeCode) {
  std::string s(typeCode);
  if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

const TypeRef* ElementDef::typeForSuffix(std::string_view suffix) const {
  for (const auto& t : types)
    if (t.suffix == suffix) return &t;
  return nullptr;
}

bool ElementDef::isPrimitiveChoiceSuffix(std::string_view suffix) const {
  const TypeRef* t = typeForSuffix(suffix);
  return t && !t->code.empty() && std::islower(static_cast<unsigned char>(t->code[0]));
}

void ChildIndex::rebuild(std::size_t buckets) {
  table_.assign(buckets, Bucket{});
  const std::uint32_t mask = static_cast<std::uint32_t>(buckets - 1);
  mask_ = mask;
  for (std::uint32_t i = 0; i < entries_.size(); ++i) {
    const std::uint32_t h = hash(entries_[i].first);
    std::uint32_t b = h & mask;
    while (table_[b].entry != 0) b = (b + 1) & mask;
    table_[b] = Bucket{i + 1, h};
  }
}

void ChildIndex::add(std::string key, ChildSlot slot) {
  if (find(key)) return;
  entries_.emplace_back(std::move(key), slot);
  if (entries_.size() * 2 > table_.size())
    rebuild(std::max<std::size_t>(16, table_.size() * 2));
  else
    rebuild(table_.size());
}

const ElementDef* StructureDefinition::element(std::string_view path) const {
  auto it = byPath_.find(std::string(path));
  return it == byPath_.end() ? nullptr : it->second;
}

const std::vector<const ElementDef*>& StructureDefinition::children(std::string_view path) const {
  static const std::vector<const ElementDef*> kNone;
  auto it = children_.find(std::string(path));
  return it == children_.end() ? kNone : it->second;
}

const std::vector<const ElementDef*>& StructureDefinition::slices(std::string_view path) const {
  static const std::vector<const ElementDef*> kNone;
  auto it = slices_.find(std::string(path));
  return it == slices_.end() ? kNone : it->second;
}

bool ValueSetExpansion::containsCode(std::string_view code) const {
  return codeSet.find(code) != codeSet.end();
}

bool ValueSetExpansion::contains(std::string_view system, std::string_view code) const {
  return systemCodeSet.find(std::pair<std::string_view, std::string_view>(system, code)) !=
         systemCodeSet.end();
}

Result<std::shared_ptr<const Definitions>> Definitions::load(const std::string& directory) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(directory, ec)) {
    return fail(ErrorCode::kNotFound, "FHIR definitions directory not found: " + directory);
  }
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(directory, ec)) {
    if (entry.is_regular_file() && entry.path().extension() == ".json")
      files.push_back(entry.path().string());
  }
  if (ec) return fail(ErrorCode::kNotFound, "cannot list " + directory + ": " + ec.message());
  std::sort(files.begin(), files.end());
  std::vector<std::pair<std::string, std::string>> texts;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in && !in.eof()) return fail(ErrorCode::kNotFound, "cannot read " + file);
    texts.emplace_back(file, text.str());
  }
  return loadTexts(texts);
}

Result<std::shared_ptr<const Definitions>> Definitions::loadTexts(
    const std::vector<std::pair<std::string, std::string>>& nameAndText) {
  auto defs = std::shared_ptr<Definitions>(new Definitions());
  for (const auto& [name, text] : nameAndText) {
    auto doc = parseJson(name, text);
    if (!doc) return std::unexpected(doc.error());
    const rapidjson::Value& root = **doc;
    if (str(root, "resourceType") == "Bundle") {
      if (const auto* entries = member(root, "entry"); entries && entries->IsArray()) {
        for (const auto& e : entries->GetArray()) {
          if (const auto* r = member(e, "resource")) {
            if (auto ok = defs->add(name, *r); !ok) return std::unexpected(ok.error());
          }
        }
      }
    } else if (auto ok = defs->add(name, root); !ok) {
      return std::unexpected(ok.error());
    }
  }
  if (auto ok = defs->finish(); !ok) return std::unexpected(ok.error());
  return std::shared_ptr<const Definitions>(std::move(defs));
}

Result<void> Definitions::add(const std::string& file, const rapidjson::Value& resource) {
  std::string rt = str(resource, "resourceType");
  if (rt == "ValueSet" || rt == "CodeSystem") {
    std::string url = str(resource, "url");
    if (url.empty()) return {};
    auto copy = std::make_shared<rapidjson::Document>();
    copy->CopyFrom(resource, copy->GetAllocator());
    (rt == "ValueSet" ? valueSetSources_ : codeSystems_)[url] = std::move(copy);
    return {};
  }
  if (rt != "StructureDefinition") return {};

  auto sd = std::make_unique<StructureDefinition>();
  sd->values_ = std::make_shared<rapidjson::Document>();
  auto& alloc = sd->values_->GetAllocator();
  sd->url = str(resource, "url");
  sd->id = str(resource, "id");
  sd->name = str(resource, "name");
  sd->type = str(resource, "type");
  sd->kind = str(resource, "kind");
  sd->derivation = str(resource, "derivation");
  sd->baseDefinition = stripVersion(str(resource, "baseDefinition"));
  if (const auto* a = member(resource, "abstract"); a && a->IsBool()) sd->isAbstract = a->GetBool();
  const auto* snapshot = member(resource, "snapshot");
  const auto* elements = snapshot ? member(*snapshot, "element") : nullptr;
  if (!elements || !elements->IsArray()) {
    return fail(ErrorCode::kStructure,
                file + ": StructureDefinition " + sd->url + " has no snapshot", "snapshot");
  }
  sd->elements.reserve(elements->Size());
  for (const auto& el : elements->GetArray()) {
    ElementDef def;
    def.id = str(el, "id");
    def.path = str(el, "path");
    if (def.id.empty()) def.id = def.path;
    def.inSlice = def.id.find(':') != std::string::npos;
    def.sliceName = str(el, "sliceName");
    auto dot = def.path.rfind('.');
    def.name = dot == std::string::npos ? def.path : def.path.substr(dot + 1);
    def.choice = def.name.ends_with("[x]");
    def.plain = def.choice ? def.name.substr(0, def.name.size() - 3) : def.name;
    if (const auto* m = member(el, "min"); m && m->IsUint()) def.min = m->GetUint();
    std::string max = str(el, "max");
    if (max != "*" && !max.empty()) def.max = static_cast<std::uint32_t>(std::stoul(max));
    if (const auto* types = member(el, "type"); types && types->IsArray()) {
      for (const auto& t : types->GetArray()) {
        TypeRef ref;
        ref.code = typeCode(t);
        ref.suffix = choiceSuffix(ref.code);
        ref.profiles = strings(t, "profile");
        ref.targetProfiles = strings(t, "targetProfile");
        def.types.push_back(std::move(ref));
      }
    }
    std::string cref = str(el, "contentReference");
    if (!cref.empty()) def.contentReference = cref.substr(cref.find('#') + 1);
    if (const auto* b = member(el, "binding")) {
      Binding binding;
      binding.strength = str(*b, "strength");
      binding.valueSet = stripVersion(str(*b, "valueSet"));
      if (!binding.valueSet.empty()) def.binding = std::move(binding);
    }
    if (const auto* ms = member(el, "mustSupport"); ms && ms->IsBool())
      def.mustSupport = ms->GetBool();
    if (const auto* cs = member(el, "constraint"); cs && cs->IsArray()) {
      for (const auto& c : cs->GetArray()) {
        Constraint con;
        con.key = str(c, "key");
        con.severity = str(c, "severity");
        con.human = str(c, "human");
        con.expressionText = str(c, "expression");
        con.message = con.key + ": " + con.human;
        if (const auto* ext = member(c, "extension"); ext && ext->IsArray()) {
          for (const auto& e : ext->GetArray()) {
            if (str(e, "url") == kBestPracticeExtension) {
              if (const auto* v = member(e, "valueBoolean"); v && v->IsBool() && v->GetBool())
                con.bestPractice = true;
            }
          }
        }
        if (!con.expressionText.empty()) {
          auto compiled = fhirpath::compile(con.expressionText);
          if (compiled) {
            con.expression = std::move(*compiled);
          } else {
            con.compileError = compiled.error().message;
          }
        }
        con.native = nativeInvariant(con.expressionText);
        con.nativeOnly = isNativeOnly(con.key, con.expressionText);
        if (con.key != "ele-1" && con.expression) def.hasInvariants = true;
        def.constraints.push_back(std::move(con));
      }
    }
    for (auto it = el.MemberBegin(); it != el.MemberEnd(); ++it) {
      std::string_view key(it->name.GetString(), it->name.GetStringLength());
      bool isFixed = key.starts_with("fixed") && key.size() > 5 && std::isupper(key[5]);
      bool isPattern = key.starts_with("pattern") && key.size() > 7 && std::isupper(key[7]);
      if (!isFixed && !isPattern) continue;
      auto* copy = new (alloc.Malloc(sizeof(rapidjson::Value))) rapidjson::Value();
      copy->CopyFrom(it->value, alloc);
      (isFixed ? def.fixed : def.pattern) = copy;
      def.fixedName = std::string(key);
    }
    sd->elements.push_back(std::move(def));
  }
  for (const auto& def : sd->elements) {
    if (!def.sliceName.empty() && def.id == def.path + ":" + def.sliceName && !def.types.empty() &&
        !def.types.front().profiles.empty())
      sd->slices_[def.path].push_back(&def);
    if (def.inSlice) continue;
    sd->byPath_.emplace(def.path, &def);
    auto dot = def.path.rfind('.');
    if (dot != std::string::npos) sd->children_[def.path.substr(0, dot)].push_back(&def);
  }
  for (const auto& [path, children] : sd->children_) {
    ChildIndex& index = sd->childIndexes_[path];
    for (std::uint32_t i = 0; i < children.size(); ++i) {
      const ElementDef* child = children[i];
      auto put = [&](const std::string& key, const TypeRef* type) {
        index.add(key, ChildSlot{i, type, false});
        index.add("_" + key, ChildSlot{i, type, true});
      };
      if (child->choice) {
        for (const auto& t : child->types) put(child->plain + t.suffix, &t);
      } else {
        put(child->name, child->types.empty() ? nullptr : &child->types.front());
      }
    }
  }
  static const std::vector<const ElementDef*> kNone;
  static const ChildIndex kNoIndex;
  for (auto& def : sd->elements) {
    auto c = sd->children_.find(def.path);
    def.children = c == sd->children_.end() ? &kNone : &c->second;
    auto ci = sd->childIndexes_.find(def.path);
    def.childIndex = ci == sd->childIndexes_.end() ? &kNoIndex : &ci->second;
    if (!def.contentReference.empty()) {
      auto target = sd->byPath_.find(def.contentReference);
      if (target != sd->byPath_.end()) def.contentTarget = target->second;
    }
    auto sl = sd->slices_.find(def.path);
    def.slices = sl == sd->slices_.end() ? &kNone : &sl->second;
  }
  structures_.push_back(std::move(sd));
  return {};
}

Result<void> Definitions::finish() {
  for (const auto& sd : structures_) {
    if (!sd->url.empty()) urls_[sd->url] = sd.get();
    if (!sd->id.empty()) urls_.emplace(sd->id, sd.get());
    if (!sd->isProfile()) types_[sd->type] = sd.get();
  }
  for (auto& sd : structures_) {
    for (auto& def : sd->elements) {
      for (auto& t : def.types) {
        t.definition = type(t.code);
        t.primitive = t.definition
                          ? t.definition->kind == "primitive-type"
                          : !t.code.empty() && std::islower(static_cast<unsigned char>(t.code[0]));
        t.resource = t.code == "Resource" || (t.definition && t.definition->kind == "resource");
        t.primitiveKind = fhir::primitiveKind(t.code);
        t.reference = t.code == "Reference";
        t.coding = t.code == "Coding";
        t.codeableConcept = t.code == "CodeableConcept";
        for (const auto& target : t.targetProfiles) {
          const StructureDefinition* sd = byUrl(target);
          std::string name = sd ? sd->type : target.substr(target.rfind('/') + 1);
          if (name == "Resource") {
            t.targetTypes.clear();
            break;
          }
          t.targetTypes.push_back(std::move(name));
        }
      }
    }
  }

  // Codes of a CodeSystem, with nested concepts; empty optional when it is not enumerable.
  auto systemCodes = [&](const std::string& url) -> std::optional<std::vector<std::string>> {
    auto it = codeSystems_.find(url);
    if (it == codeSystems_.end()) return std::nullopt;
    if (str(*it->second, "content") != "complete") return std::nullopt;
    std::vector<std::string> out;
    std::function<void(const rapidjson::Value&)> walk = [&](const rapidjson::Value& owner) {
      const auto* concepts = member(owner, "concept");
      if (!concepts || !concepts->IsArray()) return;
      for (const auto& c : concepts->GetArray()) {
        std::string code = str(c, "code");
        if (!code.empty()) out.push_back(code);
        walk(c);
      }
    };
    walk(*it->second);
    return out;
  };

  std::set<std::string> inProgress;
  std::function<const ValueSetExpansion*(const std::string&)> expand =
      [&](const std::string& url) -> const ValueSetExpansion* {
    if (auto done = valueSets_.find(url); done != valueSets_.end()) return &done->second;
    auto src = valueSetSources_.find(url);
    if (src == valueSetSources_.end() || inProgress.contains(url)) return nullptr;
    inProgress.insert(url);
    ValueSetExpansion exp;
    exp.url = url;
    exp.complete = true;
    const rapidjson::Value& vs = *src->second;
    auto addCode = [&](const std::string& system, const std::string& code) {
      exp.codes.emplace(system, code);
      exp.bareCodes.insert(code);
    };
    const auto* compose = member(vs, "compose");
    const auto* includes = compose ? member(*compose, "include") : nullptr;
    if (includes && includes->IsArray()) {
      for (const auto& inc : includes->GetArray()) {
        std::string system = str(inc, "system");
        if (member(inc, "filter")) {
          exp.complete = false;
          continue;
        }
        for (const auto& ref : strings(inc, "valueSet")) {
          const ValueSetExpansion* other = expand(ref);
          if (!other) {
            exp.complete = false;
            continue;
          }
          if (!other->complete) exp.complete = false;
          for (const auto& [s, c] : other->codes) addCode(s, c);
        }
        if (system.empty()) continue;
        if (const auto* concepts = member(inc, "concept"); concepts && concepts->IsArray()) {
          for (const auto& c : concepts->GetArray()) addCode(system, str(c, "code"));
        } else if (auto codes = systemCodes(system)) {
          for (const auto& c : *codes) addCode(system, c);
        } else {
          exp.complete = false;
        }
      }
      if (const auto* excludes = member(*compose, "exclude"); excludes && excludes->IsArray()) {
        for (const auto& ex : excludes->GetArray()) {
          std::string system = str(ex, "system");
          if (const auto* concepts = member(ex, "concept"); concepts && concepts->IsArray()) {
            for (const auto& c : concepts->GetArray()) exp.codes.erase({system, str(c, "code")});
          }
        }
        exp.bareCodes.clear();
        for (const auto& [s, c] : exp.codes) exp.bareCodes.insert(c);
      }
    } else if (const auto* expansion = member(vs, "expansion")) {
      if (const auto* contains = member(*expansion, "contains"); contains && contains->IsArray()) {
        for (const auto& c : contains->GetArray()) addCode(str(c, "system"), str(c, "code"));
      }
    } else {
      exp.complete = false;
    }
    inProgress.erase(url);
    return &valueSets_.emplace(url, std::move(exp)).first->second;
  };
  for (const auto& [url, doc] : valueSetSources_) expand(url);
  for (auto& [url, exp] : valueSets_) {
    for (const auto& c : exp.bareCodes) exp.codeSet.insert(c);
    for (const auto& sc : exp.codes) exp.systemCodeSet.insert(sc);
  }

  // What the validator's walk needs per element, resolved once.
  auto evaluated = [](const Constraint& c) { return c.key != "ele-1" && c.expression; };
  for (auto& sd : structures_) {
    sd->isResource = sd->kind == "resource";
    for (auto& def : sd->elements) {
      def.checkWhenAbsent = def.min > 0 || !def.slices->empty();
      def.maxCount = def.max ? *def.max : UINT32_MAX;
      auto dot = def.path.find('.');
      def.resourceId = def.name == "id" && sd->kind == "resource" && dot != std::string::npos &&
                       dot == def.path.rfind('.');
      def.entryResource = def.path == "Bundle.entry.resource";
      def.containedResource = def.path.ends_with(".contained");
      for (const auto& c : def.constraints)
        if (evaluated(c)) def.invariants.push_back(&c);
      if (def.binding && def.binding->strength == "required") {
        const ValueSetExpansion* vs = valueSet(def.binding->valueSet);
        if (vs && vs->complete) def.requiredValueSet = vs;
      }
      for (auto& t : def.types) {
        const ElementDef* root = t.definition ? t.definition->root() : nullptr;
        if (!root) continue;
        for (const auto& c : root->constraints) {
          if (!evaluated(c)) continue;
          bool own = std::any_of(def.constraints.begin(), def.constraints.end(),
                                 [&](const Constraint& o) { return o.key == c.key; });
          if (!own) t.invariants.push_back(&c);
        }
      }
    }
  }
  for (auto& sd : structures_) {
    for (auto& def : sd->elements) {
      def.absentChecks.clear();
      for (std::uint32_t i = 0; i < def.children->size(); ++i)
        if ((*def.children)[i]->checkWhenAbsent) def.absentChecks.push_back(i);
    }
  }
  for (auto& sd : structures_) {
    for (auto& [path, index] : sd->childIndexes_) {
      const std::vector<const ElementDef*>& children = sd->children_[path];
      index.forEachSlot([&](ChildSlot& slot) {
        const ElementDef& d = *children[slot.index];
        // (as Walk::item decides it: Resource.id is an id whatever the snapshot says)
        const bool primitive =
            d.resourceId || (slot.type && slot.type->primitive && d.contentReference.empty());
        slot.plainPrimitive = !slot.underscore && primitive && !d.fixed && !d.pattern &&
                              d.invariants.empty() && d.slices->empty() && !d.repeats();
        const bool typed =
            slot.type && !slot.type->code.empty() && !slot.type->primitive && !slot.type->resource;
        const bool childrenKnown = !d.children->empty() || (slot.type && slot.type->definition &&
                                                            slot.type->definition->root());
        slot.plainObject = !slot.underscore && typed && !primitive && childrenKnown &&
                           d.contentReference.empty() && !d.requiredValueSet && !d.fixed &&
                           !d.pattern && d.slices->empty();
        slot.kind = d.resourceId ? PrimitiveKind::kId
                    : slot.type  ? slot.type->primitiveKind
                                 : PrimitiveKind::kOther;
      });
    }
  }
  if (const StructureDefinition* ext = type("Extension"))
    extensionValue_ = ext->element("Extension.value[x]");
  return {};
}

const StructureDefinition* Definitions::type(std::string_view name) const {
  auto it = types_.find(name);
  return it == types_.end() ? nullptr : it->second;
}

const StructureDefinition* Definitions::byUrl(std::string_view url) const {
  auto it = urls_.find(stripVersion(url));
  return it == urls_.end() ? nullptr : it->second;
}

const ValueSetExpansion* Definitions::valueSet(std::string_view url) const {
  auto it = valueSets_.find(stripVersion(url));
  return it == valueSets_.end() ? nullptr : &it->second;
}

bool Definitions::isPrimitive(std::string_view typeCode) const {
  if (const auto* sd = type(typeCode)) return sd->kind == "primitive-type";
  return !typeCode.empty() && std::islower(static_cast<unsigned char>(typeCode[0]));
}

bool Definitions::isResourceType(std::string_view name) const {
  const auto* sd = type(name);
  return sd && sd->kind == "resource";
}

std::vector<std::string> Definitions::profileUrls() const {
  std::vector<std::string> out;
  for (const auto& sd : structures_)
    if (sd->isProfile()) out.push_back(sd->url);
  return out;
}

}  // namespace switchboard::fhir

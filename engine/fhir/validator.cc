// The validator's walk over a FHIR JSON tree, guided by StructureDefinition snapshots.
// Thread-safety: validate() keeps all state on its own stack; the definitions are read-only.
#include "engine/fhir/validator.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "engine/fhir/invariants.h"
#include "engine/fhir/json_arena.h"
#include "engine/fhir/primitive_format.h"

namespace switchboard::fhir {

namespace {

using fhirpath::Node;
using rapidjson::Value;

std::string_view sv(const Value& v) { return {v.GetString(), v.GetStringLength()}; }

// The member `key` of an object (the first of that name), or null. Inlined: most keys are
// literals, and the loop then compares against their characters as constants (no memcmp call).
[[gnu::always_inline]] inline const Value* member(const Value& obj, std::string_view key) {
  if (!obj.IsObject()) return nullptr;
  for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
    if (it->name.GetStringLength() != key.size()) continue;
    const char* k = it->name.GetString();
    std::size_t i = 0;
    while (i < key.size() && k[i] == key[i]) ++i;
    if (i == key.size()) return &it->value;
  }
  return nullptr;
}

// The string member `key` of an object, or "" (also when it is not a string).
[[gnu::always_inline]] inline std::string_view strMember(const Value& obj, std::string_view key) {
  const Value* v = member(obj, key);
  return v && v->IsString() ? sv(*v) : std::string_view();
}

// The member "_" + name of an object, found without building the key.
const Value* underscoreMember(const Value& obj, std::string_view name) {
  for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
    std::string_view k = sv(it->name);
    if (k.size() == name.size() + 1 && k[0] == '_' && k.substr(1) == name) return &it->value;
  }
  return nullptr;
}

std::string quote(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 80)) out += (static_cast<unsigned char>(c) < 0x20) ? '?' : c;
  if (s.size() > 80) out += "...";
  return out + "'";
}

const std::string& plainName(const ElementDef& def) { return def.plain; }

// Type codes the walk substitutes (at namespace scope: a function's static pays a guard check
// on every call).
const std::string kBackboneCode = "BackboneElement", kIdCode = "id", kNoCode;

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
std::string_view referencedType(std::string_view ref, const Definitions& defs) {
  if (ref.starts_with("#") || ref.starts_with("urn:")) return {};
  std::size_t end = ref.find('?');
  std::string_view path = ref.substr(0, end);
  if (auto h = path.find("/_history/"); h != std::string_view::npos) path = path.substr(0, h);
  auto slash = path.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return {};
  std::string_view head = path.substr(0, slash);
  auto prev = head.rfind('/');
  std::string_view type = prev == std::string_view::npos ? head : head.substr(prev + 1);
  if (type.empty() || !std::isupper(static_cast<unsigned char>(type[0]))) return {};
  const StructureDefinition* sd = defs.type(type);
  return !sd || sd->isResource ? type : std::string_view();
}

// A location in the resource, kept as a chain on the stack and turned into FHIRPath text
// ("Bundle.entry[0].resource.name[1]") only when an issue is reported.
struct Loc {
  const Loc* parent = nullptr;
  std::string_view name;  // the whole text at the root, else one element name
  long index = -1;        // [index] when >= 0

  void append(std::string& out) const {
    if (parent) {
      parent->append(out);
      out += '.';
    }
    out += name;
    if (index >= 0) {
      char digits[24];  // "[" index "]" written backwards, without a std::to_string temporary
      char* p = digits + sizeof digits;
      *--p = ']';
      long i = index;
      do {
        *--p = static_cast<char>('0' + i % 10);
        i /= 10;
      } while (i > 0);
      *--p = '[';
      out.append(p, static_cast<std::size_t>(digits + sizeof digits - p));
    }
  }
  std::size_t length() const {
    std::size_t n = (parent ? parent->length() + 1 : 0) + name.size();
    if (index >= 0) {
      n += 2;
      for (long i = index; i >= 10; i /= 10) ++n;
      ++n;
    }
    return n;
  }
  std::string str() const {
    std::string out;
    out.reserve(length());
    append(out);
    return out;
  }
  std::string str(std::string_view suffix) const {
    std::string out;
    out.reserve(length() + suffix.size());
    append(out);
    out += suffix;
    return out;
  }
};

class Walk {
 public:
  Walk(const Definitions& defs, const ValidationOptions& options, fhirpath::DocumentPtr doc,
       std::vector<Issue>& issues)
      : defs_(defs),
        options_(options),
        doc_(std::move(doc)),
        issues_(issues),
        scratch_(claimScratch()),
        bundleTypes_(scratch_.bundleTypes) {
    bundleTypes_.clear();
    if (strMember(*doc_, "resourceType") == "Bundle") {
      if (const auto* entries = member(*doc_, "entry"); entries && entries->IsArray()) {
        for (const auto& e : entries->GetArray()) {
          std::string_view fullUrl = strMember(e, "fullUrl");
          const Value* r = member(e, "resource");
          if (!fullUrl.empty() && r)
            bundleTypes_.emplace_back(fullUrl, strMember(*r, "resourceType"));
        }
        // Sorted for look-ups; of entries sharing a fullUrl the last counts (bundleType()).
        // (Insertion sort for the usual few entries: std::stable_sort takes a heap buffer.)
        auto byUrl = [](const BundleType& a, const BundleType& b) { return a.first < b.first; };
        if (bundleTypes_.size() <= 32) {
          for (std::size_t i = 1; i < bundleTypes_.size(); ++i) {
            BundleType e = bundleTypes_[i];
            std::size_t j = i;
            for (; j > 0 && byUrl(e, bundleTypes_[j - 1]); --j)
              bundleTypes_[j] = bundleTypes_[j - 1];
            bundleTypes_[j] = e;
          }
        } else {
          std::stable_sort(bundleTypes_.begin(), bundleTypes_.end(), byUrl);
        }
      }
      inBundle_ = true;
    }
  }

  ~Walk() {
    if (&scratch_ != &ownScratch_) {
      // Kept for the thread's next validation unless a huge document grew them.
      if (bundleTypes_.capacity() > kScratchKeep) std::vector<BundleType>().swap(bundleTypes_);
      scratch_.inUse = false;
    }
  }
  Walk(const Walk&) = delete;
  Walk& operator=(const Walk&) = delete;

  void run() {
    const Value& root = *doc_;
    if (!root.IsObject()) {
      add("fatal", "structure", "a FHIR resource must be a JSON object", "");
      return;
    }
    resource(root, nullptr, true);
  }

 private:
  using BundleType = std::pair<std::string_view, std::string_view>;  // fullUrl, resource type

  // One JSON member of an object, resolved to its element.
  struct Member {
    std::uint32_t index;        // slot->index: the element's position in the parent's children
    const ChildSlot* slot;      // the key's slot
    const Value::Member* json;  // the JSON member: "name", or a "_name" without "name"
    const Value* ext;           // the "_name" object (beside "name", or alone), or null

    // The value of "name"; null for a lone "_name".
    const Value* value() const { return slot->underscore ? nullptr : &json->value; }
    // The element's name, without the '_'.
    std::string_view key() const {
      std::string_view k = sv(json->name);
      return slot->underscore ? k.substr(1) : k;
    }
  };

  // Buffers of a walk: one set per thread, reused from one validation to the next so that a warm
  // thread validates without allocating them; a walk that finds them taken (a validation nested
  // in another on the same thread) uses its own.
  struct Scratch {
    std::vector<BundleType> bundleTypes;
    bool inUse = false;
  };
  static constexpr std::size_t kScratchKeep = 4096;
  // Members an object() call resolves in its own frame (more go to the heap): most FHIR objects
  // have fewer, and 64 nested frames of them take 48 KB of stack.
  static constexpr std::size_t kLocalMembers = 24;
  Scratch& claimScratch() {
    static thread_local Scratch scratch;
    if (scratch.inUse) return ownScratch_;
    scratch.inUse = true;
    return scratch;
  }

  // A resource at `loc` (null for the root, "Bundle.entry[0].resource" for entries).
  void resource(const Value& obj, const Loc* loc, bool applyProfiles, bool contained = false) {
    std::string_view rt = strMember(obj, "resourceType");
    if (rt.empty()) {
      add("error", "structure", "resourceType is missing", loc ? loc->str() : "Resource");
      return;
    }
    Loc rootLoc{nullptr, rt};
    const Loc& here = loc ? *loc : rootLoc;
    const StructureDefinition* sd = defs_.type(rt);
    if (!sd || !sd->isResource || !sd->root()) {
      add("warning", "not-supported",
          "no StructureDefinition for resource type " + quote(rt) +
              " in fhir-profiles/; not validated",
          here.str());
      return;
    }
    const Value* savedResource = resource_;
    std::optional<Node> savedNode = std::move(resourceNode_);
    bool savedContained = inContained_;
    inContained_ = contained;
    resource_ = &obj;
    resourceNode_.reset();
    profilePass_ = false;
    Target self{&obj, nullptr, {}, {}, true};
    constraints(sd->root()->invariants, self, here, nullptr);
    object(*sd, sd->type, *sd->root(), obj, here, true);

    std::vector<const StructureDefinition*> profiles;
    if (applyProfiles) {
      for (const auto& url : options_.profiles) {
        const StructureDefinition* p = defs_.byUrl(url);
        if (!p) {
          if (!loc) add("error", "not-found", "unknown profile " + quote(url), here.str());
          continue;
        }
        if (p->type == rt && p->root()) profiles.push_back(p);
      }
    }
    if (const auto* meta = member(obj, "meta")) {
      if (const auto* declared = member(*meta, "profile"); declared && declared->IsArray()) {
        for (const auto& u : declared->GetArray()) {
          if (!u.IsString()) continue;
          const StructureDefinition* p = defs_.byUrl(sv(u));
          if (!p) {
            add("information", "not-supported",
                "profile " + quote(sv(u)) +
                    " is not in fhir-profiles/; checked against the base definition only",
                here.str(".meta.profile"));
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
      constraints(p->root()->invariants, self, here, sd->root());
      object(*p, p->type, *p->root(), obj, here, true);
      profilePass_ = false;
    }
    resource_ = savedResource;
    resourceNode_ = std::move(savedNode);
    inContained_ = savedContained;
  }

  // The members of `obj` resolved to children of `index` and written to `out` (room for one per
  // JSON member), with each "_name" paired with its value, unknown keys and misplaced "_name"s
  // reported; how many, and whether they came in definition order.
  std::size_t collectMembers(const std::string& path, const ChildIndex& index, const Value& obj,
                             const Loc& loc, bool isResourceRoot, Member* out, bool& sorted) {
    // Most objects carry no "_name" primitive extensions: skip those look-ups then.
    bool anyUnderscore = false;
    for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it)
      anyUnderscore =
          anyUnderscore || (it->name.GetStringLength() > 0 && it->name.GetString()[0] == '_');
    std::size_t n = 0;
    sorted = true;
    std::uint32_t lastIndex = 0;
    for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
      std::string_view key = sv(it->name);
      if (isResourceRoot && key == "resourceType") continue;
      const bool underscore = !key.empty() && key[0] == '_';
      std::string_view name = underscore ? key.substr(1) : key;
      if (underscore && member(obj, name)) continue;  // paired with its value below
      const ChildSlot* slot = index.find(key);
      if (!slot) {
        if (!profilePass_) {
          add("error", "structure", "unknown element " + quote(key) + " in " + path,
              loc.str() + "." + std::string(key));
        }
        continue;
      }
      const TypeRef* type = slot->type;
      const Value* ext = underscore      ? &it->value
                         : anyUnderscore ? underscoreMember(obj, name)
                                         : nullptr;
      if (ext && !profilePass_ && (!type || !type->primitive)) {
        add("error", "structure",
            quote("_" + std::string(name)) + " is only allowed beside a primitive value",
            loc.str() + "._" + std::string(name));
        ext = nullptr;
        if (underscore) continue;  // a lone "_name": nothing left to walk
      }
      sorted = sorted && slot->index >= lastIndex;
      lastIndex = slot->index;
      out[n++] = Member{slot->index, slot, &*it, ext};
    }
    return n;
  }

  // The members of a JSON object holding the children of `parent` (an element of `sd` at
  // `path`).
  void object(const StructureDefinition& sd, const std::string& path, const ElementDef& parent,
              const Value& obj, const Loc& loc, bool resourceRoot = false) {
    if (depth_ >= kMaxDepth) {
      add("error", "too-long",
          "elements nested deeper than " + std::to_string(kMaxDepth) + " levels are not validated",
          loc.str());
      return;
    }
    struct DepthGuard {
      int& d;
      explicit DepthGuard(int& depth) : d(++depth) {}
      ~DepthGuard() { --d; }
    } guard(depth_);
    const std::vector<const ElementDef*>& defs = *parent.children;
    const ChildIndex& index = *parent.childIndex;
    const bool isResourceRoot = resourceRoot && sd.isResource;
    // The resolved members live in this frame (nested objects have their own), on the heap only
    // for an object of more than kLocalMembers members.
    Member local[kLocalMembers];
    std::unique_ptr<Member[]> heap;
    Member* const members = obj.MemberCount() <= kLocalMembers
                                ? local
                                : (heap.reset(new Member[obj.MemberCount()]), heap.get());
    std::size_t end = 0;
    // The usual object: each key names a child and none starts with '_', so one pass resolves
    // them; a "_name" or an unknown key sends the object to collectMembers(), which reports them.
    bool sorted = true;  // members in definition order already (the mapping writes them so)
    std::uint32_t lastIndex = 0;
    for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
      std::string_view key = sv(it->name);
      if (isResourceRoot && key == "resourceType") continue;
      const ChildSlot* slot = key.empty() || key[0] == '_' ? nullptr : index.find(key);
      if (!slot) {
        end = collectMembers(path, index, obj, loc, isResourceRoot, members, sorted);
        break;
      }
      sorted = sorted && slot->index >= lastIndex;
      lastIndex = slot->index;
      members[end++] = Member{slot->index, slot, &*it, nullptr};
    }
    // Group by element (stable: JSON order within an element), then walk in definition order.
    for (std::size_t i = sorted ? end : 1; i < end; ++i) {
      Member m = members[i];
      std::size_t j = i;
      for (; j > 0 && members[j - 1].index > m.index; --j) members[j] = members[j - 1];
      members[j] = m;
    }
    // Present elements come from members; of the absent ones only those in absentChecks need a
    // look (a minimum or extension slices), merged in so that issues keep definition order.
    const std::uint32_t* const absent = parent.absentChecks.data();
    const std::size_t absentCount = parent.absentChecks.size();
    std::size_t nextAbsent = 0;
    auto checkAbsentUpTo = [&](std::uint32_t limit) {
      for (; nextAbsent < absentCount && absent[nextAbsent] < limit; ++nextAbsent)
        cardinality(path, *defs[absent[nextAbsent]], 0, false, loc);
    };
    // How many values a member holds (the value, or a lone "_name").
    auto values = [](const Member& m) -> std::size_t {
      const Value& v = m.json->value;
      return v.IsArray() ? v.Size() : 1;
    };
    const bool shortcuts = options_.shortcuts && !profilePass_;
    for (std::size_t next = 0; next < end;) {
      const std::uint32_t d = members[next].index;
      checkAbsentUpTo(d);
      if (nextAbsent < absentCount && absent[nextAbsent] == d) ++nextAbsent;
      const ElementDef* def = defs[d];
      // The members of this element: usually one (more for a choice element's types or a key
      // given twice).
      std::size_t last = next + 1;
      std::size_t count = values(members[next]);
      for (; last < end && members[last].index == d; ++last) count += values(members[last]);
      if (count < def->min || count > def->maxCount) cardinality(path, *def, count, true, loc);
      for (std::size_t k = next; k < last; ++k) {
        const Member& m = members[k];
        const ChildSlot& slot = *m.slot;
        // Shortcuts (see ChildSlot) for a value without "_name": a single valid primitive, or
        // objects of the right shape, of a plain element.
        if (shortcuts && !m.ext) {
          if (slot.plainPrimitive && primitiveHolds(*def, slot, m.json->value)) continue;
          if (slot.plainObject && plainObjects(sd, *def, *slot.type, m.key(), m.json->value, loc))
            continue;
        }
        const Value* value = m.value();
        if (value && !def->slices->empty()) extensionSlices(*def, value, loc);
        items(sd, *def, slot.type, m.key(), value, m.ext, loc);
      }
      next = last;
    }
    checkAbsentUpTo(static_cast<std::uint32_t>(defs.size()));
  }

  // Whether items() would report nothing for `value`, the single value of a member whose slot is
  // plainPrimitive (no "_name" beside it): a valid format and, under a required binding, a code of
  // the value set; false leaves the value to items(), which then reports what is wrong.
  static bool primitiveHolds(const ElementDef& def, const ChildSlot& slot, const Value& value) {
    if (!plainlyValid(slot.kind, value) &&
        checkPrimitive(slot.kind, def.resourceId ? kIdCode : slot.type->code, value))
      return false;
    const ValueSetExpansion* vs = def.requiredValueSet;
    return !vs || !value.IsString() || vs->containsCode(sv(value));
  }

  // An object with a member other than "id" (else ele-1 fails).
  static bool hasContent(const Value& v) {
    if (!v.IsObject()) return false;
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
      const char* k = it->name.GetString();
      if (it->name.GetStringLength() != 2 || k[0] != 'i' || k[1] != 'd') return true;
    }
    return false;
  }

  // The value of a member whose slot is plainObject (no "_name" beside it) when items() would find
  // nothing wrong with its shape: a single object with content where the element does not
  // repeat, a non-empty array of such objects where it does; each object is then checked as
  // item() checks it, and true returned. False (nothing checked, nothing reported) leaves the
  // value to items().
  bool plainObjects(const StructureDefinition& sd, const ElementDef& def, const TypeRef& type,
                    std::string_view key, const Value& value, const Loc& loc) {
    if (!def.repeats()) {
      if (!hasContent(value)) return false;
      objectItem(sd, def, type, value, Loc{&loc, key});
      return true;
    }
    if (!value.IsArray() || value.Empty()) return false;
    for (const Value& v : value.GetArray())
      if (!hasContent(v)) return false;
    const rapidjson::SizeType n = value.Size();
    for (rapidjson::SizeType i = 0; i < n; ++i)
      objectItem(sd, def, type, value[i], Loc{&loc, key, static_cast<long>(i)});
    return true;
  }

  // item() for one object with content of a plainObject slot, past its case analysis.
  void objectItem(const StructureDefinition& sd, const ElementDef& def, const TypeRef& type,
                  const Value& value, const Loc& loc) {
    if (type.reference) reference(type, value, loc);
    const bool inlineChildren = !def.children->empty();
    const StructureDefinition& childSd = inlineChildren ? sd : *type.definition;
    if (!def.invariants.empty() || (!inlineChildren && !type.invariants.empty())) {
      Target target{&value, nullptr, inlineChildren ? &def.path : &type.code, &plainName(def)};
      constraints(def.invariants, target, loc, nullptr);
      if (!inlineChildren) constraints(type.invariants, target, loc, nullptr);
    }
    if (inlineChildren) {
      object(sd, def.path, def, value, loc);
    } else {
      object(childSd, childSd.type, *childSd.root(), value, loc);
    }
  }

  // The minimum and maximum of `def`, found `count` times; an absent element's extension slices.
  void cardinality(const std::string& path, const ElementDef& def, std::size_t count, bool any,
                   const Loc& loc) {
    if (count < def.min) {
      add("error", "required",
          path + "." + plainName(def) + ": minimum required = " + std::to_string(def.min) +
              ", but only found " + std::to_string(count),
          loc.str() + "." + plainName(def));
    }
    if (def.max && count > *def.max) {
      add("error", "structure",
          path + "." + plainName(def) + ": maximum allowed = " + std::to_string(*def.max) +
              ", but found " + std::to_string(count),
          loc.str() + "." + plainName(def));
    }
    if (!any && !def.slices->empty()) extensionSlices(def, nullptr, loc);
  }

  // Cardinality of extension slices (US Core race, ethnicity, birthsex ...), counted by url.
  void extensionSlices(const ElementDef& def, const Value* value, const Loc& loc) {
    const auto& slices = *def.slices;
    for (const ElementDef* slice : slices) {
      const std::string& url = slice->types.front().profiles.front();
      std::size_t count = 0;
      if (value && value->IsArray()) {
        for (const auto& e : value->GetArray())
          if (strMember(e, "url") == url) ++count;
      }
      if (count < slice->min) {
        add("error", "required",
            def.path + ":" + slice->sliceName +
                ": minimum required = " + std::to_string(slice->min) + " extension " + url +
                ", but only found " + std::to_string(count),
            loc.str() + "." + plainName(def));
      }
      if (slice->max && count > *slice->max) {
        add("error", "structure",
            def.path + ":" + slice->sliceName +
                ": maximum allowed = " + std::to_string(*slice->max) + " extension " + url +
                ", but found " + std::to_string(count),
            loc.str() + "." + plainName(def));
      }
    }
  }

  // One element's JSON value(s): an array when it repeats, a single value otherwise.
  void items(const StructureDefinition& sd, const ElementDef& def, const TypeRef* type,
             std::string_view key, const Value* value, const Value* ext, const Loc& loc) {
    const Value* shape = value ? value : ext;
    const Loc base{&loc, key};
    if (!profilePass_) {
      if (def.repeats() && !shape->IsArray()) {
        add("error", "structure", std::string(key) + " repeats, so it must be a JSON array",
            base.str());
      } else if (!def.repeats() && shape->IsArray()) {
        add("error", "structure",
            std::string(key) + " does not repeat, so it must not be a JSON array", base.str());
      }
      if (value && ext && value->IsArray() != ext->IsArray()) {
        add("error", "structure",
            quote("_" + std::string(key)) + " must have the same shape as " + quote(key),
            loc.str() + "._" + std::string(key));
        ext = nullptr;
      }
    }
    if (shape->IsArray()) {
      if (shape->Empty() && !profilePass_) {
        add("error", "structure", "empty array (FHIR forbids empty arrays)", base.str());
      }
      std::size_t n = shape->Size();
      for (std::size_t i = 0; i < n; ++i) {
        const Value* v = value ? &(*value)[static_cast<rapidjson::SizeType>(i)] : nullptr;
        const Value* e = nullptr;
        if (ext && ext->IsArray() && i < ext->Size())
          e = &(*ext)[static_cast<rapidjson::SizeType>(i)];
        if (e && e->IsNull()) e = nullptr;
        if (v && v->IsNull()) v = nullptr;
        const Loc itemLoc{&loc, key, static_cast<long>(i)};
        if (!v && !e) {
          if (!profilePass_)
            add("error", "structure", "null entry without a value or extension", itemLoc.str());
          continue;
        }
        item(sd, def, type, v, e, itemLoc);
      }
      return;
    }
    if (value && value->IsNull()) {
      if (!profilePass_) add("error", "structure", "null is not a FHIR value", base.str());
      return;
    }
    item(sd, def, type, value, ext, base);
  }

  void item(const StructureDefinition& sd, const ElementDef& def, const TypeRef* type,
            const Value* value, const Value* ext, const Loc& loc) {
    const std::string* code = type ? &type->code : &kNoCode;
    if (!def.contentReference.empty()) code = &kBackboneCode;
    // Resource.id is an id although the snapshot types it System.String.
    if (def.resourceId) code = &kIdCode;

    if (ext) primitiveExtension(*ext, loc);

    if (code->empty()) return;
    // (a TypeRef of code "id" is primitive, so only the override needs its own test)
    if (code == &kIdCode || (type && type->primitive && def.contentReference.empty())) {
      if (!value) {
        if (!ext && !profilePass_)
          add("error", "required", "a value or an extension is required", loc.str());
      } else if (!profilePass_) {
        PrimitiveKind kind = code == &kIdCode ? PrimitiveKind::kId : type->primitiveKind;
        if (plainlyValid(kind, *value)) {
          // the commonest values, known to pass without the full check
        } else if (auto why = checkPrimitive(kind, *code, *value)) {
          add("error", value->IsString() && value->GetStringLength() == 0 ? "invariant" : "value",
              def.path + ": " + *why, loc.str());
          return;
        }
      }
      if (value) {
        if (def.requiredValueSet) binding(def, type, *value, loc);
        if (def.fixed || def.pattern) fixedAndPattern(def, *value, loc);
      }
      if (!def.invariants.empty())
        constraints(def.invariants, Target{value, ext, code, &plainName(def)}, loc, nullptr);
      return;
    }
    if (!value) return;
    if (!value->IsObject()) {
      if (!profilePass_)
        add("error", "structure", def.path + ": must be a JSON object (" + *code + ")", loc.str());
      return;
    }
    if (type && type->resource) {
      if (profilePass_) return;
      resource(*value, &loc, def.entryResource, def.containedResource);
      return;
    }
    if (!profilePass_) {
      bool hasContent = false;
      for (auto it = value->MemberBegin(); it != value->MemberEnd() && !hasContent; ++it) {
        const char* k = it->name.GetString();
        hasContent = it->name.GetStringLength() != 2 || k[0] != 'i' || k[1] != 'd';
      }
      if (!hasContent) {
        add("error", "invariant",
            "ele-1: All FHIR elements must have a @value or children (empty object)", loc.str());
        return;
      }
    }
    if (def.requiredValueSet) binding(def, type, *value, loc);
    if (def.fixed || def.pattern) fixedAndPattern(def, *value, loc);
    if (type && type->reference && code == &type->code) reference(*type, *value, loc);

    const ElementDef* owner = &def;
    if (!def.contentReference.empty()) owner = def.contentTarget;
    const StructureDefinition* childSd = &sd;
    const ElementDef* typeRoot = nullptr;
    if (!owner || owner->children->empty()) {
      if (profilePass_) {
        if (!def.invariants.empty())
          constraints(def.invariants, Target{value, nullptr, code, &plainName(def)}, loc, nullptr);
        return;  // the base pass covered the data type
      }
      childSd = type ? type->definition : nullptr;
      if (!childSd || !childSd->root()) {
        add("warning", "not-supported", "no StructureDefinition for type " + quote(*code),
            loc.str());
        return;
      }
      typeRoot = childSd->root();
    }
    if (!def.invariants.empty() || (typeRoot && !type->invariants.empty())) {
      Target target{value, nullptr, typeRoot ? code : &owner->path, &plainName(def)};
      constraints(def.invariants, target, loc, nullptr);
      if (typeRoot) constraints(type->invariants, target, loc, nullptr);
    }
    if (typeRoot) {
      object(*childSd, childSd->type, *typeRoot, *value, loc);
    } else {
      object(sd, owner->path, *owner, *value, loc);
    }
  }

  // The "_name" object of a primitive: id and extension only.
  void primitiveExtension(const Value& ext, const Loc& loc) {
    if (profilePass_) return;
    if (!ext.IsObject()) {
      add("error", "structure", "the extension part of a primitive must be a JSON object",
          loc.str());
      return;
    }
    if (!elementType_) elementType_ = defs_.type("Element");
    if (elementType_ && elementType_->root())
      object(*elementType_, elementType_->type, *elementType_->root(), ext, loc);
  }

  void reference(const TypeRef& type, const Value& value, const Loc& loc) {
    if (profilePass_) return;
    std::string_view ref = strMember(value, "reference");
    if (ref.empty()) return;
    bool anyType = type.targetTypes.empty();
    const std::vector<std::string>& allowed = type.targetTypes;
    std::string_view target;
    if (ref.starts_with("urn:uuid:") || ref.starts_with("urn:oid:")) {
      if (!inBundle_) return;
      const std::string_view* found = bundleType(ref);
      if (!found) {
        add("error", "not-found",
            "reference " + quote(ref) + " matches no entry fullUrl in the Bundle",
            loc.str(".reference"));
        return;
      }
      target = *found;
    } else {
      target = referencedType(ref, defs_);
      if (target.empty() && inBundle_) {
        if (const std::string_view* found = bundleType(ref)) target = *found;
      }
    }
    if (target.empty() || anyType) return;
    if (std::find(allowed.begin(), allowed.end(), target) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      add("error", "structure",
          "reference to a " + std::string(target) + " where only " + list + " may be referenced",
          loc.str(".reference"));
    }
  }

  const std::string_view* bundleType(std::string_view fullUrl) const {
    if (bundleTypes_.size() <= 16) {
      // A few entries: scanned from the end (of entries sharing a fullUrl the last counts, and
      // the sort kept their order), their last eight bytes compared first: the uuids of
      // "urn:uuid:" fullUrls all have the same length and differ at the end.
      const std::size_t n = fullUrl.size();
      std::uint64_t tail = 0;
      if (n >= 8) std::memcpy(&tail, fullUrl.data() + n - 8, 8);
      for (auto it = bundleTypes_.rbegin(); it != bundleTypes_.rend(); ++it) {
        const std::string_view u = it->first;
        if (u.size() != n) continue;
        if (n >= 8) {
          std::uint64_t t;
          std::memcpy(&t, u.data() + n - 8, 8);
          if (t != tail) continue;
        }
        if (u == fullUrl) return &it->second;
      }
      return nullptr;
    }
    auto it = std::upper_bound(bundleTypes_.begin(), bundleTypes_.end(), fullUrl,
                               [](std::string_view u, const auto& e) { return u < e.first; });
    if (it == bundleTypes_.begin() || std::prev(it)->first != fullUrl) return nullptr;
    return &std::prev(it)->second;
  }

  void binding(const ElementDef& def, const TypeRef* type, const Value& value, const Loc& loc) {
    const ValueSetExpansion* vs = def.requiredValueSet;
    if (!vs) return;
    auto allowedList = [&] {
      if (vs->bareCodes.size() > 20) return std::string();
      std::string list;
      for (const auto& c : vs->bareCodes) list += (list.empty() ? "" : ", ") + c;
      return " (allowed: " + list + ")";
    };
    auto codingOk = [&](const Value& coding) {
      std::string_view system = strMember(coding, "system");
      std::string_view c = strMember(coding, "code");
      if (c.empty()) return false;
      return system.empty() ? vs->containsCode(c) : vs->contains(system, c);
    };
    if (value.IsString()) {
      std::string_view c = sv(value);
      if (!vs->containsCode(c)) {
        add("error", "code-invalid",
            "the code " + quote(c) + " is not in the required value set " + vs->url + allowedList(),
            loc.str());
      }
      return;
    }
    if (type && type->coding) {
      if (!codingOk(value)) {
        add("error", "code-invalid",
            "the Coding " +
                quote(std::string(strMember(value, "system")) + "|" +
                      std::string(strMember(value, "code"))) +
                " is not in the required value set " + vs->url + allowedList(),
            loc.str());
      }
      return;
    }
    if (type && type->codeableConcept) {
      const Value* codings = member(value, "coding");
      if (codings && codings->IsArray()) {
        for (const auto& c : codings->GetArray())
          if (codingOk(c)) return;
      }
      add("error", "code-invalid",
          "no coding is in the required value set " + vs->url + allowedList(), loc.str());
    }
  }

  void fixedAndPattern(const ElementDef& def, const Value& value, const Loc& loc) {
    if (def.fixed && !jsonEqual(value, *def.fixed)) {
      add("error", "value",
          def.path + ": the value must be exactly the " + def.fixedName + " of the profile",
          loc.str());
    }
    if (def.pattern && !jsonContains(value, *def.pattern)) {
      add("error", "value",
          def.path + ": the value does not match the " + def.fixedName + " of the profile",
          loc.str());
    }
  }

  // The element an invariant is evaluated on; its FHIRPath node is made only when FHIRPath runs.
  struct Target {
    const Value* json = nullptr;
    const Value* ext = nullptr;
    const std::string* type = nullptr;  // FHIR type (or backbone path) for the node
    const std::string* name = nullptr;
    bool resource = false;  // the current resource itself
  };

  // Evaluates `list` on `target`; `skipFrom` lists keys already evaluated there.
  void constraints(const std::vector<const Constraint*>& list, const Target& target, const Loc& loc,
                   const ElementDef* skipFrom) {
    if (!options_.invariants || list.empty()) return;
    // Made when FHIRPath first runs here (a pointer: a Node on this frame costs every call).
    std::unique_ptr<Node> node;
    // The last native decision on this target: dom-2, dom-4 and dom-5 share one check, which
    // (a pure function of the same input) need not run three times.
    NativeInvariant lastNative = nullptr;
    std::optional<bool> lastDecision;
    for (const Constraint* cp : list) {
      const Constraint& c = *cp;
      if (c.bestPractice && !options_.bestPractice) continue;
      if (skipFrom && std::any_of(skipFrom->constraints.begin(), skipFrom->constraints.end(),
                                  [&](const Constraint& o) { return o.key == c.key; }))
        continue;
      if (c.bestPractice && inContained_) continue;  // contained resources have no narrative
      std::optional<bool> holds;
      if (c.nativeOnly) {
        holds = !target.json || containedResourcesReferenced(*target.json);
      } else {
        if (c.native && options_.invariantEngine != InvariantEngine::kFhirPath) {
          if (c.native != lastNative) {
            lastNative = c.native;
            lastDecision =
                c.native(InvariantInput{target.json, target.ext, resource_, doc_.get(), &defs_});
          }
          holds = lastDecision;
        }
        if (!holds || options_.invariantEngine == InvariantEngine::kCrossCheck) {
          if (!node) node = std::make_unique<Node>(makeNode(target));
          auto result = fhirpath::evaluateBoolean(*c.expression, *node, env());
          if (!result) {
            if (holds) {
              add("error", "exception",
                  c.key +
                      ": the native check decided where FHIRPath fails: " + result.error().message,
                  loc.str());
              continue;
            }
            add("warning", "processing",
                c.key + ": the invariant could not be evaluated: " + result.error().message,
                loc.str());
            continue;
          }
          bool byFhirPath = !result->has_value() || **result;
          if (holds && *holds != byFhirPath) {
            add("error", "exception",
                c.key + ": the native check says " + (*holds ? "true" : "false") +
                    ", FHIRPath says " + (byFhirPath ? "true" : "false"),
                loc.str());
          }
          holds = byFhirPath;
        }
      }
      if (!*holds) {
        add(c.severity == "error" ? "error" : "warning", "invariant", c.message, loc.str());
      }
    }
  }

  Node makeNode(const Target& target) {
    if (target.resource) return resourceNode();
    return Node::element(doc_, target.json, target.ext, *target.type, *target.name);
  }

  const Node& resourceNode() {
    if (!resourceNode_) {
      resourceNode_ =
          resource_ == doc_.get() ? Node::resource(doc_) : Node::resource(doc_, resource_);
    }
    return *resourceNode_;
  }

  // The FHIRPath environment, made on first use: %resource is the current resource,
  // %rootResource the outermost one.
  const fhirpath::Environment& env() {
    if (!env_) {
      env_.emplace();
      env_->rootResource = Node::resource(doc_);
      env_->memberOf = [this](const Node& coded, const std::string& url) -> Result<bool> {
        return memberOf(coded, url);
      };
    }
    env_->resource = resourceNode();
    return *env_;
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
      std::string_view system = strMember(c, "system"), code = strMember(c, "code");
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
    if (reported(severity, code, diagnostics, expression)) return;
    if (issues_.empty()) issues_.reserve(8);
    if (profilePass_) {
      suffixed_.emplace_back(issues_.size(), diagnostics.size());
      diagnostics += " (profile " + profileUrl_ + ")";
    }
    issues_.push_back(
        Issue{std::move(severity), std::move(code), std::move(diagnostics), std::move(expression)});
  }

  // Issue i's diagnostics without the suffix a profile pass added.
  std::string_view rawDiagnostics(std::size_t i) const {
    std::string_view d = issues_[i].diagnostics;
    for (const auto& [index, length] : suffixed_)
      if (index == i) return d.substr(0, length);
    return d;
  }

  // Whether this issue was reported already (diagnostics compared without the profile suffix):
  // a scan of the few issues there usually are, a set of keys once there are many.
  bool reported(const std::string& severity, const std::string& code,
                const std::string& diagnostics, const std::string& expression) {
    constexpr std::size_t kScanLimit = 32;
    auto keyOf = [](const std::string& s, const std::string& c, std::string_view d,
                    const std::string& e) { return s + "|" + c + "|" + e + "|" + std::string(d); };
    if (issues_.size() < kScanLimit) {
      for (std::size_t i = 0; i < issues_.size(); ++i) {
        const Issue& o = issues_[i];
        if (o.severity == severity && o.code == code && o.expression == expression &&
            rawDiagnostics(i) == diagnostics)
          return true;
      }
      return false;
    }
    if (seen_.empty()) {
      for (std::size_t i = 0; i < issues_.size(); ++i) {
        const Issue& o = issues_[i];
        seen_.insert(keyOf(o.severity, o.code, rawDiagnostics(i), o.expression));
      }
    }
    return !seen_.insert(keyOf(severity, code, diagnostics, expression)).second;
  }

  const Definitions& defs_;
  const ValidationOptions& options_;
  fhirpath::DocumentPtr doc_;
  std::vector<Issue>& issues_;
  Scratch ownScratch_;
  Scratch& scratch_;
  std::vector<BundleType>& bundleTypes_;  // sorted by fullUrl
  const Value* resource_ = nullptr;       // the current resource's JSON
  std::optional<Node> resourceNode_;      // its FHIRPath node, made on first use
  std::optional<fhirpath::Environment> env_;
  const StructureDefinition* elementType_ = nullptr;
  bool inBundle_ = false;
  bool inContained_ = false;
  static constexpr int kMaxDepth = 64;
  int depth_ = 0;
  bool profilePass_ = false;
  std::string profileUrl_;
  // (issue index, diagnostics length before the suffix) of the issues a profile pass reported
  std::vector<std::pair<std::size_t, std::size_t>> suffixed_;
  std::set<std::string> seen_;  // keys of the issues, once there are many
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
  // Plain JSON is read into the thread's arena; the walk keeps no node of it past its end.
  if (auto arena = ArenaDocument::read(text)) return validate(arena->document(), options);
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

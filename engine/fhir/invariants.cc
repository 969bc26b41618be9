// Native invariants: exact re-statements of R4 constraint expressions over the JSON of the
// element. Thread-safety: pure functions over immutable data.
#include "engine/fhir/invariants.h"

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace switchboard::fhir {

namespace {

using rapidjson::Value;
using Decision = std::optional<bool>;
constexpr Decision kUndecided = std::nullopt;

std::string_view keyOf(const Value::ConstMemberIterator& it) {
  return {it->name.GetString(), it->name.GetStringLength()};
}

bool upperAt(std::string_view s, std::size_t i) {
  return i < s.size() && std::isupper(static_cast<unsigned char>(s[i]));
}

// The JSON value of child `name` of `obj` and whether FHIRPath's `name` depends on nothing else:
// false when `obj` is not an object, names the child twice, holds "_name" (a primitive
// extension, which FHIRPath merges in), or a key `name` + upper-case letter (which FHIRPath could
// read as a choice type).
// (Keys and names are short: a plain loop beats a call to memcmp. Inlined into each native, the
// loop compares against the name's characters as constants: 5,500 instructions less per seed
// Bundle than calls.)
bool startsWith(const char* k, std::string_view name) {
  std::size_t i = 0;
  while (i < name.size() && k[i] == name[i]) ++i;
  return i == name.size();
}
[[gnu::always_inline]] inline bool plainChild(const Value& obj, std::string_view name,
                                              const Value*& out) {
  out = nullptr;
  if (!obj.IsObject()) return false;
  for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
    std::string_view k = keyOf(it);
    if (k.size() < name.size() || k.empty()) continue;
    if (k[0] == '_') {
      if (k.size() == name.size() + 1 && startsWith(k.data() + 1, name)) return false;
    } else if (k[0] == name[0] && startsWith(k.data(), name)) {
      if (k.size() == name.size()) {
        if (out) return false;
        out = &it->value;
      } else if (upperAt(k, name.size())) {
        return false;
      }
    }
  }
  return true;
}

// How many items FHIRPath's `name` yields on `obj` (a non-choice element): JSON nulls yield
// nothing, arrays one item per non-null entry. Empty when plainChild() says it depends on more.
[[gnu::always_inline]] inline std::optional<std::size_t> count(const Value& obj,
                                                               std::string_view name) {
  const Value* v = nullptr;
  if (!plainChild(obj, name, v)) return std::nullopt;
  if (!v || v->IsNull()) return 0;
  if (!v->IsArray()) return 1;
  std::size_t n = 0;
  for (const auto& item : v->GetArray()) n += item.IsNull() ? 0 : 1;
  return n;
}

// The string value of a non-repeating primitive child: `absent` when there is none; empty
// optional (undecided) when it is not a plain JSON string.
struct Text {
  bool absent = false;
  std::string_view value;
};
std::optional<Text> text(const Value& obj, std::string_view name) {
  const Value* v = nullptr;
  if (!plainChild(obj, name, v)) return std::nullopt;
  if (!v) return Text{true, {}};
  if (!v->IsString()) return std::nullopt;
  return Text{false, {v->GetString(), v->GetStringLength()}};
}

bool oneOf(std::string_view s, std::initializer_list<std::string_view> set) {
  return std::find(set.begin(), set.end(), s) != set.end();
}

// The items of `obj.name` when they are all JSON objects (nulls skipped), without copying them
// out: the value itself (an object, or an array of objects and nulls) and how many there are.
class Objects {
 public:
  class Iterator {
   public:
    Iterator(const Value* at, const Value* end) : at_(at), end_(end) { skipNulls(); }
    const Value& operator*() const { return *at_; }
    Iterator& operator++() {
      ++at_;
      skipNulls();
      return *this;
    }
    bool operator!=(const Iterator& o) const { return at_ != o.at_; }

   private:
    void skipNulls() {
      while (at_ != end_ && at_->IsNull()) ++at_;
    }
    const Value* at_;
    const Value* end_;
  };

  Objects() = default;
  Objects(const Value* first, const Value* end, std::size_t n) : first_(first), end_(end), n_(n) {}
  std::size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  const Value& front() const { return *begin(); }
  Iterator begin() const { return {first_, end_}; }
  Iterator end() const { return {end_, end_}; }

 private:
  const Value* first_ = nullptr;
  const Value* end_ = nullptr;
  std::size_t n_ = 0;
};

// Empty optional when an item is not an object (or plainChild() says FHIRPath reads more).
std::optional<Objects> objects(const Value& obj, std::string_view name) {
  const Value* v = nullptr;
  if (!plainChild(obj, name, v)) return std::nullopt;
  if (!v || v->IsNull()) return Objects();
  if (v->IsArray()) {
    std::size_t n = 0;
    for (const auto& item : v->GetArray()) {
      if (item.IsNull()) continue;
      if (!item.IsObject()) return std::nullopt;
      ++n;
    }
    return Objects(v->Begin(), v->End(), n);
  }
  if (!v->IsObject()) return std::nullopt;
  return Objects(v, v + 1, 1);
}

// `a.exists() <op> b.exists()` style rules over counts of the focus object.
#define COUNT_OR_UNDECIDED(var, obj, name) \
  auto var##_ = count(obj, name);          \
  if (!var##_) return kUndecided;          \
  const std::size_t var = *var##_

const Value& focus(const InvariantInput& in) { return *in.json; }

bool isObject(const InvariantInput& in) { return in.json && in.json->IsObject(); }

// ---- data types

// ext-1: extension.exists() != value.exists()
Decision ext1(const InvariantInput& in) {
  if (!isObject(in)) return kUndecided;
  const ElementDef* valueDef = in.definitions ? in.definitions->extensionValue() : nullptr;
  if (!valueDef) return kUndecided;
  COUNT_OR_UNDECIDED(extensions, focus(in), "extension");
  std::size_t values = 0;
  for (auto it = focus(in).MemberBegin(); it != focus(in).MemberEnd(); ++it) {
    std::string_view k = keyOf(it);
    if (k.starts_with("_value")) return kUndecided;
    if (!k.starts_with("value")) continue;
    if (!upperAt(k, 5) || !valueDef->typeForSuffix(k.substr(5))) return kUndecided;
    if (it->value.IsNull() || it->value.IsArray()) return kUndecided;
    ++values;
  }
  return (extensions > 0) != (values > 0);
}

// ref-1: reference.startsWith('#').not() or (reference.substring(1).trace('url') in
// %rootResource.contained.id.trace('ids')); decided when the reference is not local.
Decision ref1(const InvariantInput& in) {
  if (!isObject(in)) return kUndecided;
  auto ref = text(focus(in), "reference");
  if (!ref) return kUndecided;
  if (ref->absent) return true;  // both sides of the `or` are empty
  return ref->value.starts_with("#") ? kUndecided : Decision(true);
}

// cpt-2: value.empty() or system.exists()
Decision cpt2(const InvariantInput& in) {
  COUNT_OR_UNDECIDED(value, focus(in), "value");
  COUNT_OR_UNDECIDED(system, focus(in), "system");
  return value == 0 || system > 0;
}

// qty-3: code.empty() or system.exists()
Decision qty3(const InvariantInput& in) {
  COUNT_OR_UNDECIDED(code, focus(in), "code");
  COUNT_OR_UNDECIDED(system, focus(in), "system");
  return code == 0 || system > 0;
}

// att-1: data.empty() or contentType.exists()
Decision att1(const InvariantInput& in) {
  COUNT_OR_UNDECIDED(data, focus(in), "data");
  COUNT_OR_UNDECIDED(contentType, focus(in), "contentType");
  return data == 0 || contentType > 0;
}

// per-1: start.hasValue().not() or end.hasValue().not() or (start <= end); decided when start
// or end is missing.
Decision per1(const InvariantInput& in) {
  COUNT_OR_UNDECIDED(start, focus(in), "start");
  COUNT_OR_UNDECIDED(end, focus(in), "end");
  if (start == 0 || end == 0) return true;
  return kUndecided;
}

// ---- resources (DomainResource)

// dom-2, dom-4, dom-5: only about contained resources, true when there are none.
Decision noContained(const InvariantInput& in) {
  COUNT_OR_UNDECIDED(contained, focus(in), "contained");
  return contained == 0 ? Decision(true) : kUndecided;
}

// dom-6: text.`div`.exists()
Decision dom6(const InvariantInput& in) {
  auto narrative = objects(focus(in), "text");
  if (!narrative || narrative->size() > 1) return kUndecided;
  if (narrative->empty()) return false;
  COUNT_OR_UNDECIDED(div, narrative->front(), "div");
  return div > 0;
}

// ---- Bundle

std::optional<Text> bundleType(const Value& bundle) { return text(bundle, "type"); }

// bdl-1: total.empty() or (type = 'searchset') or (type = 'history')
Decision bdl1(const InvariantInput& in) {
  COUNT_OR_UNDECIDED(total, focus(in), "total");
  if (total == 0) return true;
  auto type = bundleType(focus(in));
  if (!type || type->absent) return kUndecided;
  return oneOf(type->value, {"searchset", "history"});
}

// bdl-2: entry.search.empty() or (type = 'searchset')
Decision bdl2(const InvariantInput& in) {
  auto entries = objects(focus(in), "entry");
  if (!entries) return kUndecided;
  std::size_t searches = 0;
  for (const Value& e : *entries) {
    COUNT_OR_UNDECIDED(n, e, "search");
    searches += n;
  }
  if (searches == 0) return true;
  auto type = bundleType(focus(in));
  if (!type || type->absent) return kUndecided;
  return type->value == "searchset";
}

// bdl-3 / bdl-4: entry.all(request.exists() = (%resource.type = 'batch' or ...)) and the same
// for response.
Decision entriesAll(const InvariantInput& in, std::string_view part,
                    std::initializer_list<std::string_view> types) {
  if (!in.resource) return kUndecided;
  auto type = bundleType(*in.resource);
  if (!type || type->absent) return kUndecided;
  const bool expected = oneOf(type->value, types);
  auto entries = objects(focus(in), "entry");
  if (!entries) return kUndecided;
  bool all = true;
  for (const Value& e : *entries) {
    COUNT_OR_UNDECIDED(n, e, part);
    all = all && (n > 0) == expected;
  }
  return all;
}
Decision bdl3(const InvariantInput& in) {
  return entriesAll(in, "request", {"batch", "transaction", "history"});
}
Decision bdl4(const InvariantInput& in) {
  return entriesAll(in, "response", {"batch-response", "transaction-response", "history"});
}

// One entry's `fullUrl & resource.meta.versionId` as its two parts, ordered as the joined text.
struct JoinedKey {
  std::string_view first, second;
};
int compareJoined(const JoinedKey& a, const JoinedKey& b) {
  std::string_view a1 = a.first, a2 = a.second, b1 = b.first, b2 = b.second;
  for (;;) {
    if (a1.empty()) std::swap(a1, a2);
    if (b1.empty()) std::swap(b1, b2);
    if (a1.empty() || b1.empty()) return static_cast<int>(!a1.empty()) - !b1.empty();
    const std::size_t n = std::min(a1.size(), b1.size());
    if (int c = a1.substr(0, n).compare(b1.substr(0, n))) return c;
    a1.remove_prefix(n);
    b1.remove_prefix(n);
  }
}

// bdl-7: (type = 'history') or
// entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()
Decision bdl7(const InvariantInput& in) {
  auto type = bundleType(focus(in));
  if (!type || type->absent) return kUndecided;
  if (type->value == "history") return true;
  auto entries = objects(focus(in), "entry");
  if (!entries) return kUndecided;
  // The keys point into the document; a Bundle of up to kInline entries needs no heap.
  constexpr std::size_t kInline = 32;
  JoinedKey inlineKeys[kInline];
  std::vector<JoinedKey> heapKeys;
  if (entries->size() > kInline) heapKeys.resize(entries->size());
  JoinedKey* keys = heapKeys.empty() ? inlineKeys : heapKeys.data();
  std::size_t n = 0;
  for (const Value& e : *entries) {
    auto fullUrl = text(e, "fullUrl");
    if (!fullUrl) return kUndecided;
    if (fullUrl->absent) continue;
    JoinedKey key{fullUrl->value, {}};
    auto resource = objects(e, "resource");
    if (!resource || resource->size() > 1) return kUndecided;
    if (!resource->empty()) {
      auto meta = objects(resource->front(), "meta");
      if (!meta || meta->size() > 1) return kUndecided;
      if (!meta->empty()) {
        auto version = text(meta->front(), "versionId");
        if (!version) return kUndecided;
        key.second = version->value;
      }
    }
    keys[n++] = key;
  }
  auto less = [](const JoinedKey& a, const JoinedKey& b) { return compareJoined(a, b) < 0; };
  auto same = [](const JoinedKey& a, const JoinedKey& b) { return compareJoined(a, b) == 0; };
  std::sort(keys, keys + n, less);
  return std::adjacent_find(keys, keys + n, same) == keys + n;
}

// bdl-9 .. bdl-12: "type = 'document' implies ...": true when the type is another code.
template <const char* kCode>
Decision typeIsNot(const InvariantInput& in) {
  auto type = bundleType(focus(in));
  if (!type || type->absent || type->value == kCode) return kUndecided;
  return true;
}
constexpr char kDocument[] = "document";
constexpr char kMessage[] = "message";

// bdl-5: resource.exists() or request.exists() or response.exists()
Decision bdl5(const InvariantInput& in) {
  COUNT_OR_UNDECIDED(resource, focus(in), "resource");
  COUNT_OR_UNDECIDED(request, focus(in), "request");
  COUNT_OR_UNDECIDED(response, focus(in), "response");
  return resource + request + response > 0;
}

// bdl-8: fullUrl.exists() implies fullUrl.contains('/_history/').not()
Decision bdl8(const InvariantInput& in) {
  auto fullUrl = text(focus(in), "fullUrl");
  if (!fullUrl) return kUndecided;
  return fullUrl->absent || fullUrl->value.find("/_history/") == std::string_view::npos;
}

// ---- Appointment, QuestionnaireResponse, Patient, Organization

// app-1: type.exists() or actor.exists()
Decision app1(const InvariantInput& in) {
  COUNT_OR_UNDECIDED(type, focus(in), "type");
  COUNT_OR_UNDECIDED(actor, focus(in), "actor");
  return type + actor > 0;
}

// app-2: start.exists() = end.exists()
Decision app2(const InvariantInput& in) {
  COUNT_OR_UNDECIDED(start, focus(in), "start");
  COUNT_OR_UNDECIDED(end, focus(in), "end");
  return (start > 0) == (end > 0);
}

// app-3: (start.exists() and end.exists()) or (status in ('proposed' | 'cancelled' | 'waitlist'))
Decision app3(const InvariantInput& in) {
  COUNT_OR_UNDECIDED(start, focus(in), "start");
  COUNT_OR_UNDECIDED(end, focus(in), "end");
  if (start > 0 && end > 0) return true;
  auto status = text(focus(in), "status");
  if (!status || status->absent) return kUndecided;
  return oneOf(status->value, {"proposed", "cancelled", "waitlist"});
}

// app-4: Appointment.cancelationReason.exists() implies (Appointment.status='noshow' or
// Appointment.status='cancelled')
Decision app4(const InvariantInput& in) {
  COUNT_OR_UNDECIDED(reason, focus(in), "cancelationReason");
  if (reason == 0) return true;
  auto status = text(focus(in), "status");
  if (!status || status->absent) return kUndecided;
  return oneOf(status->value, {"noshow", "cancelled"});
}

// qrs-1: (answer.exists() and item.exists()).not()
Decision qrs1(const InvariantInput& in) {
  COUNT_OR_UNDECIDED(answer, focus(in), "answer");
  COUNT_OR_UNDECIDED(item, focus(in), "item");
  return !(answer > 0 && item > 0);
}

// pat-1: name.exists() or telecom.exists() or address.exists() or organization.exists()
Decision pat1(const InvariantInput& in) {
  std::size_t total = 0;
  for (const char* name : {"name", "telecom", "address", "organization"}) {
    COUNT_OR_UNDECIDED(n, focus(in), name);
    total += n;
  }
  return total > 0;
}

// org-1: (identifier.count() + name.count()) > 0
Decision org1(const InvariantInput& in) {
  COUNT_OR_UNDECIDED(identifier, focus(in), "identifier");
  COUNT_OR_UNDECIDED(name, focus(in), "name");
  return identifier + name > 0;
}

// org-2, org-3: where(use = 'home').empty(), on each address / telecom.
Decision notHomeUse(const InvariantInput& in) {
  auto use = text(focus(in), "use");
  if (!use) return kUndecided;
  return use->absent || use->value != "home";
}

// Every native wants an object focus; the wrapper checks it once.
template <Decision (*F)(const InvariantInput&)>
Decision onObject(const InvariantInput& in) {
  if (!isObject(in)) return kUndecided;
  return F(in);
}

struct Entry {
  std::string_view expression;
  NativeInvariant check;
};

const Entry kNatives[] = {
    {"extension.exists() != value.exists()", &onObject<ext1>},
    {"reference.startsWith('#').not() or (reference.substring(1).trace('url') in "
     "%rootResource.contained.id.trace('ids'))",
     &onObject<ref1>},
    {"value.empty() or system.exists()", &onObject<cpt2>},
    {"code.empty() or system.exists()", &onObject<qty3>},
    {"data.empty() or contentType.exists()", &onObject<att1>},
    {"start.hasValue().not() or end.hasValue().not() or (start <= end)", &onObject<per1>},
    {"contained.contained.empty()", &onObject<noContained>},
    {"contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()",
     &onObject<noContained>},
    {"contained.meta.security.empty()", &onObject<noContained>},
    {"text.`div`.exists()", &onObject<dom6>},
    {"total.empty() or (type = 'searchset') or (type = 'history')", &onObject<bdl1>},
    {"entry.search.empty() or (type = 'searchset')", &onObject<bdl2>},
    {"entry.all(request.exists() = (%resource.type = 'batch' or %resource.type = 'transaction' "
     "or %resource.type = 'history'))",
     &onObject<bdl3>},
    {"entry.all(response.exists() = (%resource.type = 'batch-response' or %resource.type = "
     "'transaction-response' or %resource.type = 'history'))",
     &onObject<bdl4>},
    {"(type = 'history') or "
     "entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()",
     &onObject<bdl7>},
    {"type = 'document' implies (identifier.system.exists() and identifier.value.exists())",
     &onObject<typeIsNot<kDocument>>},
    {"type = 'document' implies (timestamp.hasValue())", &onObject<typeIsNot<kDocument>>},
    {"type = 'document' implies entry.first().resource.is(Composition)",
     &onObject<typeIsNot<kDocument>>},
    {"type = 'message' implies entry.first().resource.is(MessageHeader)",
     &onObject<typeIsNot<kMessage>>},
    {"resource.exists() or request.exists() or response.exists()", &onObject<bdl5>},
    {"fullUrl.exists() implies fullUrl.contains('/_history/').not()", &onObject<bdl8>},
    {"type.exists() or actor.exists()", &onObject<app1>},
    {"start.exists() = end.exists()", &onObject<app2>},
    {"(start.exists() and end.exists()) or (status in ('proposed' | 'cancelled' | 'waitlist'))",
     &onObject<app3>},
    {"Appointment.cancelationReason.exists() implies (Appointment.status='noshow' or "
     "Appointment.status='cancelled')",
     &onObject<app4>},
    {"(answer.exists() and item.exists()).not()", &onObject<qrs1>},
    {"name.exists() or telecom.exists() or address.exists() or organization.exists()",
     &onObject<pat1>},
    {"(identifier.count() + name.count()) > 0", &onObject<org1>},
    {"where(use = 'home').empty()", &onObject<notHomeUse>},
};

}  // namespace

NativeInvariant nativeInvariant(std::string_view expression) {
  for (const Entry& e : kNatives)
    if (e.expression == expression) return e.check;
  return nullptr;
}

bool isNativeOnly(std::string_view key, std::string_view expression) {
  return key == "dom-3" && expression.starts_with("contained.where(");
}

bool containedResourcesReferenced(const rapidjson::Value& resource) {
  const Value* contained = nullptr;
  if (resource.IsObject()) {
    auto it = resource.FindMember("contained");
    if (it != resource.MemberEnd()) contained = &it->value;
  }
  if (!contained || !contained->IsArray()) return true;
  std::set<std::string, std::less<>> refs;
  std::vector<const Value*> stack{&resource};
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
    std::string id;
    if (c.IsObject()) {
      auto it = c.FindMember("id");
      if (it != c.MemberEnd() && it->value.IsString())
        id.assign(it->value.GetString(), it->value.GetStringLength());
    }
    if (!refs.contains("#" + id)) return false;
  }
  return true;
}

}  // namespace switchboard::fhir

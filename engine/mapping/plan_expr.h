// Compiled plans for the FHIRPath that mapping files use, evaluated straight over untyped JSON
// (a Flow response, channel variables) with no fhirpath::Node: values are views into the input
// document, the mapping file or a per-run arena. A plan covers a subset of the language (paths,
// variables, string/integer/boolean literals, = != < > <= >= in contains | & + - and or xor
// implies, and the functions listed in planFunctionNames()); it gives exactly what the FHIRPath
// engine gives, or declines at run time (typed resources, choice elements, primitive extensions,
// decimals, every case where the engine would report an error), and the caller then asks the
// engine. Thread-safety: compiled plans are immutable; evaluation state lives in PlanScope.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <type_traits>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "engine/fhirpath/fhirpath.h"

namespace switchboard::mapping {

// One item of a collection.
struct Val {
  enum class Kind : std::uint8_t {
    kString,
    kBoolean,
    kInteger,
    kJson,   // an object, array or non-integer number of untyped JSON (`json`)
    kOther,  // anything else (a date from toDate(), a typed or decimal variable): counted, and
             // written out or turned to text through `node` when it has one
  };
  Kind kind = Kind::kString;
  bool element = false;  // navigated from JSON (an element), not computed (a System value)
  // The payload of the kind, one word (a Val is 32 bytes, and copied often): `node` for kOther
  // (null unless set), `boolean`, `integer` or `json` for the others; only the kind's is read.
  union {
    const fhirpath::Node* node = nullptr;  // kOther from a variable: the engine's item
    bool boolean;
    std::int64_t integer;
    const rapidjson::Value* json;
  };
  std::string_view string;

  static Val str(std::string_view s, bool element = false) {
    Val v;
    v.string = s;
    v.element = element;
    return v;
  }
  static Val boolVal(bool b) {
    Val v;
    v.kind = Kind::kBoolean;
    v.boolean = b;
    return v;
  }
  static Val intVal(std::int64_t i) {
    Val v;
    v.kind = Kind::kInteger;
    v.integer = i;
    return v;
  }
  // The item of a JSON value reached by navigation (null: none).
  static std::optional<Val> fromJson(const rapidjson::Value& json);
  // The same written field by field into `out` (a default Val), for a JSON value that is not
  // null: a Val built elsewhere from narrow stores and then copied whole is read back before
  // those stores reach the cache (a store-forwarding stall on each copy).
  static void setJson(Val& out, const rapidjson::Value& json);
};

inline void Val::setJson(Val& v, const rapidjson::Value& json) {
  v.element = true;
  if (json.IsString()) {
    v.string = std::string_view(json.GetString(), json.GetStringLength());
  } else if (json.IsBool()) {
    v.kind = Kind::kBoolean;
    v.boolean = json.GetBool();
  } else if (json.IsInt64()) {
    v.kind = Kind::kInteger;
    v.integer = json.GetInt64();
  } else {
    v.kind = Kind::kJson;
    v.json = &json;
  }
}

// A collection being built: the first items in the object itself, more in `memory` (an arena:
// nothing is given back before the run ends, so a view of data() stays valid for the run unless
// the items are inline()).
class Vals {
 public:
  explicit Vals(std::pmr::memory_resource* memory) : memory_(memory) {}
  // The first `capacity` items in `buffer` (memory of `memory`'s arena, which the items may then
  // stay in), more in `memory`.
  Vals(std::pmr::memory_resource* memory, Val* buffer, std::size_t capacity)
      : memory_(memory), data_(buffer), capacity_(capacity) {}
  Vals(const Vals&) = delete;
  Vals& operator=(const Vals&) = delete;

  const Val* begin() const { return data_; }
  const Val* end() const { return data_ + size_; }
  const Val* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const Val& operator[](std::size_t i) const { return data_[i]; }
  const Val& front() const { return data_[0]; }
  const Val& back() const { return data_[size_ - 1]; }
  bool inlined() const { return data_ == inlineItems(); }

  void clear() { size_ = 0; }
  void push_back(const Val& v) {
    if (size_ == capacity_) grow(size_ + 1);
    std::construct_at(data_ + size_++, v);
  }
  // Appends a default Val and returns it, to be set in place.
  Val& emplace_back() {
    if (size_ == capacity_) grow(size_ + 1);
    return *std::construct_at(data_ + size_++);
  }
  // Appends [first, last) (`at` must be end()).
  void insert(const Val* at, const Val* first, const Val* last) {
    (void)at;
    const auto n = static_cast<std::size_t>(last - first);
    if (size_ + n > capacity_) grow(size_ + n);
    if (n <= 2) {  // a variable's or a literal's one item, mostly: no call to memmove
      if (n > 0) std::construct_at(data_ + size_, first[0]);
      if (n > 1) std::construct_at(data_ + size_ + 1, first[1]);
    } else {
      std::uninitialized_copy(first, last, data_ + size_);
    }
    size_ += n;
  }
  template <typename It>
  void insert(const Val* at, It first, It last) {
    for (; first != last; ++first) push_back(*first);
    (void)at;
  }

 private:
  static constexpr std::size_t kInline = 2;
  void grow(std::size_t need) {
    const std::size_t capacity = std::max(need, capacity_ * 2);
    auto* p = static_cast<Val*>(memory_->allocate(sizeof(Val) * capacity, alignof(Val)));
    std::uninitialized_copy(data_, data_ + size_, p);
    data_ = p;
    capacity_ = capacity;
  }
  Val* inlineItems() { return reinterpret_cast<Val*>(inline_); }
  const Val* inlineItems() const { return reinterpret_cast<const Val*>(inline_); }
  // Val is trivially copyable and destructible: items are constructed in place, never destroyed.
  static_assert(std::is_trivially_copyable_v<Val> && std::is_trivially_destructible_v<Val>);
  std::pmr::memory_resource* memory_;
  alignas(Val) unsigned char inline_[sizeof(Val) * kInline];
  Val* data_ = inlineItems();
  std::size_t size_ = 0, capacity_ = kInline;
};

// A view of a variable's items; `defined` false for an unknown variable.
struct Slot {
  const Val* items = nullptr;
  std::size_t size = 0;
  bool defined = false;
};

// Variable names of a mapping file, numbered at compile time.
class SlotTable {
 public:
  int id(std::string_view name);
  const std::map<std::string, int, std::less<>>& names() const { return ids_; }
  std::size_t size() const { return ids_.size(); }

 private:
  std::map<std::string, int, std::less<>> ids_;
};

struct PlanExpr;
struct PlanNode;

// Run-time state: the arena, the variables, the focus.
struct PlanScope {
  std::pmr::memory_resource* memory = nullptr;
  std::vector<Slot>* slots = nullptr;
  const Vals* focus = nullptr;  // [input root]
  // Copies `s` into the arena.
  std::string_view keep(std::string_view s) const;
  // Objects already found plain (no "_" key, no "resourceType", no capital letter in a key, so
  // no extension or choice element to look for): a member is then one lookup.
  mutable const rapidjson::Value* plain[8] = {};
  mutable std::size_t plainCount = 0;
  mutable const rapidjson::Value* mixed[8] = {};  // objects found not plain
  mutable std::size_t mixedCount = 0;
  mutable const rapidjson::Value* lastPlain = nullptr;  // the object last found plain
  // The input object's members found so far (when it is plain), by the number Plan::compile's
  // `names` gave their name: null until looked for, then the first member of that name or a
  // marker for none; each answer is then looked for once per run however many plans read it.
  const rapidjson::Value* inputObject = nullptr;
  const rapidjson::Value** inputMembers = nullptr;
  bool isPlain(const rapidjson::Value& object) const {
    return &object == lastPlain || findPlain(object);  // mostly the input's object again
  }
  bool findPlain(const rapidjson::Value& object) const;
};

class Plan {
 public:
  // The plan of a compiled expression, or null when it uses what plans do not cover. Unions of
  // literals are computed here, once.
  // `memory` (null: the heap) holds the plan and the nodes it evaluates, and must outlive them:
  // the plans of one mapping side by side in one buffer read fewer cache lines in a run.
  // `names` (null: none) numbers the member names the plan reads, for PlanScope::inputMembers.
  // `capitalisedMembers`: a capitalised name at the start of a path (`PID`) is a member, as the
  // engine reads it on untyped JSON; for inputs that never hold a typed resource (the HL7 v2
  // model). Otherwise such a name may be a type filter and the expression has no plan.
  static std::shared_ptr<Plan> compile(const fhirpath::Expression& expr, SlotTable& slots,
                                       std::pmr::memory_resource* memory = nullptr,
                                       SlotTable* names = nullptr, bool capitalisedMembers = false);
  ~Plan();

  // Evaluates into `out`; false when the engine must decide.
  bool evaluate(const PlanScope& scope, Vals& out) const;
  // As FHIR invariants convert (empty -> no value, one boolean -> it, one other item -> true);
  // false when the engine must decide.
  bool evaluateBoolean(const PlanScope& scope, std::optional<bool>& out) const;

  // Whether the plan reads the variable numbered `slot`.
  bool readsSlot(int slot) const;
  // The variable's number when the plan is that one variable (its items are the result: a caller
  // may read them where they are), else -1.
  int variable() const;
  // The caller's number for this plan's result within a run (-1: none); set while compiling,
  // before the plan is shared.
  int memo = -1;

  Plan(std::unique_ptr<PlanExpr> root, std::pmr::memory_resource* memory);
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;

 private:
  std::unique_ptr<PlanExpr> root_;  // the compiled tree (owns the texts literal items view)
  std::pmr::memory_resource* memory_;
  void* block_ = nullptr;      // in memory_: the tree laid out for evaluation (nodes_), its items
  std::size_t bytes_ = 0;      // and names
  PlanNode* nodes_ = nullptr;  // root first
  std::size_t nodeCount_ = 0;
  // What the whole plan is, for evaluate(): one variable, one member of the input or of a
  // variable, or the trim() of a member of the input; anything else walks the nodes.
  enum class Shape : std::uint8_t { kGeneral, kMember, kMemberTrim, kVariable, kVariableMember };
  Shape shape_ = Shape::kGeneral;
};

// As Plan::evaluateBoolean over an evaluated collection.
bool planBoolean(const Val* items, std::size_t size, std::optional<bool>& out);

// The FHIRPath string form of an item (as fhirpath::toFhirPathString), stored in the arena when
// computed. Empty optional for objects and arrays; false when the engine must decide.
bool planText(const PlanScope& scope, const Val& v, std::optional<std::string_view>& out);

// The item of a fhirpath::Node, when plans can represent it faithfully; kOther (pointing at
// `node`, which must outlive the run) otherwise.
Val planValue(const fhirpath::Node& node);

}  // namespace switchboard::mapping

// Compiled plans for the FHIRPath of reply templates: member paths, ofType(), where(), select(),
// exists(), first() and the string tests the shipped templates use, walked straight over the
// Bundle's JSON with the engine's type model (engine/fhirpath/type_model.h) and no
// fhirpath::Node per item. A plan gives exactly what fhirpath::evaluate() gives, or declines
// (evaluate() returns false) wherever the engine would report an error or the plan would need
// more of the language (numbers, dates, primitive extensions); the caller then asks the engine.
// Subexpressions that several expressions of a template share over the Bundle (e.g.
// `entry.resource.ofType(Appointment)`) are computed once per render (PlanScope), never across
// renders. Thread-safety: compiled plans are immutable; a PlanScope belongs to one render.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <memory_resource>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rapidjson/document.h>

#include "engine/fhirpath/fhirpath.h"
#include "engine/fhirpath/type_model.h"

namespace switchboard::channels::reply {

// One item of a collection while a plan runs.
struct PlanItem {
  enum class Kind : std::uint8_t { kElement, kString, kBoolean };
  Kind kind = Kind::kElement;
  bool boolean = false;                    // kBoolean
  const rapidjson::Value* json = nullptr;  // kElement: the value, never null
  // kElement: its FHIR type, as the engine would give it (a view into the type model, the
  // document or the scope); kString: the text (a view into the document, the plan, an
  // environment variable or the scope).
  std::string_view text;
};
// In the render's arena (PlanScope::memory()).
using PlanItems = std::pmr::vector<PlanItem>;

struct PlanStep;

// %variables given as text, as the reply destination sets them: an empty text is an empty
// collection, any other one String; a later entry of a name hides an earlier one.
using PlanVariables = std::vector<std::pair<std::string_view, std::string_view>>;

// State of one render: the focus, the variables, the shared subexpressions computed so far and
// the texts computed by toString().
class PlanScope {
 public:
  // `focus` and `env` (or `variables`) must outlive the scope; `memoSlots` is PlanMemo::size()
  // of the template.
  PlanScope(const fhirpath::Node& focus, const fhirpath::Environment& env, std::size_t memoSlots);
  PlanScope(const fhirpath::Node& focus, const PlanVariables& variables, std::size_t memoSlots);
  PlanScope(const PlanScope&) = delete;
  PlanScope& operator=(const PlanScope&) = delete;

  // False when the focus is nothing plans can start from (a System value): every plan declines.
  bool usable() const { return usable_; }
  const fhirpath::Node& focus() const { return *focus_; }
  // The items of %name, appended to `out`; false when the scope does not know it (the engine
  // decides: a built-in variable or an error).
  bool variable(std::string_view name, PlanItems& out) const;
  const PlanItems& root() const { return root_; }
  // The render's arena: collections are only given back when the scope ends.
  std::pmr::memory_resource* memory() { return &memory_; }
  // Keeps a computed text for the rest of the render.
  std::string_view keep(std::string_view text);
  // fhirpath::elementInfo(type, name), remembered for the render by the addresses of the two
  // names (the same address holds the same text for the whole render: the type model, the
  // document, a plan or this scope).
  const fhirpath::ElementInfo* elementInfo(std::string_view type, std::string_view name);

  // Shared subexpression `slot`: null until stored.
  const PlanItems* memo(int slot) const { return done_[slot] ? &memo_[slot] : nullptr; }
  void store(int slot, const PlanItem* items, std::size_t size);

 private:
  PlanScope(const fhirpath::Node& focus, const fhirpath::Environment* env,
            const PlanVariables* variables, std::size_t memoSlots);
  const fhirpath::Node* focus_;
  const fhirpath::Environment* env_ = nullptr;  // one of the two
  const PlanVariables* variables_ = nullptr;
  bool usable_ = true;
  alignas(std::max_align_t) unsigned char buffer_[8192];
  std::pmr::monotonic_buffer_resource memory_;
  PlanItems root_;
  std::pmr::vector<PlanItems> memo_;
  std::pmr::vector<unsigned char> done_;
  struct ModelEntry {
    const char* type = nullptr;
    std::size_t size = 0;
    const char* name = nullptr;
    const fhirpath::ElementInfo* info = nullptr;
  };
  ModelEntry model_[64];
};

// Numbers the subexpressions the plans of one template evaluate over the focus, so that those
// occurring more than once are computed once per render.
class PlanMemo {
 public:
  // After every plan of the template is compiled: keeps the slots of shared subexpressions and
  // drops the others. Returns the number of slots (for PlanScope).
  std::size_t finish();
  std::size_t size() const { return size_; }

 private:
  friend class ReplyPlan;
  std::map<std::string, std::vector<PlanStep*>, std::less<>> candidates_;
  std::size_t size_ = 0;
};

class ReplyPlan {
 public:
  // The plan of a compiled expression, or null when it uses what plans do not cover.
  static std::unique_ptr<ReplyPlan> compile(const fhirpath::Expression& expr, PlanMemo& memo);
  ~ReplyPlan();
  ReplyPlan(const ReplyPlan&) = delete;
  ReplyPlan& operator=(const ReplyPlan&) = delete;

  // Evaluates over the scope's focus into `out`; false when the engine must decide.
  bool evaluate(PlanScope& scope, PlanItems& out) const;

  explicit ReplyPlan(std::unique_ptr<PlanStep> root);

 private:
  std::unique_ptr<PlanStep> root_;
};

// What collectionText() gives for the items; false when the engine must decide.
bool planText(PlanScope& scope, const PlanItems& items, std::string& out);
// What collectionTruth() gives for the items; false when the engine must decide.
bool planTruth(PlanScope& scope, const PlanItems& items, bool& out);

}  // namespace switchboard::channels::reply

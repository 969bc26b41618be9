// Internals shared by the FHIRPath sources: syntax tree, decimal arithmetic, temporal and quantity
// helpers, the FHIR R4 type model. Not part of the module's interface. Thread-safety: the type
// model is built once (thread-safe static init) and read-only afterwards; the rest is values.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/fhirpath/fhirpath.h"
#include "engine/fhirpath/syntax.h"
#include "engine/fhirpath/type_model.h"

namespace switchboard::fhirpath {

// ---- decimal arithmetic (exact; division keeps Decimal::kDivisionScale digits) ----
Decimal decAdd(const Decimal& a, const Decimal& b);
Decimal decSub(const Decimal& a, const Decimal& b);
std::optional<Decimal> decMul(const Decimal& a, const Decimal& b);
std::optional<Decimal> decDiv(const Decimal& a, const Decimal& b);  // empty when b == 0
Decimal decNeg(const Decimal& a);
Decimal decRound(const Decimal& a, int digits);  // half away from zero
Decimal decTruncate(const Decimal& a);
Decimal decFloor(const Decimal& a);
Decimal decCeiling(const Decimal& a);
bool decIsZero(const Decimal& a);
bool decIsNegative(const Decimal& a);
std::optional<std::int64_t> decToInt64(const Decimal& a);  // only when integral and in range
Decimal decWithScale(const Decimal& a, int scale);         // rescale (rounds when reducing)
Decimal decNormalize(const Decimal& a);                    // drop trailing zeros

// ---- temporal helpers ----
// Compares two temporals of the same kind. Empty optional when precision makes it undecidable.
std::optional<int> temporalCompare(const Temporal& a, const Temporal& b);
// Adds `amount` of a calendar unit (year, month, week, day, hour, minute, second, millisecond).
std::optional<Temporal> temporalAdd(const Temporal& t, const Decimal& amount,
                                    const std::string& unit);
int precisionDigits(const Temporal& t);

// ---- quantities ----
// Canonical calendar word ("year", "month", ... "millisecond") of a unit, if it is one.
std::optional<std::string> calendarUnit(std::string_view unit);
// Equality/order of quantities with unit conversion; empty optional when not comparable.
std::optional<int> quantityCompare(const Quantity& a, const Quantity& b, bool equivalence);
// `q` expressed in `target` units (UCUM table and calendar durations up to weeks).
std::optional<Quantity> quantityConvert(const Quantity& q, std::string_view target);
// The base unit of a UCUM unit's dimension ("cm" -> "m"), if the unit is known.
std::optional<std::string> baseUnitOf(std::string_view unit);

// ---- documents that remember the exact text of their decimal numbers ----
// JSON numbers are stored as doubles; a document made here also keeps each double's source text
// ("1.50") so FHIRPath sees the exact decimal. Thread-safety: read-only after creation.
// Wraps `doc`, recording the texts of its double values: with `jsonTexts`, the texts of the
// doubles in document order (JSON reader); without, strings marked with a leading '\x01' (which
// XML cannot contain) are turned into doubles (XML converter).
DocumentPtr makeDocument(std::unique_ptr<rapidjson::Document> doc,
                         const std::vector<std::string>* jsonTexts);
// The source text of a double in a document made by makeDocument(); null when unknown.
const std::string* exactNumberText(const DocumentPtr& doc, const rapidjson::Value* value);
// The decimal value of a JSON number, exact when the document kept its text.
Decimal jsonNumberDecimal(const DocumentPtr& doc, const rapidjson::Value& value);

// ---- FHIR R4 type model: engine/fhirpath/type_model.h ----

// Parses (no semantic checks); used by compile().
Result<std::unique_ptr<detail::ExprNode>> parseExpression(std::string_view text);

// Type name of a node for is/as/ofType, qualified: "FHIR.string", "System.Integer".
std::string qualifiedTypeOf(const Node& node);
// Whether the node is of the (possibly unqualified) type name, honouring inheritance.
bool nodeIsType(const Node& node, std::string_view typeName);

// Children of an element node (all JSON properties, arrays flattened, "_x" merged).
Collection childrenOf(const Node& node);
// The child elements called `name` (choice types resolved: value -> valueQuantity).
Collection childNamed(const Node& node, std::string_view name);

}  // namespace switchboard::fhirpath

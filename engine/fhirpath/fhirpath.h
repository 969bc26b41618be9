// FHIRPath (N1, as FHIR R4 uses it): compile an expression once, evaluate it over FHIR JSON (or
// FHIR XML converted to the same JSON model). Thread-safety: a compiled Expression and the nodes
// of a parsed resource are immutable and may be shared and evaluated concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "engine/core/error.h"

namespace switchboard::fhirpath {

// Exact decimal number: mantissa * 10^-scale (scale 0..kMaxScale). No binary-float surprises:
// 0.1 + 0.2 = 0.3 holds. Division keeps kDivisionScale fractional digits.
class Decimal {
 public:
  static constexpr int kMaxScale = 18;
  static constexpr int kDivisionScale = 8;

  Decimal() = default;
  static Decimal fromInt(std::int64_t v);
  // Parses "-12.340", "1e3" is rejected; empty optional on malformed text.
  static std::optional<Decimal> parse(std::string_view text);
  static Decimal fromDouble(double v);  // rounded to 15 significant digits

  std::string toString() const;  // keeps the scale: 1.50 stays "1.50"
  double toDouble() const;
  long double toLongDouble() const;
  int scale() const { return scale_; }
  bool isInteger() const;
  // Value compare, scale-insensitive: 1.0 == 1.00. Returns -1, 0, 1.
  int compare(const Decimal& other) const;

  // Internal representation (128-bit mantissa split for a portable header).
  std::int64_t mantissaHigh() const { return hi_; }
  std::uint64_t mantissaLow() const { return lo_; }
  static Decimal fromParts(std::int64_t hi, std::uint64_t lo, int scale);

 private:
  std::int64_t hi_ = 0;
  std::uint64_t lo_ = 0;
  int scale_ = 0;
};

// Date, DateTime and Time with partial precision (FHIRPath "partial dates").
enum class TemporalKind { kDate, kDateTime, kTime };
enum class Precision { kYear, kMonth, kDay, kHour, kMinute, kSecond, kMillisecond };

struct Temporal {
  TemporalKind kind = TemporalKind::kDate;
  Precision precision = Precision::kYear;
  int year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0, millisecond = 0;
  std::optional<int> tzOffsetMinutes;  // only DateTime; absent = local/unknown

  // Parses FHIR/FHIRPath text without the '@' (and without the 'T' prefix for times):
  // "2014-01", "2014-01-25T14:30:14.559+01:00", "14:30". Empty optional when malformed.
  static std::optional<Temporal> parse(std::string_view text, TemporalKind kind);
  // Canonical text without '@', e.g. "2014-01-25T14:30:14.559+01:00", "14:30:00".
  std::string toString() const;
};

struct Quantity {
  Decimal value;
  std::string unit;  // UCUM code ("mg", "wk") or calendar keyword ("week", "weeks")
};

// Keeps parsed resources alive while nodes point into them.
using DocumentPtr = std::shared_ptr<const rapidjson::Document>;

// One item of a collection: either an element of a FHIR resource (a pointer into a JSON tree
// plus its FHIR type) or a System value computed by an expression.
class Node {
 public:
  enum class Kind { kElement, kBoolean, kInteger, kDecimal, kString, kTemporal, kQuantity };

  // A default-constructed Node is "no input": evaluating against it starts from an empty focus.
  Node() = default;
  // The root of a resource (its resourceType names the type).
  static Node resource(DocumentPtr doc);
  static Node resource(DocumentPtr doc, const rapidjson::Value* value);
  // An element inside a document. `primitiveExtension` is the "_name" sibling object (id and
  // extension of a primitive) or null. `fhirType` is the FHIR type ("date", "HumanName",
  // "Patient") or empty when unknown.
  static Node element(DocumentPtr doc, const rapidjson::Value* value,
                      const rapidjson::Value* primitiveExtension, std::string fhirType,
                      std::string name);
  static Node boolean(bool v);
  static Node integer(std::int64_t v);
  static Node decimal(Decimal v);
  static Node string(std::string v);
  static Node temporal(Temporal v);
  static Node quantity(Quantity v);

  Kind kind() const { return kind_; }
  bool isElement() const { return kind_ == Kind::kElement; }
  // FHIR type for elements ("string", "Quantity", "Patient"), System type name for values
  // ("Boolean", "Integer", "Decimal", "String", "Date", "DateTime", "Time", "Quantity").
  const std::string& typeName() const { return type_; }
  bool isSystemValue() const { return kind_ != Kind::kElement; }
  const std::string& name() const { return name_; }  // element name, empty for values

  // Element access (null for values).
  const rapidjson::Value* json() const { return json_; }
  const rapidjson::Value* primitiveExtension() const { return ext_; }
  const DocumentPtr& document() const { return doc_; }

  // Value access (valid for the matching kind).
  bool booleanValue() const { return bool_; }
  std::int64_t integerValue() const { return int_; }
  const Decimal& decimalValue() const { return dec_; }
  const std::string& stringValue() const { return str_; }
  const Temporal& temporalValue() const { return temporal_; }
  const Quantity& quantityValue() const { return quantity_; }

  // The System value of a FHIR primitive element (boolean, string, date, decimal, Quantity...)
  // or of a value node itself; empty optional when the element has no primitive value.
  std::optional<Node> toSystemValue() const;

 private:
  Kind kind_ = Kind::kElement;
  std::string type_;
  std::string name_;
  DocumentPtr doc_;
  const rapidjson::Value* json_ = nullptr;
  const rapidjson::Value* ext_ = nullptr;
  bool bool_ = false;
  std::int64_t int_ = 0;
  Decimal dec_;
  std::string str_;
  Temporal temporal_;
  Quantity quantity_;
};

using Collection = std::vector<Node>;

// Evaluation context. %ucum, %sct, %loinc, %resource, %context, %rootResource are built in;
// everything in `variables` is visible as %name (the mapping engine passes %sender, %channel,
// %facility, %receivedAt, %timezone ...).
struct Environment {
  std::optional<Node> resource;      // %resource; defaults to the focus
  std::optional<Node> context;       // %context; defaults to the focus
  std::optional<Node> rootResource;  // %rootResource; defaults to %resource
  std::map<std::string, Collection, std::less<>> variables;

  // resolve(): turns a reference string into the resource it points at (empty when unknown).
  // Without a hook, resolve() finds contained resources ("#id") and Bundle entries by fullUrl.
  std::function<Result<Collection>(const std::string& reference, const Node& from)> resolve;
  // memberOf(valueSetUrl): whether a code/Coding/CodeableConcept is in the value set.
  // Without a hook memberOf() yields empty.
  std::function<Result<bool>(const Node& coded, const std::string& valueSetUrl)> memberOf;
  // trace(name): receives what trace() logs; default is to drop it.
  std::function<void(const std::string& name, const Collection& items)> trace;
  // Fixed clock for now(), today(), timeOfDay(); defaults to the system clock.
  std::optional<std::chrono::system_clock::time_point> now;
  // The local UTC offset now(), today() and timeOfDay() use (e.g. -300 for a facility at
  // UTC-05:00, derived by the caller from %timezone); 0 = UTC.
  int utcOffsetMinutes = 0;

  void setVariable(const std::string& name, std::string value);
  void setVariable(const std::string& name, Collection value);
  // Keeps a copy of `value` (any JSON: string, number, boolean, object, array of those).
  void setVariable(const std::string& name, const rapidjson::Value& value);
};

namespace detail {
struct ExprNode;
}

struct CompileOptions {
  // Reject order-dependent operations (first, last, tail, skip, take, [i]) applied to the
  // unordered results of children() and descendants() (the suite's checkOrderedFunctions).
  bool checkOrderedFunctions = false;
};

// A compiled expression: immutable, cheap to copy, safe to evaluate from many threads.
class Expression {
 public:
  Expression() = default;
  const std::string& text() const { return text_; }
  const detail::ExprNode* root() const { return root_.get(); }

 private:
  friend Result<Expression> compile(std::string_view text, const CompileOptions& options);
  std::string text_;
  std::shared_ptr<const detail::ExprNode> root_;
};

// Parses an expression. Syntax errors are ErrorCode::kInvalid with "line:column" (1-based) in
// Error::location and the message; unknown functions and wrong argument counts are rejected here.
Result<Expression> compile(std::string_view text);
Result<Expression> compile(std::string_view text, const CompileOptions& options);

// Evaluates against `focus`. Execution errors (a singleton required but a collection given,
// wrong operand types) are ErrorCode::kInvalid.
Result<Collection> evaluate(const Expression& expr, const Node& focus, const Environment& env);
// Convenience: compile and evaluate in one step.
Result<Collection> evaluate(std::string_view expr, const Node& focus, const Environment& env);
// Evaluates and converts the result to a boolean as FHIR invariants do: empty -> empty optional,
// a single boolean -> it, a single other item -> true; more than one item is an error.
Result<std::optional<bool>> evaluateBoolean(const Expression& expr, const Node& focus,
                                            const Environment& env);

// Parses a FHIR resource from JSON or XML (detected by the first non-blank character).
Result<Node> parseResource(std::string_view text);
Result<Node> parseJsonResource(std::string_view text);
// Converts FHIR XML to the FHIR JSON model (value attributes, repeating elements as arrays,
// xhtml div as a string, resourceType from the element name) and returns its root node.
Result<Node> parseXmlResource(std::string_view text);
Result<DocumentPtr> xmlToJson(std::string_view text);

// FHIR JSON of a collection item: primitives as JSON scalars, dates and times as their strings,
// Quantity as {value, unit, system, code}, elements as a copy of their JSON (null for a
// primitive element that has only an id or extensions).
void toJson(const Node& node, rapidjson::Value& out, rapidjson::Document::AllocatorType& alloc);
void toJson(const Collection& items, rapidjson::Value& out,
            rapidjson::Document::AllocatorType& alloc);  // a JSON array
// Compact JSON array text; decimals keep their digits (1.50 stays 1.50), unlike toJson(), whose
// RapidJSON numbers are doubles.
std::string toJsonString(const Collection& items);
// The FHIR type the engine gives a JSON value outside its type model (untyped JSON): "boolean",
// "integer", "decimal", "string", an object's resourceType, else empty.
std::string jsonTypeName(const rapidjson::Value& v);
// The error for JSON text RapidJSON could not parse (the offset and RapidJSON's English message),
// worded the same wherever the engine reads input, so every reader reports it identically.
Error jsonParseError(const rapidjson::ParseResult& result);

// FHIRPath string form of a single item (as toString() gives it); empty optional for elements
// that are not primitives.
std::optional<std::string> toFhirPathString(const Node& node);

}  // namespace switchboard::fhirpath

// Lexical rules of the FHIR R4 primitive types (the regexes of the R4 StructureDefinitions,
// written out by hand, plus calendar checks the regexes cannot express: no 30 February).
// Thread-safety: pure functions.
#pragma once

#include <cstdint>

#include <optional>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

namespace switchboard::fhir {

// The primitive types, so that a caller can classify a type name once (primitiveKind()) and
// check many values by kind.
enum class PrimitiveKind : std::uint8_t {
  kOther,
  kBoolean,
  kInteger,
  kPositiveInt,
  kUnsignedInt,
  kDecimal,
  kString,
  kMarkdown,
  kCode,
  kId,
  kUri,
  kUrl,
  kCanonical,
  kOid,
  kUuid,
  kBase64Binary,
  kInstant,
  kDate,
  kDateTime,
  kTime,
  kXhtml,
};

PrimitiveKind primitiveKind(std::string_view type);  // kOther for any other name

// Checks a JSON value against a primitive type ("instant", "code", "positiveInt" ...).
// Returns an explanation fit for an OperationOutcome (never quoting the value) when it does not
// conform; empty when it does or when the type is not a primitive this function knows.
std::optional<std::string> checkPrimitive(std::string_view type, const rapidjson::Value& value);
// The same with the kind already known (`type` names it, for messages).
std::optional<std::string> checkPrimitive(PrimitiveKind kind, std::string_view type,
                                          const rapidjson::Value& value);

// A quick test for the commonest valid values: true only when checkPrimitive(kind, ...) would
// return nothing (a non-empty string of string, code, uri, url or canonical with no byte at or
// below a space and no leading space, or a JSON boolean for boolean); false means "ask
// checkPrimitive", not "invalid".
// (Inline: the walk asks it for nearly every primitive value.)
inline bool plainlyValid(PrimitiveKind kind, const rapidjson::Value& value);

// Whether any byte of `s` is a control character or a space (16 bytes at a time).
bool anyAtOrBelowSpace(std::string_view s);

// The same for the text of a string-valued primitive (no JSON type check).
std::optional<std::string> checkPrimitiveText(std::string_view type, std::string_view text);
std::optional<std::string> checkPrimitiveText(PrimitiveKind kind, std::string_view type,
                                              std::string_view text);

// Whether the JSON kind fits the type: boolean -> JSON true/false, integer types -> JSON integer,
// decimal -> JSON number, every other primitive -> JSON string.
bool jsonKindFits(std::string_view type, const rapidjson::Value& value);
bool jsonKindFits(PrimitiveKind kind, const rapidjson::Value& value);
// "a JSON string", "a JSON number" ... for messages.
std::string expectedJsonKind(std::string_view type);
std::string expectedJsonKind(PrimitiveKind kind);

inline bool plainlyValid(PrimitiveKind k, const rapidjson::Value& value) {
  if (k == PrimitiveKind::kBoolean) return value.IsBool();
  if (!value.IsString()) return false;
  const std::string_view s(value.GetString(), value.GetStringLength());
  if (s.empty()) return false;
  switch (k) {
    case PrimitiveKind::kString:
    case PrimitiveKind::kMarkdown: {
      // not only whitespace (the first byte is none) and within the size limit
      const char c = s.front();
      return c != ' ' && c != '\t' && c != '\r' && c != '\n' && s.size() <= 1024 * 1024;
    }
    case PrimitiveKind::kCode:
    case PrimitiveKind::kUri:
    case PrimitiveKind::kUrl:
    case PrimitiveKind::kCanonical:
      return !anyAtOrBelowSpace(s);  // no whitespace anywhere
    default:
      return false;
  }
}

}  // namespace switchboard::fhir

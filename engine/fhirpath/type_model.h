// The FHIR R4 type model the FHIRPath engine navigates by: element types, choice elements,
// inheritance. Public for code that walks FHIR JSON itself and must type it exactly as the
// engine does (the reply templates' compiled paths, channels/reply/reply_plan.h). Thread-safety:
// the model is built once (thread-safe static init) and read-only afterwards.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace switchboard::fhirpath {

struct ElementInfo {
  std::string type;     // FHIR type of the element or a backbone path ("Patient.contact")
  bool choice = false;  // value[x]
  bool repeats = false;
};
bool isPrimitiveType(std::string_view fhirType);
bool isResourceType(std::string_view name);
bool isKnownType(std::string_view name);  // a FHIR data type, resource or backbone type
// The element `name` of `parentType`; null when unknown. Points into the model, which lives as
// long as the process.
const ElementInfo* elementInfo(std::string_view parentType, std::string_view name);
// Whether every element of the type is modelled (so an unknown name is an error).
bool typeIsComplete(std::string_view type);
// The base type (Patient -> DomainResource -> Resource; code -> string; Age -> Quantity).
std::string baseType(std::string_view type);
// The FHIR type named by a choice-element suffix ("Quantity" -> Quantity, "DateTime" ->
// dateTime); empty when the suffix names no type.
std::optional<std::string> choiceSuffixType(std::string_view suffix);
// System type of a FHIR primitive type ("date" -> Date, "code" -> String); empty if none.
std::optional<std::string> systemTypeOf(std::string_view fhirType);

}  // namespace switchboard::fhirpath

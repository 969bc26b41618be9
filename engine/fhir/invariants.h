// Native implementations of the invariants that run on nearly every element or resource (ext-1 on
// every extension, ref-1 on every Reference, dom-2..dom-6 on every resource, the bdl-* rules of
// a Bundle, cpt-2, per-1, app-*, qrs-1 ...), chosen at load by the exact expression text of the
// R4 definitions, so a different expression under the same key still goes through FHIRPath.
// Each one decides only the shapes it models exactly (no "_name" primitive extensions, no JSON
// nulls, ...) and otherwise answers "undecided", leaving the case to the FHIRPath engine; the
// differential test in tests/fhir/invariants_test.cc checks that both agree.
// Thread-safety: pure functions.
#pragma once

#include <string_view>

#include "engine/fhir/definitions.h"

namespace switchboard::fhir {

// The native implementation of an invariant expression, or null when there is none.
NativeInvariant nativeInvariant(std::string_view expression);

// Whether the invariant is always decided natively: dom-3, whose expression applies
// as(canonical) to many items, which strict FHIRPath rejects.
bool isNativeOnly(std::string_view key, std::string_view expression);

// dom-3 itself: every contained resource is referenced as "#id" from somewhere in the resource,
// or something references the container as "#".
bool containedResourcesReferenced(const rapidjson::Value& resource);

}  // namespace switchboard::fhir

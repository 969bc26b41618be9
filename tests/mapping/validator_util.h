// The FHIR R4 validator over the source tree's fhir-profiles/, loaded once, for the mapping suites
// that check the Bundles they produce. Thread-safety: a function-local static, test thread only.
#pragma once

#include "engine/fhir/validator.h"
#include "test_util.h"

namespace switchboard::mapping::test {

inline const fhir::Validator& validator() {
  static const fhir::Validator v = [] {
    auto loaded = fhir::Validator::fromDirectory(sourceDir() + "/fhir-profiles");
    BOOST_REQUIRE_MESSAGE(loaded.has_value(), (loaded ? std::string() : loaded.error().message));
    return std::move(*loaded);
  }();
  return v;
}

}  // namespace switchboard::mapping::test

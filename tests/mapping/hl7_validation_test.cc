// The ADT -> FHIR mapping's Bundles checked by the FHIR R4 validator over fhir-profiles/: no
// error for the protocols.md example, the escaped and Unicode messages, the sparse one and the
// ADT samples of tests/data/hl7v2-samples/ that the mapping takes.
#include <boost/test/unit_test.hpp>

#include "engine/mapping/mapping.h"
#include "validator_util.h"

namespace switchboard::mapping {

BOOST_AUTO_TEST_SUITE(hl7_validation)

BOOST_AUTO_TEST_CASE(adt_bundles_validate) {
  auto mapping = Mapping::loadFile(test::sourceDir() + "/mappings/hl7v2-adt-a04-to-fhir.json");
  BOOST_REQUIRE_MESSAGE(mapping.has_value(), (mapping ? std::string() : mapping.error().message));
  fhirpath::Environment env;
  env.setVariable("timezone", "America/New_York");
  const std::vector<std::string> files = {
      "tests/data/mapping-hl7/adt-a04-protocols.hl7", "tests/data/mapping-hl7/adt-a08-escapes.hl7",
      "tests/data/mapping-hl7/adt-a01-unicode.hl7",   "tests/data/mapping-hl7/adt-a04-sparse.hl7",
      "tests/data/hl7v2-samples/001-adt-a01.hl7",     "tests/data/hl7v2-samples/004-adt-a01.hl7",
      "tests/data/hl7v2-samples/009-adt-a04.hl7",     "tests/data/hl7v2-samples/010-adt-a04.hl7",
      "tests/data/hl7v2-samples/013-adt-a08.hl7",     "tests/data/hl7v2-samples/014-adt-a08.hl7"};
  for (const auto& file : files) {
    BOOST_TEST_CONTEXT(file) {
      auto out = (*mapping)->run(test::readFile(test::sourceDir() + "/" + file), env);
      BOOST_REQUIRE_MESSAGE(out.has_value(), (out ? std::string() : out.error().message));
      auto issues = test::validator().validateText(out->payload);
      BOOST_TEST(!fhir::hasErrors(issues), fhir::toOperationOutcomeJson(issues));
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace switchboard::mapping

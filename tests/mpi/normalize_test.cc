// Normalisers, comparators and the FHIR/FEBRL record readers.
#define BOOST_TEST_MODULE mpi
#include <boost/test/unit_test.hpp>

#include "engine/mpi/comparators.h"
#include "engine/mpi/normalize.h"
#include "engine/mpi/person_record.h"

using namespace switchboard::mpi;

BOOST_AUTO_TEST_CASE(fold_strips_accents_case_and_punctuation) {
  BOOST_TEST(foldText("José  Ñúñez-GARCÍA") == "jose nunez garcia");
  BOOST_TEST(foldText("Łukasz Żółć") == "lukasz zolc");
  BOOST_TEST(foldText("Straße") == "strasse");
  BOOST_TEST(foldText("Æsa Œuvre") == "aesa oeuvre");
  BOOST_TEST(foldText("O'Brien") == "obrien");
  BOOST_TEST(foldText("  Mary-Ann.  ") == "mary ann");
  BOOST_TEST(foldText("Ārvīds Ševčenko") == "arvids sevcenko");
  BOOST_TEST(foldText("\xff\xfe") == "");  // invalid UTF-8 dropped
  BOOST_TEST(foldText("名字 Li") == "li");
}

BOOST_AUTO_TEST_CASE(birth_dates_keep_digits) {
  BOOST_TEST(normalizeBirthDate("1956-04-09") == 19560409u);
  BOOST_TEST(normalizeBirthDate("19560409") == 19560409u);
  BOOST_TEST(normalizeBirthDate("19561399") == 19561399u);  // invalid but still evidence
  BOOST_TEST(normalizeBirthDate("1956-04") == 19560400u);
  BOOST_TEST(normalizeBirthDate("") == 0u);
  BOOST_TEST(normalizeBirthDate("12") == 0u);
}

BOOST_AUTO_TEST_CASE(phones_to_e164) {
  BOOST_TEST(normalizePhone("(555) 123-4567", "1") == 15551234567ull);
  BOOST_TEST(normalizePhone("+1 555 123 4567", "1") == 15551234567ull);
  BOOST_TEST(normalizePhone("1-555-123-4567", "1") == 15551234567ull);
  BOOST_TEST(normalizePhone("+44 20 7946 0958", "1") == 442079460958ull);
  BOOST_TEST(normalizePhone("0044 20 7946 0958", "1") == 442079460958ull);
  BOOST_TEST(normalizePhone("020 7946 0958", "44") == 442079460958ull);
  BOOST_TEST(normalizePhone("+52 1 55 1234 5678 ext 12", "1") == 5215512345678ull);
  BOOST_TEST(normalizePhone("123", "1") == 0ull);
}

BOOST_AUTO_TEST_CASE(emails_postcodes_identifiers) {
  BOOST_TEST(normalizeEmail(" John.Smith+clinic@GMail.com ") == "johnsmith@gmail.com");
  BOOST_TEST(normalizeEmail("j.smith@example.org") == "j.smith@example.org");
  BOOST_TEST(normalizeEmail("J.Smith@googlemail.com", false) == "j.smith@googlemail.com");
  BOOST_TEST(normalizeEmail("not-an-email") == "");
  BOOST_TEST(normalizePostcode("sw1a 1aa") == "SW1A1AA");
  BOOST_TEST(normalizeIdentifierValue("123-45.678 9") == "123456789");
}

BOOST_AUTO_TEST_CASE(nicknames_builtin_and_extended) {
  NicknameTable t;
  BOOST_TEST(t.canonical("bill") == "william");
  BOOST_TEST(t.canonical("william") == "william");
  BOOST_TEST(t.canonical("zork") == "zork");
  t.add("Eduardo", {"Lalo"});
  BOOST_TEST(t.canonical("lalo") == "eduardo");
}

BOOST_AUTO_TEST_CASE(jaro_winkler_reference_values) {
  BOOST_TEST(jaroWinkler("martha", "marhta") == 0.9611, boost::test_tools::tolerance(1e-3));
  BOOST_TEST(jaroWinkler("dwayne", "duane") == 0.84, boost::test_tools::tolerance(1e-3));
  BOOST_TEST(jaroWinkler("dixon", "dicksonx") == 0.8133, boost::test_tools::tolerance(1e-3));
  BOOST_TEST(jaroWinkler("abc", "abc") == 1.0);
  BOOST_TEST(jaroWinkler("abc", "xyz") == 0.0);
  BOOST_TEST(jaroWinkler("", "abc") == 0.0);
}

BOOST_AUTO_TEST_CASE(nysiis_codes) {
  BOOST_TEST(nysiis("brian") == "BRAN");
  BOOST_TEST(nysiis("brown") == "BRAN");
  BOOST_TEST(nysiis("brun") == "BRAN");
  BOOST_TEST(nysiis("capp") == "CAP");
  BOOST_TEST(nysiis("kipp") == "CAP");
  BOOST_TEST(nysiis("dane") == "DAN");
  BOOST_TEST(nysiis("dionne") == "DAN");
  BOOST_TEST(nysiis("schmidt") == "SNAD");
  BOOST_TEST(nysiis("macintosh") == nysiis("mcintosh"));
  BOOST_TEST(nysiis("") == "");
  BOOST_TEST(nysiisCode("brian") == nysiisCode("brown"));
  BOOST_TEST(nysiisCode("brian") != nysiisCode("dane"));
}

BOOST_AUTO_TEST_CASE(edit_and_date_closeness) {
  BOOST_TEST(oneEditApart("12345", "12845"));
  BOOST_TEST(oneEditApart("12345", "13245"));
  BOOST_TEST(oneEditApart("12345", "1245"));
  BOOST_TEST(!oneEditApart("12345", "54321"));
  BOOST_TEST(!oneEditApart("12345", "12345"));
  BOOST_TEST((compareDates(19560409, 19560409) == DateCloseness::kExact));
  BOOST_TEST((compareDates(19560409, 19560904) == DateCloseness::kTypoOrTransposed));  // dd/mm
  BOOST_TEST((compareDates(19560409, 19570409) == DateCloseness::kTypoOrTransposed));  // one digit
  BOOST_TEST((compareDates(19560412, 19560420) == DateCloseness::kNear));
  BOOST_TEST((compareDates(19560409, 19830409) == DateCloseness::kDifferent));
}

BOOST_AUTO_TEST_CASE(fhir_patient_to_record) {
  auto p = personFromFhirPatientJson(R"({"resourceType":"Patient","id":"p1",
    "name":[{"use":"old","family":"Maiden"},{"use":"official","family":"García-López","given":["María","José"]}],
    "birthDate":"1980-02-29","gender":"female",
    "telecom":[{"system":"phone","value":"+52 55 1234 5678"},{"system":"email","value":"M.Garcia@gmail.com"}],
    "address":[{"use":"old","city":"Old"},{"line":["Calle 5 #12"],"city":"Monterrey","postalCode":"64000","state":"NL"}],
    "identifier":[{"system":"urn:member","value":"AB-12"},{"type":{"coding":[{"code":"MB"}]},"value":"X9"}]})");
  BOOST_REQUIRE(p.has_value());
  BOOST_TEST(p->id == "p1");
  BOOST_TEST(p->familyNames.at(0) == "García-López");
  BOOST_TEST(p->givenNames.size() == 2u);
  BOOST_TEST(p->city == "Monterrey");
  BOOST_TEST(p->identifiers.size() == 2u);
  BOOST_TEST(p->identifiers[1].system == "MB");
  auto config = switchboard::mpi::MatchConfig::defaults();
  NormalizedRecord n = normalizeRecord(*p, config);
  BOOST_TEST(n.family == "garcia lopez");
  BOOST_TEST(n.given == "maria jose");
  BOOST_TEST(n.birthDate == 19800229u);
  BOOST_TEST(n.sex == 'f');
  BOOST_TEST(n.phones[0] == 525512345678ull);
  BOOST_TEST(n.identifiers == "urn:member=AB12\x1f~MB=X9");
  BOOST_TEST(!personFromFhirPatientJson(R"({"resourceType":"Observation"})").has_value());
  BOOST_TEST(!personFromFhirPatientJson("{not json").has_value());
}

BOOST_AUTO_TEST_CASE(febrl_row_to_record) {
  auto cells = splitFebrlLine("rec-1496-org, mitchell, green, 7, wallaby place, delmar, cleveland, 2119, sa, 19560409, 1804974");
  BOOST_TEST(cells.size() == 11u);
  auto p = personFromFebrlRow(cells);
  BOOST_REQUIRE(p.has_value());
  BOOST_TEST(p->addressLines.at(0) == "7 wallaby place");
  BOOST_TEST(p->identifiers.at(0).value == "1804974");
  BOOST_TEST(!personFromFebrlRow(splitFebrlLine("a, b")).has_value());
  auto empty = personFromFebrlRow(splitFebrlLine("rec-1-dup-0, , , , , , , , , , "));
  BOOST_REQUIRE(empty.has_value());
  BOOST_TEST(empty->givenNames.empty());
  BOOST_TEST(empty->identifiers.empty());
}

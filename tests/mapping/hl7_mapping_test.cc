// HL7 v2 in mapping files: the input model, the hl7('PATH') shorthand, HL7 <-> FHIR dates, the
// shipped ADT -> FHIR and Flow -> SIU^S12 mappings (values, escapes both ways, Unicode, absent
// fields, errors, byte-identical replays) and `switchboard map` printing ER7.
#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "engine/mapping/hl7_input.h"
#include "engine/mapping/map_cli.h"
#include "engine/mapping/mapping.h"
#include "engine/mapping/register.h"
#include "hl7v2/message.h"
#include "test_util.h"

namespace switchboard::mapping {
namespace {

std::string hl7Data(const std::string& name) {
  return test::readFile(test::sourceDir() + "/tests/data/mapping-hl7/" + name);
}
std::string sample(const std::string& name) {
  return test::readFile(test::sourceDir() + "/tests/data/hl7v2-samples/" + name);
}

std::shared_ptr<const Mapping> shipped(const std::string& file) {
  auto m = Mapping::loadFile(test::sourceDir() + "/mappings/" + file);
  BOOST_REQUIRE_MESSAGE(m.has_value(), (m ? std::string() : m.error().message));
  return *m;
}

Result<MappingOutput> mapAdt(const std::string& er7) {
  fhirpath::Environment env;
  env.setVariable("timezone", "America/New_York");
  return shipped("hl7v2-adt-a04-to-fhir.json")->run(er7, env);
}

// The Patient of an ADT mapping's Bundle.
rapidjson::Document patientOf(const std::string& er7) {
  auto out = mapAdt(er7);
  BOOST_REQUIRE_MESSAGE(out.has_value(), (out ? std::string() : out.error().message));
  BOOST_TEST(out->contentType == "application/fhir+json");
  auto bundle = test::parse(out->payload);
  BOOST_REQUIRE(bundle.IsObject());
  BOOST_REQUIRE(bundle["entry"].Size() == 1u);
  rapidjson::Document patient;
  patient.CopyFrom(bundle["entry"][0], patient.GetAllocator());
  return patient;
}

fhirpath::Environment siuEnv(const std::string& receivedAt = "2026-02-10T14:00:00Z") {
  fhirpath::Environment env;
  env.setVariable("facility", "HealthCare Clinic");
  env.variables["receivedAt"] = {fhirpath::Node::temporal(
      *fhirpath::Temporal::parse(receivedAt, fhirpath::TemporalKind::kDateTime))};
  return env;
}

std::string seedSubmission() {
  return test::readFile(test::sourceDir() + "/tests/data/mapping/seed-8x8-flow-submission.json");
}

std::string seedResponse(const std::vector<std::pair<std::string, std::string>>& changes) {
  auto doc = test::parse(
      test::readFile(test::sourceDir() + "/tests/data/mapping/seed-flow-response.json"));
  for (const auto& [k, v] : changes) {
    if (doc.HasMember(k.c_str())) doc.RemoveMember(k.c_str());
    doc.AddMember(rapidjson::Value(k.c_str(), doc.GetAllocator()),
                  rapidjson::Value(v.c_str(), doc.GetAllocator()), doc.GetAllocator());
  }
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  doc.Accept(w);
  return sb.GetString();
}

hl7v2::Message reparse(const std::string& er7) {
  auto m = hl7v2::Message::parse(er7);
  BOOST_REQUIRE_MESSAGE(m.has_value(), (m ? std::string() : m.error().message));
  return *m;
}

std::string get(const hl7v2::Message& m, const std::string& path) {
  return m.get(path).value_or("<bad path>");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(hl7_mapping)

BOOST_AUTO_TEST_CASE(model_decodes_escapes_and_keeps_repetition_positions) {
  auto json = hl7InputJson(hl7Data("adt-a08-escapes.hl7"));
  BOOST_REQUIRE(json.has_value());
  auto d = test::parse(*json);
  BOOST_TEST(d["messageType"] == "ADT");
  BOOST_TEST(d["trigger"] == "A08");
  BOOST_TEST(d["structure"] == "ADT_A01");
  BOOST_TEST(d["controlId"] == "MSG0002");
  BOOST_TEST(d["version"] == "2.5.1");
  const auto& pid = d["PID"][0];
  BOOST_TEST(pid["F5"][0]["C1"] == "O&Brien ^ Sons");
  BOOST_TEST(pid["F5"][0]["C2"] == "Mary&Ann");
  BOOST_TEST(pid["F5"][0]["C4"] == "Jr|II");
  BOOST_TEST(!pid["F5"][0].HasMember("C3"));  // empty component: absent, not ""
  BOOST_TEST(pid["F3"].Size() == 2u);
  BOOST_TEST(pid["F3"][0]["C4S2"] == "1.2.840.114350");
  BOOST_TEST(pid["F3"][0]["C4S3"] == "ISO");
  BOOST_TEST(pid["F3"][1]["value"] == "555-44-3333^^^SSA^SS");
  BOOST_TEST(pid["F11"][0]["C1"] == "1 Pipe | Tilde ~ Lane");
  BOOST_TEST(pid["F11"][0]["C3"] == "Back\\slash City");
  BOOST_TEST(!pid.HasMember("F2"));
  BOOST_TEST(d["MSH"][0]["F2"][0]["value"] == "^~\\&");  // MSH-2 as written

  // "" (the HL7 null) is no value; LF segment ends are accepted.
  auto sparse = hl7InputJson(hl7Data("adt-a04-sparse.hl7"));
  BOOST_REQUIRE(sparse.has_value());
  auto s = test::parse(*sparse);
  BOOST_TEST(!s["PID"][0].HasMember("F7"));
  BOOST_TEST(!s["PID"][0].HasMember("F8"));
  std::string lf = hl7Data("adt-a04-protocols.hl7");
  std::replace(lf.begin(), lf.end(), '\r', '\n');
  auto fromLf = hl7InputJson(lf);
  BOOST_REQUIRE(fromLf.has_value());
  BOOST_TEST(*fromLf == *hl7InputJson(hl7Data("adt-a04-protocols.hl7")));
}

BOOST_AUTO_TEST_CASE(path_shorthand_rewrites) {
  auto rw = [](std::string_view e) {
    auto r = rewriteHl7Paths(e);
    BOOST_REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message));
    return r->value_or("<unchanged>");
  };
  BOOST_TEST(rw("hl7('PID-5.1')") == "PID.first().F5.first().C1");
  BOOST_TEST(rw("hl7('PID-3')") == "PID.first().F3.value");
  BOOST_TEST(rw("hl7('OBX[2]-5(2).1')") == "OBX[1].F5[1].C1");
  BOOST_TEST(rw("hl7('PID-3.4.2')") == "PID.first().F3.first().C4S2");
  BOOST_TEST(rw("hl7('PID-3.4.1')") ==
             "PID.first().F3.first().select(iif(C4S1.exists(), C4S1, C4))");
  BOOST_TEST(rw("%obx.hl7('OBX-5.1') = 'x'") == "%obx.F5.first().C1 = 'x'");
  BOOST_TEST(rw("hl7('PID')") == "PID.first()");
  BOOST_TEST(rw("hl7 ( 'PID-8' ) in ('F' | 'M')") == "PID.first().F8.value in ('F' | 'M')");
  // Inside string literals, backticks, comments and %variables: left alone.
  BOOST_TEST(rw("'hl7(\\'PID-5\\')' & `hl7`") == "<unchanged>");
  BOOST_TEST(rw("%hl7('x')") == "<unchanged>");
  BOOST_TEST(rw("a // hl7('PID-5')") == "<unchanged>");
  BOOST_TEST(rw("hl7.x") == "<unchanged>");
  // Errors name the path.
  auto bad = rewriteHl7Paths("hl7('PID-0')");
  BOOST_REQUIRE(!bad.has_value());
  BOOST_TEST(bad.error().location == "PID-0");
  BOOST_TEST(!rewriteHl7Paths("hl7(%p)").has_value());
  BOOST_TEST(!rewriteHl7Paths("%x.hl7('OBX[2]-5')").has_value());
}

BOOST_AUTO_TEST_CASE(hl7_dates_to_fhir_and_back) {
  auto f = [](std::string_view dtm, FhirTemporal as, std::string_view zone = "") {
    auto r = hl7ToFhirDate(dtm, as, zone, "");
    return r ? *r
             : "error " + std::to_string(static_cast<int>(r.error().code)) + ": " +
                   r.error().message;
  };
  BOOST_TEST(f("19800115", FhirTemporal::kDate) == "1980-01-15");
  BOOST_TEST(f("198001", FhirTemporal::kDate) == "1980-01");
  BOOST_TEST(f("1980", FhirTemporal::kDateTime) == "1980");
  BOOST_TEST(f("19641028000000-0600", FhirTemporal::kDate) == "1964-10-28");
  BOOST_TEST(f("19641028000000-0600", FhirTemporal::kDateTime) == "1964-10-28T00:00:00-06:00");
  BOOST_TEST(f("20120711120510.2-0500", FhirTemporal::kDateTime) == "2012-07-11T12:05:10.2-05:00");
  BOOST_TEST(f("202501021030", FhirTemporal::kInstant, "America/New_York") ==
             "2025-01-02T10:30:00-05:00");
  BOOST_TEST(f("202507021030", FhirTemporal::kDateTime, "America/New_York") ==
             "2025-07-02T10:30:00-04:00");
  BOOST_TEST(f("2025070210", FhirTemporal::kDateTime, "UTC") == "2025-07-02T10:00:00+00:00");
  BOOST_TEST(f("20000229", FhirTemporal::kDate) == "2000-02-29");
  // Errors say what is wrong.
  BOOST_TEST(f("19801315", FhirTemporal::kDate).find("no such month") != std::string::npos);
  BOOST_TEST(f("19010229", FhirTemporal::kDate).find("no such day") != std::string::npos);
  BOOST_TEST(f("1980011", FhirTemporal::kDate).find("not an HL7 date") != std::string::npos);
  BOOST_TEST(f("2025010225", FhirTemporal::kDateTime, "UTC").find("time of day") !=
             std::string::npos);
  BOOST_TEST(f("20250102", FhirTemporal::kInstant).find("no time of day") != std::string::npos);
  auto noZone = hl7ToFhirDate("202501021030", FhirTemporal::kDateTime, "", "");
  BOOST_REQUIRE(!noZone.has_value());
  BOOST_TEST(static_cast<int>(noZone.error().code) == static_cast<int>(ErrorCode::kRequired));

  BOOST_TEST(fhirToHl7Date("2026-02-12T10:00:00-05:00").value_or("") == "20260212100000-0500");
  BOOST_TEST(fhirToHl7Date("2026-02-10T14:00:00.000Z").value_or("") == "20260210140000.000+0000");
  BOOST_TEST(fhirToHl7Date("1992-08-22").value_or("") == "19920822");
  BOOST_TEST(fhirToHl7Date("1992-08").value_or("") == "199208");
  BOOST_TEST(fhirToHl7Date("2026-02-12T10:00:00.123456+01:00").value_or("") ==
             "20260212100000.1234+0100");
  BOOST_TEST(!fhirToHl7Date("12 Feb 2026").has_value());
  BOOST_TEST(!fhirToHl7Date("2026-02-12T10").has_value());
}

BOOST_AUTO_TEST_CASE(adt_protocols_example_to_patient) {
  auto entry = patientOf(hl7Data("adt-a04-protocols.hl7"));
  const auto& p = entry["resource"];
  BOOST_TEST(p["resourceType"] == "Patient");
  BOOST_TEST(p["identifier"][0]["system"] == "urn:switchboard:hl7v2:assigning-authority:HOSP");
  BOOST_TEST(p["identifier"][0]["value"] == "MRN12345");
  BOOST_TEST(p["identifier"][0]["type"]["coding"][0]["code"] == "MR");
  BOOST_TEST(p["name"][0]["family"] == "Doe");
  BOOST_TEST(p["name"][0]["given"].Size() == 2u);
  BOOST_TEST(p["name"][0]["given"][0] == "Jane");
  BOOST_TEST(p["name"][0]["given"][1] == "Q");
  BOOST_TEST(p["birthDate"] == "1980-01-15");
  BOOST_TEST(p["gender"] == "female");
  BOOST_TEST(p["telecom"][0]["system"] == "phone");
  BOOST_TEST(p["telecom"][0]["value"] == "+1 (555) 1234567");
  BOOST_TEST(p["telecom"][0]["use"] == "mobile");
  BOOST_TEST(p["address"][0]["line"][0] == "123 Main St");
  BOOST_TEST(p["address"][0]["city"] == "Springfield");
  BOOST_TEST(p["address"][0]["state"] == "IL");
  BOOST_TEST(p["address"][0]["postalCode"] == "62701");
  BOOST_TEST(p["address"][0]["country"] == "USA");
  BOOST_TEST(p["address"][0]["use"] == "home");
  BOOST_TEST(entry["request"]["method"] == "POST");
  BOOST_TEST(entry["request"]["url"] == "Patient");
  BOOST_TEST(entry["request"]["ifNoneExist"] ==
             "identifier=urn:switchboard:hl7v2:assigning-authority:HOSP|MRN12345");
}

BOOST_AUTO_TEST_CASE(adt_corpus_samples_to_patient) {
  // 009: EPIC A04, v2.5, PID-3 without assigning authority, phone in XTN-1.
  {
    auto e = patientOf(sample("009-adt-a04.hl7"));
    const auto& p = e["resource"];
    BOOST_TEST(p["identifier"][0]["system"] == "urn:switchboard:hl7v2:mrn");
    BOOST_TEST(p["identifier"][0]["value"] == "454721");
    BOOST_TEST(!p["identifier"][0].HasMember("type"));
    BOOST_TEST(p["name"][0]["family"] == "DOE");
    BOOST_TEST(p["birthDate"] == "1948-02-03");
    BOOST_TEST(p["gender"] == "male");
    BOOST_TEST(p["telecom"][0]["value"] == "(216)123-4567");
    BOOST_TEST(p["address"][0]["city"] == "MYTOWN");
  }
  // 010: \T\ inside an address component, decoded.
  {
    auto e = patientOf(sample("010-adt-a04.hl7"));
    const auto& p = e["resource"];
    BOOST_TEST(p["address"][0]["line"][1] == "MARIO & LUIGI BROS PLACE");
    BOOST_TEST(p["name"][0]["family"] == "BROS");
    BOOST_TEST(p["birthDate"] == "1985-01-01");
  }
  // 014: Cerner A08, four PID-3 repetitions and none of type MR: the first is the identifier;
  // the space in the assigning authority is percent-encoded in the system.
  {
    auto e = patientOf(sample("014-adt-a08.hl7"));
    const auto& p = e["resource"];
    BOOST_TEST(p["identifier"].Size() == 1u);
    BOOST_TEST(p["identifier"][0]["value"] == "25106376");
    BOOST_TEST(p["identifier"][0]["system"] ==
               "urn:switchboard:hl7v2:assigning-authority:TEC%20MRN");
    BOOST_TEST(p["telecom"].Size() == 3u);
    BOOST_TEST(p["birthDate"] == "1940-01-01");
    BOOST_TEST(p["gender"] == "female");
  }
  // 004: v2.6 A01, birth date with a time and an offset, three PID-3 repetitions.
  {
    auto e = patientOf(sample("004-adt-a01.hl7"));
    const auto& p = e["resource"];
    BOOST_TEST(p["birthDate"] == "1964-10-28");
    BOOST_TEST(p["identifier"][0]["value"] == "397979797");
    BOOST_TEST(p["name"][0]["given"][1] == "H");
  }
  // 001: v2.8 A01, PID-3 of type MR with an assigning authority of subcomponents, two names
  // (display and legal).
  {
    auto e = patientOf(sample("001-adt-a01.hl7"));
    const auto& p = e["resource"];
    BOOST_TEST(p["identifier"][0]["value"] == "PATID1234");
    BOOST_TEST(p["identifier"][0]["system"] == "urn:switchboard:hl7v2:assigning-authority:test1");
    BOOST_TEST(p["name"].Size() == 2u);
    BOOST_TEST(p["name"][0]["family"] == "EVERYMAN");
    BOOST_TEST(p["name"][0]["use"] == "usual");
    BOOST_TEST(p["name"][1]["family"] == "Josh");
    BOOST_TEST(p["name"][1]["use"] == "official");
    BOOST_TEST(p["address"][0]["city"] == "Ann Arbor");  // "Ann Arbor " trimmed
    BOOST_TEST(p["address"][0]["type"] == "postal");
  }
  // 013: German A08 (v2.3).
  {
    auto e = patientOf(sample("013-adt-a08.hl7"));
    BOOST_TEST(e["resource"]["birthDate"] == "1937-06-09");
    BOOST_TEST(e["resource"]["address"][0]["city"] == "Luneburg");
  }
}

BOOST_AUTO_TEST_CASE(adt_escapes_become_text_and_iso_authority_an_oid) {
  auto e = patientOf(hl7Data("adt-a08-escapes.hl7"));
  const auto& p = e["resource"];
  BOOST_TEST(p["name"][0]["family"] == "O&Brien ^ Sons");
  BOOST_TEST(p["name"][0]["given"][0] == "Mary&Ann");
  BOOST_TEST(p["name"][0]["suffix"][0] == "Jr|II");
  BOOST_TEST(p["name"][0]["use"] == "official");
  BOOST_TEST(p["address"][0]["line"][0] == "1 Pipe | Tilde ~ Lane");
  BOOST_TEST(p["address"][0]["city"] == "Back\\slash City");
  BOOST_TEST(p["identifier"][0]["system"] == "urn:oid:1.2.840.114350");
  BOOST_TEST(p["identifier"][0]["value"] == "MRN777");
  BOOST_TEST(p["birthDate"] == "1975-12-31");
  BOOST_TEST(e["request"]["ifNoneExist"] == "identifier=urn:oid:1.2.840.114350|MRN777");
}

BOOST_AUTO_TEST_CASE(adt_unicode_names) {
  auto e = patientOf(hl7Data("adt-a01-unicode.hl7"));
  const auto& p = e["resource"];
  BOOST_TEST(p["name"][0]["family"] ==
             "M\xc3\xbcller-L\xc3\xbc"
             "denscheidt");
  BOOST_TEST(p["name"][0]["given"][0] == "Zo\xc3\xab");
  BOOST_TEST(p["name"][0]["given"][1] ==
             "Ren\xc3\xa9"
             "e");
  BOOST_TEST(p["address"][0]["city"] == "K\xc3\xb6ln");
  BOOST_TEST(p["gender"] == "other");
  // The ifNoneExist value is percent-encoded byte by byte.
  BOOST_TEST(e["request"]["ifNoneExist"] ==
             "identifier=urn:switchboard:hl7v2:assigning-authority:KLINIK|M-%C3%BC-1");
}

BOOST_AUTO_TEST_CASE(adt_absent_fields_give_absent_elements) {
  auto out = mapAdt(hl7Data("adt-a04-sparse.hl7"));
  BOOST_REQUIRE(out.has_value());
  BOOST_TEST(out->payload.find("\"\"") == std::string::npos);  // no empty strings anywhere
  auto e = patientOf(hl7Data("adt-a04-sparse.hl7"));
  const auto& p = e["resource"];
  BOOST_TEST(p["name"][0]["family"] == "Solo");
  BOOST_TEST(!p["name"][0].HasMember("given"));
  BOOST_TEST(!p.HasMember("birthDate"));  // PID-7 ""
  BOOST_TEST(!p.HasMember("gender"));     // PID-8 ""
  BOOST_TEST(!p.HasMember("telecom"));
  BOOST_TEST(!p.HasMember("address"));
}

BOOST_AUTO_TEST_CASE(adt_errors_are_precise) {
  // Not HL7 at all.
  auto notHl7 = mapAdt("{\"resourceType\":\"Patient\"}");
  BOOST_REQUIRE(!notHl7.has_value());
  BOOST_TEST(static_cast<int>(notHl7.error().code) == static_cast<int>(ErrorCode::kStructure));
  BOOST_TEST(notHl7.error().message.starts_with("mapping hl7v2-adt-a04-to-fhir: HL7 v2 input: "));
  BOOST_TEST(notHl7.error().location == "byte 0");
  // A bad segment id in the middle: the byte where it starts.
  const std::string malformed = hl7Data("adt-a04-malformed.hl7");
  auto bad = mapAdt(malformed);
  BOOST_REQUIRE(!bad.has_value());
  BOOST_TEST(static_cast<int>(bad.error().code) == static_cast<int>(ErrorCode::kStructure));
  BOOST_TEST(bad.error().location == "byte " + std::to_string(malformed.find("pid|")));
  BOOST_TEST(bad.error().message.find("segment 3") != std::string::npos, bad.error().message);
  BOOST_TEST(bad.error().message.find("MRN11") == std::string::npos);  // no field content
  // Empty input.
  BOOST_TEST(!mapAdt("").has_value());
  // ISO-8859-1 bytes (MSH-18 8859/1 is not converted): refused, not written as broken JSON.
  auto latin1 = mapAdt(
      "MSH|^~\\&|A|B|C|D|20250301101500||ADT^A04^ADT_A01|1|P|2.5.1|||||||8859/1\r"
      "PID|1||X1^^^H^MR||Ren\xe9^Jos\xe9\rPV1|1|O\r");
  BOOST_REQUIRE(!latin1.has_value());
  BOOST_TEST(latin1.error().message.find("not valid UTF-8") != std::string::npos);
  // An impossible birth date names the field.
  auto date = mapAdt(hl7Data("adt-a04-bad-date.hl7"));
  BOOST_REQUIRE(!date.has_value());
  BOOST_TEST(static_cast<int>(date.error().code) == static_cast<int>(ErrorCode::kValue));
  BOOST_TEST(date.error().message.find("\"19801315\" has no such month") != std::string::npos,
             date.error().message);
  BOOST_TEST(date.error().location == "hl7('PID-7.1')");  // as the file wrote it
  // A message this mapping does not take (ORU^R01) and one without a patient identifier.
  auto oru = mapAdt(sample("040-oru-r01.hl7"));
  BOOST_REQUIRE(!oru.has_value());
  BOOST_TEST(oru.error().location == "MSH-9");
  BOOST_TEST(oru.error().message.find("takes ADT^A01, ADT^A04 and ADT^A08") != std::string::npos);
  auto noId =
      mapAdt("MSH|^~\\&|A|B|C|D|20250301101500||ADT^A04^ADT_A01|1|P|2.5.1\rPID|1||\rPV1|1|O\r");
  BOOST_REQUIRE(!noId.has_value());
  BOOST_TEST(static_cast<int>(noId.error().code) == static_cast<int>(ErrorCode::kRequired));
  BOOST_TEST(noId.error().message ==
             "mapping hl7v2-adt-a04-to-fhir: required answer missing: hl7('PID-3.1')");
}

BOOST_AUTO_TEST_CASE(adt_same_message_same_bundle_and_patient_uuid_by_mrn) {
  const std::string a = hl7Data("adt-a04-protocols.hl7");
  auto one = mapAdt(a), two = mapAdt(a);
  BOOST_REQUIRE(one.has_value());
  BOOST_REQUIRE(two.has_value());
  BOOST_TEST(one->payload == two->payload);
  // An A08 for the same MRN (another control id, another name) keeps the Patient's fullUrl.
  std::string update = a;
  update.replace(update.find("ADT^A04"), 7, "ADT^A08");
  update.replace(update.find("MSG0001"), 7, "MSG0099");
  update.replace(update.find("Doe^Jane"), 8, "Roe^Jane");
  auto three = mapAdt(update);
  BOOST_REQUIRE(three.has_value());
  BOOST_TEST(one->payload != three->payload);
  BOOST_TEST(std::string(test::parse(one->payload)["entry"][0]["fullUrl"].GetString()) ==
             std::string(test::parse(three->payload)["entry"][0]["fullUrl"].GetString()));
}

BOOST_AUTO_TEST_CASE(siu_s12_from_the_seed_submission) {
  auto m = shipped("fhir-appointment-to-siu-s12.json");
  auto out = m->run(seedSubmission(), siuEnv());
  BOOST_REQUIRE_MESSAGE(out.has_value(), (out ? std::string() : out.error().message));
  BOOST_TEST(out->contentType == "application/hl7-v2");
  BOOST_TEST(out->payload == hl7Data("siu-s12-seed.er7"));
  BOOST_TEST(out->payload.find('\n') == std::string::npos);
  auto msg = reparse(out->payload);
  // Segment order of SIU_S12 (protocols.md 4.2): MSH SCH [TQ1] [PID [PV1]] RGS AIS AIL AIP.
  std::string ids;
  for (const auto& s : msg.segments()) ids += s.id + " ";
  BOOST_TEST(ids == "MSH SCH TQ1 PID PV1 RGS AIS AIL AIP ");
  // MSH required fields (4.3).
  BOOST_TEST(get(msg, "MSH-7") == "20260210140000+0000");
  BOOST_TEST(get(msg, "MSH-9") == "SIU^S12^SIU_S12");
  BOOST_TEST(msg.messageStructure() == "SIU_S12");
  BOOST_TEST(get(msg, "MSH-10").size() == 20u);
  BOOST_TEST(get(msg, "MSH-11") == "P");
  BOOST_TEST(get(msg, "MSH-12") == "2.5.1");
  BOOST_TEST(get(msg, "MSH-4") == "HealthCare Clinic");
  // SCH: 6, 16 and 20 required; start and end in SCH-11.4/.5 and TQ1-7/8.
  BOOST_TEST(get(msg, "SCH-6") == "NEW^New booking^L");
  BOOST_TEST(get(msg, "SCH-7") == "ROUTINE^Routine appointment - default if not valued^HL70276");
  BOOST_TEST(get(msg, "SCH-9") == "20");
  BOOST_TEST(get(msg, "SCH-11.4") == "20260212100000-0500");
  BOOST_TEST(get(msg, "SCH-11.5") == "20260212102000-0500");
  BOOST_TEST(get(msg, "TQ1-7") == get(msg, "SCH-11.4"));
  BOOST_TEST(get(msg, "TQ1-8") == get(msg, "SCH-11.5"));
  BOOST_TEST(get(msg, "SCH-16") == "1234567893^Smith^Sarah^^^^MD");
  BOOST_TEST(get(msg, "SCH-20") == "WAGW^WhatsApp Gateway");
  BOOST_TEST(get(msg, "SCH-25.1") == "Booked");
  BOOST_TEST(get(msg, "SCH-1.1") == get(msg, "MSH-10"));
  // PID.
  BOOST_TEST(get(msg, "PID-3") == "+15551234567^^^WHATSAPP^PI");
  BOOST_TEST(get(msg, "PID-5") == "Chen^Emily");
  BOOST_TEST(get(msg, "PID-7") == "19920822");
  BOOST_TEST(get(msg, "PID-13(2).4") == "emily.chen@example.com");
  // Resources: RGS-1, AIS-1 and AIS-3, AIL-1, AIP-1 required.
  BOOST_TEST(get(msg, "RGS-1") == "1");
  BOOST_TEST(get(msg, "AIS-1") == "1");
  BOOST_TEST(get(msg, "AIS-3") == "185345009^Sick Visit^SCT");
  BOOST_TEST(get(msg, "AIS-4") == "20260212100000-0500");
  BOOST_TEST(get(msg, "AIS-7") == "20");
  BOOST_TEST(get(msg, "AIL-1") == "1");
  BOOST_TEST(get(msg, "AIL-3") == "CLINIC^^^HealthCare Clinic");
  BOOST_TEST(get(msg, "AIP-1") == "1");
  BOOST_TEST(get(msg, "AIP-3.1") == "1234567893");
}

BOOST_AUTO_TEST_CASE(siu_from_the_fhir_bundle_equals_siu_from_the_flow) {
  // Flow -> SIU directly, and Flow -> Bundle (whatsapp-flow-appointment.json) -> SIU
  // (fhir-bundle-appointment-to-siu-s12.json): the same message but for the control id (MSH-10,
  // SCH-1.1), which each derives from its own input.
  auto direct = shipped("fhir-appointment-to-siu-s12.json");
  auto toBundle = shipped("whatsapp-flow-appointment.json");
  auto fromBundle = shipped("fhir-bundle-appointment-to-siu-s12.json");
  struct Variant {
    std::vector<std::pair<std::string, std::string>> answers;
    std::string status;
  };
  const std::vector<Variant> variants = {
      {{}, "booked"},
      {{{"visit_type", "telehealth"}, {"provider_preference", "any"}}, "proposed"},
      {{{"provider_preference", "dr_patel"},
        {"appointment_type", "annual_checkup"},
        {"time_slot", "1500"},
        {"appointment_date", "2026-07-01"}},
       "booked"}};
  for (const auto& v : variants) {
    auto env = siuEnv();
    env.setVariable("sender", "+15551234567");
    env.setVariable("appointment_status", v.status);
    const std::string input = seedResponse(v.answers);
    auto a = direct->run(input, env);
    BOOST_REQUIRE_MESSAGE(a.has_value(), (a ? std::string() : a.error().message));
    auto bundle = toBundle->run(input, env);
    BOOST_REQUIRE_MESSAGE(bundle.has_value(), (bundle ? std::string() : bundle.error().message));
    auto b = fromBundle->run(bundle->payload, env);
    BOOST_REQUIRE_MESSAGE(b.has_value(), (b ? std::string() : b.error().message));
    auto ma = reparse(a->payload), mb = reparse(b->payload);
    BOOST_TEST(get(ma, "MSH-10") != get(mb, "MSH-10"));
    for (auto* m : {&ma, &mb}) {
      BOOST_REQUIRE(m->set("MSH-10", "X").has_value());
      BOOST_REQUIRE(m->set("SCH-1.1", "X").has_value());
    }
    BOOST_TEST(ma.toEr7() == mb.toEr7());
    BOOST_TEST(ma.count("AIL") ==
               (v.answers.empty() || v.answers[0].second != "telehealth" ? 1u : 0u));
  }
}

BOOST_AUTO_TEST_CASE(siu_replays_are_byte_identical) {
  auto m = shipped("fhir-appointment-to-siu-s12.json");
  auto one = m->run(seedSubmission(), siuEnv());
  auto two = m->run(seedSubmission(), siuEnv());
  BOOST_REQUIRE(one.has_value());
  BOOST_REQUIRE(two.has_value());
  BOOST_TEST(one->payload == two->payload);
  // The same submission received at another instant: only MSH-7 changes.
  auto later = m->run(seedSubmission(), siuEnv("2026-02-11T09:30:00Z"));
  BOOST_REQUIRE(later.has_value());
  auto a = reparse(one->payload), b = reparse(later->payload);
  BOOST_TEST(get(b, "MSH-7") == "20260211093000+0000");
  BOOST_TEST(get(a, "MSH-10") == get(b, "MSH-10"));
  // Another submission: another control id.
  auto other = m->run(seedResponse({{"time_slot", "1100"}}), [] {
    auto env = siuEnv();
    env.setVariable("sender", "+15551234567");
    return env;
  }());
  BOOST_REQUIRE_MESSAGE(other.has_value(), (other ? std::string() : other.error().message));
  BOOST_TEST(get(reparse(other->payload), "MSH-10") != get(a, "MSH-10"));
  BOOST_TEST(get(reparse(other->payload), "SCH-11.4") == "20260212110000-0500");
}

BOOST_AUTO_TEST_CASE(siu_escapes_delimiters_in_names) {
  auto m = shipped("fhir-appointment-to-siu-s12.json");
  auto env = siuEnv();
  env.setVariable("sender", "+15551234567");
  const std::string family = "O'Brien & Sons^Jr|x~y\\z";
  auto out = m->run(seedResponse({{"patient_last_name", family},
                                  {"patient_first_name", "Zo\xc3\xab \xe5\xa4\xaa\xe9\x83\x8e"}}),
                    env);
  BOOST_REQUIRE_MESSAGE(out.has_value(), (out ? std::string() : out.error().message));
  auto msg = reparse(out->payload);
  BOOST_TEST(msg.getRaw("PID-5.1").value_or("") == "O'Brien \\T\\ Sons\\S\\Jr\\F\\x\\R\\y\\E\\z");
  BOOST_TEST(get(msg, "PID-5.1") == family);
  BOOST_TEST(get(msg, "PID-5.2") == "Zo\xc3\xab \xe5\xa4\xaa\xe9\x83\x8e");
  // The escaped name did not split the segment: PID still has PID-7 in place.
  BOOST_TEST(get(msg, "PID-7") == "19920822");
  BOOST_TEST(msg.count("PID") == 1u);
}

BOOST_AUTO_TEST_CASE(siu_telehealth_without_a_named_provider) {
  auto m = shipped("fhir-appointment-to-siu-s12.json");
  auto env = siuEnv();
  env.setVariable("sender", "+15551234567");
  env.setVariable("appointment_status", "proposed");
  auto out = m->run(
      seedResponse(
          {{"visit_type", "telehealth"}, {"provider_preference", "any"}, {"patient_email", ""}}),
      env);
  BOOST_REQUIRE_MESSAGE(out.has_value(), (out ? std::string() : out.error().message));
  auto msg = reparse(out->payload);
  BOOST_TEST(msg.count("AIL") == 0u);
  BOOST_TEST(msg.count("AIP") == 0u);
  BOOST_TEST(msg.count("RGS") == 1u);
  BOOST_TEST(get(msg, "SCH-16") == "SCHEDULING^Scheduling Desk");
  BOOST_TEST(get(msg, "SCH-25.1") == "Pending");
  BOOST_TEST(msg.getRaw("PID-13").value_or("") == "^PRN^CP^^^^^^^^^+15551234567");  // no email
}

BOOST_AUTO_TEST_CASE(hl7_output_template_rules) {
  auto load = [](const std::string& json) {
    return Mapping::load(json, "inline.json", std::make_shared<ConceptMapSet>());
  };
  auto error = [&](const std::string& json) {
    auto m = load(json);
    return m ? std::string("loaded") : m.error().message;
  };
  const std::string head = R"({"id": "t", "output": "hl7v2", "segments": [)";
  BOOST_TEST(error(head + R"({"PID-5.1": "x"}]})").find("the first segment is MSH") !=
             std::string::npos);
  BOOST_TEST(error(head + R"({"MSH-9.1": "A", "PID-5": "x"}]})").find("same segment (MSH)") !=
             std::string::npos);
  BOOST_TEST(error(head + R"({"MSH-9.1": "A"}, {"PID[2]-5": "x"}]})").find("no [occurrence]") !=
             std::string::npos);
  BOOST_TEST(error(head + R"({"MSH-2": "x"}]})").find("MSH-1 and MSH-2") != std::string::npos);
  BOOST_TEST(error(head + R"({"MSH-9.1": "A"}], "resources": []})").find("/resources") !=
             std::string::npos);
  BOOST_TEST(error(R"({"id": "t", "segments": [], "resources": []})").find("/segments") !=
             std::string::npos);
  BOOST_TEST(error(R"({"id": "t", "input": "hl7v2", "resources": [{"key": "p", "resource":
      {"resourceType": "Patient", "gender": "{{ hl7('PID-0') }}"}}]})")
                 .find("/resources/0/resource/gender") != std::string::npos);

  // $each repeats a segment, several values of a field path become repetitions, vanished
  // segments are left out, numbers and booleans are written as text, MSH-10/11/12 defaults.
  auto m = load(head + R"(
      {"MSH-7": "20250101", "MSH-9.1": "ORU", "MSH-9.2": "R01"},
      {"PID-3": "{{ ids }}", "PID-5.1": "{{ name }}"},
      {"$each": "results", "$as": "r", "OBX-1": "{{ %rIndex + 1 }}", "OBX-5": "{{ %r.v }}",
       "OBX-11": "{{ %r.final }}"},
      {"NTE-3": "{{ missing }}"}]})");
  BOOST_REQUIRE_MESSAGE(m.has_value(), (m ? std::string() : m.error().message));
  auto out = (*m)->run(
      R"({"ids": ["a^1", "b"], "name": "N", "results": [{"v": 1.5, "final": true}, {"v": "x|y"}]})",
      fhirpath::Environment());
  BOOST_REQUIRE_MESSAGE(out.has_value(), (out ? std::string() : out.error().message));
  BOOST_TEST(out->payload.substr(out->payload.find("||ORU")) ==
             "||ORU^R01|" + out->payload.substr(out->payload.find("R01|") + 4, 20) +
                 "|P|2.5.1\rPID|||a\\S\\1~b||N\rOBX|1||||1.5||||||Y\rOBX|2||||x\\F\\y\r");
  // Without MSH-7 or receivedAt: an error naming MSH-7.
  auto noTime = load(head + R"({"MSH-9.1": "ORU"}]})");
  BOOST_REQUIRE(noTime.has_value());
  auto r = (*noTime)->run("{}", fhirpath::Environment());
  BOOST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().location == "MSH-7");
  // Several values for one component: an error.
  auto many = load(head + R"({"MSH-7": "2025", "MSH-9.1": "{{ ids }}"}]})");
  BOOST_REQUIRE(many.has_value());
  auto r2 = (*many)->run(R"({"ids": ["a", "b"]})", fhirpath::Environment());
  BOOST_REQUIRE(!r2.has_value());
  BOOST_TEST(r2.error().message.find("2 values for one element") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(hl7_paths_read_what_the_hl7v2_library_reads_on_the_corpus) {
  // Every message of tests/data/hl7v2-samples/ (odd delimiters, escapes, Z-segments, no MSH-9):
  // what hl7('...') gives through the model equals hl7v2's own get() of the same path.
  auto m = Mapping::load(R"json({"id": "corpus", "input": "hl7v2", "output": "resources",
    "resources": [{"key": "b", "resource": {"resourceType": "Bundle", "type": "collection",
      "entry": [{"$each": "OBX", "$as": "obx", "resource": {"resourceType": "Observation",
        "code": {"coding": [{"code": "{{ %obx.hl7('OBX-3.1') }}"}]},
        "valueString": "{{ %obx.hl7('OBX-5(1)') }}"}}],
      "identifier": {"system": "{{ hl7('PID-3(2).4.1') }}", "value": "{{ hl7('PID-3.1') }}"},
      "signature": [{"type": [{"code": "{{ hl7('MSH-9.2') }}", "display": "{{ hl7('PID-5.1') }}"}],
                     "who": {"display": "{{ hl7('MSH-10') }}"}}]}}]})json",
                         "inline.json", std::make_shared<ConceptMapSet>());
  BOOST_REQUIRE_MESSAGE(m.has_value(), (m ? std::string() : m.error().message));
  int files = 0, observations = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(test::sourceDir() + "/tests/data/hl7v2-samples")) {
    if (entry.path().extension() != ".hl7") continue;
    ++files;
    const std::string er7 = test::readFile(entry.path().string());
    BOOST_TEST_CONTEXT(entry.path().filename().string()) {
      auto msg = reparse(er7);
      auto out = (*m)->run(er7, fhirpath::Environment());
      BOOST_REQUIRE_MESSAGE(out.has_value(), (out ? std::string() : out.error().message));
      auto doc = test::parse(out->payload);
      BOOST_REQUIRE(doc.IsArray());
      const auto& bundle = doc[0];
      // The library's text, or "" when it is blank or the HL7 null (the mapping drops those).
      auto expect = [&](const std::string& path) {
        std::string v = get(msg, path);
        return v == "\"\"" || v.find_first_not_of(" \t") == std::string::npos ? std::string() : v;
      };
      auto at = [](const rapidjson::Value& v, const char* pointer) {
        const rapidjson::Value* found = rapidjson::Pointer(pointer).Get(v);
        return found && found->IsString() ? std::string(found->GetString()) : std::string();
      };
      BOOST_TEST(at(bundle, "/identifier/value") == expect("PID-3.1"));
      BOOST_TEST(at(bundle, "/identifier/system") == expect("PID-3(2).4.1"));
      BOOST_TEST(at(bundle, "/signature/0/type/0/code") == expect("MSH-9.2"));
      BOOST_TEST(at(bundle, "/signature/0/type/0/display") == expect("PID-5.1"));
      BOOST_TEST(at(bundle, "/signature/0/who/display") == expect("MSH-10"));
      const std::size_t obx = msg.count("OBX");
      const rapidjson::Value* entries = rapidjson::Pointer("/entry").Get(bundle);
      std::size_t produced = 0;
      for (std::size_t i = 1; i <= obx; ++i) {
        const std::string code = expect("OBX[" + std::to_string(i) + "]-3.1");
        const std::string value = expect("OBX[" + std::to_string(i) + "]-5(1)");
        if (code.empty() && value.empty()) continue;  // an Observation with nothing vanishes
        BOOST_REQUIRE(entries);
        BOOST_REQUIRE(produced < entries->Size());
        const auto& obs = (*entries)[static_cast<rapidjson::SizeType>(produced++)]["resource"];
        BOOST_TEST(at(obs, "/code/coding/0/code") == code);
        BOOST_TEST(at(obs, "/valueString") == value);
        ++observations;
      }
      BOOST_TEST(produced == (entries ? entries->Size() : 0u));
    }
  }
  BOOST_TEST(files == 72);
  BOOST_TEST(observations == 54);  // OBX segments with a code or a value in the corpus
}

BOOST_AUTO_TEST_CASE(hl7_input_plans_agree_with_the_engine_on_the_corpus) {
  // A file without $fromHl7Date/$toHl7Date has compiled plans over the model; for every sample
  // they give exactly what the FHIRPath engine gives.
  auto m = Mapping::load(R"json({"id": "corpus", "input": "hl7v2", "output": "resources",
    "required": ["messageType"],
    "assert": [{"that": "trigger.exists() implies trigger.length() = 3", "field": "MSH-9.2",
                "message": "odd trigger"}],
    "resources": [{"key": "b", "identity": "hl7('MSH-10')", "resource": {
      "resourceType": "Bundle", "type": "collection",
      "entry": [{"$each": "OBX", "$as": "obx", "$if": "%obx.hl7('OBX-3.1').exists()",
        "resource": {"resourceType": "Observation", "status": "final", "id": "o{{ %obxIndex + 1 }}",
          "code": {"text": "{{ %obx.hl7('OBX-3.2') }}", "coding": [{"code": "{{ %obx.hl7('OBX-3.1') }}"}]},
          "valueString": "{{ %obx.hl7('OBX-5(1)') }}",
          "note": [{"text": "{{ messageType }}^{{ trigger }} {{ hl7('PID-3.1') }} {{ hl7('PID-5.1.1') }}"}]}}],
      "identifier": {"system": "urn:{{ hl7('MSH-4.1').lower() }}", "value": "{{ controlId }}"},
      "signature": [{"$each": "PID.first().F3.where(C1.exists())", "$as": "cx",
        "type": [{"code": "{{ %cx.C1 }}", "system": "urn:{{ %cx.C4 }}"}],
        "who": {"display": "{{ %cx.value }}"}, "sigFormat": "{{ iif(%cx.C5 = 'MR', 'mrn', 'other') }}"}]
    }}]})json",
                         "inline.json", std::make_shared<ConceptMapSet>());
  BOOST_REQUIRE_MESSAGE(m.has_value(), (m ? std::string() : m.error().message));
  BOOST_TEST((*m)->planned());
  int planned = 0, files = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(test::sourceDir() + "/tests/data/hl7v2-samples")) {
    if (entry.path().extension() != ".hl7") continue;
    ++files;
    const std::string er7 = test::readFile(entry.path().string());
    BOOST_TEST_CONTEXT(entry.path().filename().string()) {
      auto general = (*m)->runGeneral(er7, fhirpath::Environment());
      auto plan = (*m)->runPlanned(er7, fhirpath::Environment());
      if (!plan && plan.error().code == ErrorCode::kNotSupported) continue;  // declined
      ++planned;
      BOOST_TEST(general.has_value() == plan.has_value());
      if (general && plan) BOOST_TEST(general->payload == plan->payload);
      if (!general && !plan) BOOST_TEST(general.error().message == plan.error().message);
    }
  }
  BOOST_TEST(files == 72);
  BOOST_TEST(planned == 72);

  // The shipped ADT mapping ($fromHl7Date, $translate, $each, iif) is planned too, and agrees.
  auto adt = shipped("hl7v2-adt-a04-to-fhir.json");
  BOOST_TEST(adt->planned());
  fhirpath::Environment env;
  env.setVariable("timezone", "America/New_York");
  for (const std::string file :
       {"mapping-hl7/adt-a04-protocols.hl7", "mapping-hl7/adt-a08-escapes.hl7",
        "mapping-hl7/adt-a01-unicode.hl7", "mapping-hl7/adt-a04-sparse.hl7",
        "mapping-hl7/adt-a04-bad-date.hl7", "mapping-hl7/adt-a04-malformed.hl7",
        "hl7v2-samples/001-adt-a01.hl7", "hl7v2-samples/004-adt-a01.hl7",
        "hl7v2-samples/009-adt-a04.hl7", "hl7v2-samples/010-adt-a04.hl7",
        "hl7v2-samples/013-adt-a08.hl7", "hl7v2-samples/014-adt-a08.hl7",
        "hl7v2-samples/040-oru-r01.hl7"}) {
    BOOST_TEST_CONTEXT(file) {
      const std::string er7 = test::readFile(test::sourceDir() + "/tests/data/" + file);
      auto general = adt->runGeneral(er7, env);
      auto plan = adt->runPlanned(er7, env);
      BOOST_REQUIRE(plan.has_value() || static_cast<int>(plan.error().code) !=
                                            static_cast<int>(ErrorCode::kNotSupported));
      BOOST_TEST(general.has_value() == plan.has_value());
      if (general && plan) BOOST_TEST(general->payload == plan->payload);
      if (!general && !plan) {
        BOOST_TEST(general.error().message == plan.error().message);
        BOOST_TEST(general.error().location == plan.error().location);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(planned_replace_matches_the_engine) {
  auto m = Mapping::load(R"json({"id": "r", "output": "resources", "resources": [{"key": "p",
    "resource": {"resourceType": "Basic", "text": {"$each": "cases", "$as": "c",
      "div": "{{ %c.s.replace(%c.p, %c.w) }}", "status": "{{ %c.s.replace('x', '') }}"}}}]})json",
                         "inline.json", std::make_shared<ConceptMapSet>());
  BOOST_REQUIRE_MESSAGE(m.has_value(), (m ? std::string() : m.error().message));
  BOOST_REQUIRE((*m)->planned());
  for (const char* input :
       {R"({"cases": [{"s": "TEC MRN", "p": " ", "w": "%20"}]})",
        R"({"cases": [{"s": "aaa", "p": "aa", "w": "b"}, {"s": "xax", "p": "q", "w": "z"}]})",
        R"({"cases": [{"s": "Müller ü", "p": "ü", "w": "ue"}]})",
        R"({"cases": [{"s": "", "p": "a", "w": "b"}, {"s": "abc", "p": "abc", "w": ""}]})"}) {
    BOOST_TEST_CONTEXT(input) {
      auto general = (*m)->runGeneral(input, fhirpath::Environment());
      auto plan = (*m)->runPlanned(input, fhirpath::Environment());
      BOOST_REQUIRE_MESSAGE(general.has_value(), (general ? "" : general.error().message));
      BOOST_REQUIRE_MESSAGE(plan.has_value(), (plan ? "" : plan.error().message));
      BOOST_TEST(general->payload == plan->payload);
    }
  }
  auto general = (*m)->runGeneral(R"({"cases": [{"s": "ab", "p": "", "w": "-"}]})", {});
  BOOST_REQUIRE(general.has_value());
  BOOST_TEST(general->payload.find("\"-a-b-\"") != std::string::npos);
  // The empty pattern is left to the engine: the plan declines it.
  auto plan = (*m)->runPlanned(R"({"cases": [{"s": "ab", "p": "", "w": "-"}]})", {});
  BOOST_REQUIRE(!plan.has_value());
  BOOST_TEST(static_cast<int>(plan.error().code) == static_cast<int>(ErrorCode::kNotSupported));
  BOOST_TEST((*m)->run(R"({"cases": [{"s": "ab", "p": "", "w": "-"}]})", {})->payload ==
             general->payload);
}

BOOST_AUTO_TEST_CASE(hl7_in_hl7_out_escapes_both_ways) {
  // ER7 in, ER7 out: decoded on the way in, encoded again on the way out.
  auto m = Mapping::load(R"json({"id": "a04-to-a28", "input": "hl7v2", "output": "hl7v2",
    "segments": [
      {"MSH-3": "{{ hl7('MSH-5') }}", "MSH-7": "{{ hl7('MSH-7') }}", "MSH-9.1": "ADT", "MSH-9.2": "A28",
       "MSH-9.3": "ADT_A05", "MSH-10": "{{ controlId & '-28' }}"},
      {"EVN-2": "{{ hl7('EVN-2') }}"},
      {"$each": "PID.F3.where(C1.exists())", "$as": "cx", "$let": {"n": "{{ %cxIndex + 1 }}"},
       "NTE-1": "{{ %n }}", "NTE-3": "{{ %cx.C1 }} from {{ %cx.C4 }}"},
      {"PID-1": "1", "PID-3": "{{ PID.first().F3.C1 }}", "PID-5.1": "{{ hl7('PID-5.1') }}",
       "PID-5.2": "{{ hl7('PID-5.2') }}", "PID-11.1": "{{ hl7('PID-11.1') }}"},
      {"PV1-2": "N"}]})json",
                         "inline.json", std::make_shared<ConceptMapSet>());
  BOOST_REQUIRE_MESSAGE(m.has_value(), (m ? std::string() : m.error().message));
  auto out = (*m)->run(hl7Data("adt-a08-escapes.hl7"), fhirpath::Environment());
  BOOST_REQUIRE_MESSAGE(out.has_value(), (out ? std::string() : out.error().message));
  BOOST_TEST(out->payload ==
             "MSH|^~\\&|EHR||||20250301101500||ADT^A28^ADT_A05|MSG0002-28|P|2.5.1\r"
             "EVN||20250301101500\r"
             "NTE|1||MRN777 from HOSP\\T\\1.2.840.114350\\T\\ISO\r"
             "NTE|2||555-44-3333 from SSA\r"
             "PID|1||MRN777~555-44-3333||O\\T\\Brien \\S\\ Sons^Mary\\T\\Ann||||||"
             "1 Pipe \\F\\ Tilde \\R\\ Lane\r"
             "PV1||N\r");
  auto msg = reparse(out->payload);
  BOOST_TEST(get(msg, "PID-5.1") == "O&Brien ^ Sons");
  BOOST_TEST(get(msg, "PID-11.1") == "1 Pipe | Tilde ~ Lane");
}

BOOST_AUTO_TEST_CASE(mapping_stage_maps_er7_and_writes_er7) {
  core::ConnectorRegistry registry;
  registerMappingStages(registry);
  const auto* factory = registry.stage("mapping");
  BOOST_REQUIRE(factory);
  auto makeStage = [&](const std::string& json) {
    rapidjson::Document doc;
    doc.Parse(json.c_str());
    core::ConfigReader reader(doc, "channel.json", "/transformer");
    reader.skip("type");
    auto stage = (*factory)(reader, core::ConnectorContext{"ch", "", ""});
    BOOST_REQUIRE_MESSAGE(stage.has_value(), (stage ? std::string() : stage.error().message));
    return std::move(*stage);
  };
  core::StoredMessage stored;
  stored.channelId = "mllp-in";
  stored.receivedAtMs = 1770732000000;  // 2026-02-10T14:00:00Z

  auto adt = makeStage(
      R"({"type":"mapping","file":")" + test::sourceDir() +
      R"(/mappings/hl7v2-adt-a04-to-fhir.json","variables":{"timezone":"America/New_York"}})");
  core::PipelineMessage in;
  in.message = &stored;
  in.payload = hl7Data("adt-a04-protocols.hl7");
  in.contentType = "application/hl7-v2";
  auto r = adt->process(in);
  BOOST_REQUIRE(r.kind == core::StageResult::Kind::kContinue);
  BOOST_TEST(in.contentType == "application/fhir+json");
  BOOST_TEST(test::parse(in.payload)["entry"][0]["resource"]["name"][0]["family"] == "Doe");
  core::PipelineMessage broken;
  broken.message = &stored;
  broken.payload = "MSH|^~\\&|A\rPID|1\r\rPV1|1\r";  // an empty segment
  auto failed = adt->process(broken);
  BOOST_REQUIRE(failed.kind == core::StageResult::Kind::kFail);
  BOOST_TEST(failed.error.message.starts_with("mapping hl7v2-adt-a04-to-fhir: HL7 v2 input: "));

  auto siu = makeStage(
      R"({"type":"mapping","file":")" + test::sourceDir() +
      R"(/mappings/fhir-appointment-to-siu-s12.json","variables":{"facility":"HealthCare Clinic"}})");
  std::string first;
  for (int replay = 0; replay < 2; ++replay) {
    core::PipelineMessage pm;
    pm.message = &stored;
    pm.payload = seedSubmission();
    pm.contentType = "application/json";
    auto s = siu->process(pm);
    BOOST_REQUIRE(s.kind == core::StageResult::Kind::kContinue);
    BOOST_TEST(pm.contentType == "application/hl7-v2");
    BOOST_TEST(get(reparse(pm.payload), "MSH-7") == "20260210140000.000+0000");
    if (replay == 0)
      first = pm.payload;
    else
      BOOST_TEST(pm.payload == first);  // a replay writes the same bytes
  }
}

BOOST_AUTO_TEST_CASE(map_command_prints_er7) {
  const std::string mapping = test::sourceDir() + "/mappings/fhir-appointment-to-siu-s12.json";
  const std::string seed = test::sourceDir() + "/tests/data/mapping/seed-8x8-flow-submission.json";
  auto ok = test::runMap({mapping, seed, "--var", "facility=HealthCare Clinic", "--var",
                          "receivedAt=2026-02-10T14:00:00Z"});
  BOOST_TEST(ok.code == 0, ok.err);
  BOOST_TEST(ok.out == hl7Data("siu-s12-seed.er7"));  // CR-separated, nothing added
  auto lines = test::runMap({mapping, seed, "--var", "facility=HealthCare Clinic", "--var",
                             "receivedAt=2026-02-10T14:00:00Z", "--lines"});
  BOOST_TEST(lines.code == 0);
  std::string expected = hl7Data("siu-s12-seed.er7");
  std::replace(expected.begin(), expected.end(), '\r', '\n');
  BOOST_TEST(lines.out == expected);

  const std::string adt = test::sourceDir() + "/mappings/hl7v2-adt-a04-to-fhir.json";
  auto fhir =
      test::runMap({adt, test::sourceDir() + "/tests/data/mapping-hl7/adt-a04-protocols.hl7"});
  BOOST_TEST(fhir.code == 0, fhir.err);
  BOOST_REQUIRE(test::parse(fhir.out).IsObject());
  BOOST_TEST(test::parse(fhir.out)["entry"][0]["resource"]["birthDate"] == "1980-01-15");
  auto bad =
      test::runMap({adt, test::sourceDir() + "/tests/data/mapping-hl7/adt-a04-malformed.hl7"});
  BOOST_TEST(bad.code == 1);
  BOOST_TEST(test::parse(bad.err)["resourceType"] == "OperationOutcome");
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace switchboard::mapping

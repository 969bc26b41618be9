// PersonRecord (the demographics the MPI compares) built from a FHIR R4 Patient or a FEBRL CSV
// row, and its normalised comparison form. Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "engine/core/error.h"
#include "engine/mpi/match_config.h"

namespace switchboard::mpi {

struct PersonIdentifier {
  std::string system;  // URI, type code (e.g. "MB", "SS") or a short name ("ssn")
  std::string value;
};

// Source demographics as received (not yet normalised).
struct PersonRecord {
  std::string id;
  std::vector<std::string> givenNames;
  std::vector<std::string> familyNames;  // usually one; multi-part surnames may be split
  std::string birthDate;                 // as received (FHIR date or YYYYMMDD)
  std::string sex;                       // FHIR gender code or empty
  std::vector<std::string> phones;
  std::vector<std::string> emails;
  std::vector<std::string> addressLines;
  std::string city;
  std::string postcode;
  std::string state;
  std::vector<PersonIdentifier> identifiers;
};

// Patient JSON object -> PersonRecord. Uses the first name whose use is not old/maiden/
// anonymous (else the first name), telecom phone/sms/email, the first address whose use is
// not old, and every identifier with a value (system, else type.coding[0].code, else "id").
Result<PersonRecord> personFromFhirPatient(const rapidjson::Value& patient);
Result<PersonRecord> personFromFhirPatientJson(std::string_view json);

// FEBRL CSV: fields separated by ", " (a comma, optional spaces); quotes are not used.
std::vector<std::string> splitFebrlLine(std::string_view line);
// Columns: rec_id, given_name, surname, street_number, address_1, address_2, suburb,
// postcode, state, date_of_birth, soc_sec_id.
Result<PersonRecord> personFromFebrlRow(const std::vector<std::string>& cells);

// The normalised comparison form (docs/mpi.md section 1).
struct NormalizedRecord {
  std::string id;
  std::string given;    // folded tokens, space separated
  std::string family;   // folded parts, space separated
  std::string address;  // folded first address line
  std::string city;
  std::string postcode;
  std::string state;
  // "SYSTEM=VALUE" entries separated by '\x1f'; a system that family members may share
  // (config familySharedIdentifierSystems) is written "~SYSTEM".
  std::string identifiers;
  uint32_t birthDate = 0;   // yyyymmdd, 0 missing
  char sex = 0;             // 'm', 'f', 'o' or 0
  uint64_t phones[2] = {0, 0};
  uint64_t emails[2] = {0, 0};  // hashes of normalised addresses
  uint64_t givenCode = 0;       // NYSIIS of the first given token
  uint64_t familyCode = 0;      // NYSIIS of the family name without spaces
  uint64_t givenCanon = 0;      // hash of the nickname-canonical first given token
};

// A non-owning view of a normalised record: what the comparators read, whether the record
// sits in a NormalizedRecord or in the compact RecordStore.
struct RecordView {
  std::string_view id, given, family, address, city, postcode, state, identifiers;
  uint32_t birthDate = 0;
  char sex = 0;
  uint64_t phones[2] = {0, 0};
  uint64_t emails[2] = {0, 0};
  uint64_t givenCode = 0, familyCode = 0, givenCanon = 0;
};

RecordView viewOf(const NormalizedRecord& r);
NormalizedRecord normalizeRecord(const PersonRecord& p, const MatchConfig& config);

}  // namespace switchboard::mpi

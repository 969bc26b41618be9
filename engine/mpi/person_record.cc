// PersonRecord construction (FHIR Patient, FEBRL row) and normalisation.
// Thread-safety: pure functions.
#include "engine/mpi/person_record.h"

#include "engine/mpi/comparators.h"

namespace switchboard::mpi {
namespace {

std::string str(const rapidjson::Value& obj, const char* key) {
  if (!obj.IsObject()) return {};
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

const rapidjson::Value* arr(const rapidjson::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsArray()) return nullptr;
  return &it->value;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n')) --e;
  return std::string(s.substr(b, e - b));
}

}  // namespace

Result<PersonRecord> personFromFhirPatient(const rapidjson::Value& patient) {
  if (!patient.IsObject()) return fail(ErrorCode::kStructure, "Patient must be a JSON object", "$");
  if (str(patient, "resourceType") != "Patient") {
    return fail(ErrorCode::kInvalid, "resourceType must be Patient", "Patient.resourceType");
  }
  PersonRecord p;
  p.id = str(patient, "id");
  if (const auto* names = arr(patient, "name")) {
    const rapidjson::Value* chosen = nullptr;
    for (const auto& n : names->GetArray()) {
      if (!n.IsObject()) continue;
      std::string use = str(n, "use");
      if (use == "old" || use == "maiden" || use == "anonymous") continue;
      chosen = &n;
      break;
    }
    if (!chosen && !names->Empty()) chosen = &(*names)[0];
    if (chosen && chosen->IsObject()) {
      if (const auto* given = arr(*chosen, "given")) {
        for (const auto& g : given->GetArray())
          if (g.IsString()) p.givenNames.emplace_back(g.GetString(), g.GetStringLength());
      }
      std::string family = str(*chosen, "family");
      if (!family.empty()) p.familyNames.push_back(family);
      if (p.givenNames.empty() && family.empty()) {
        std::string text = str(*chosen, "text");
        auto tokens = splitTokens(foldText(text));
        if (tokens.size() >= 2) {
          p.familyNames.push_back(tokens.back());
          tokens.pop_back();
          for (auto& t : tokens) p.givenNames.push_back(t);
        }
      }
    }
  }
  p.birthDate = str(patient, "birthDate");
  p.sex = str(patient, "gender");
  if (const auto* telecom = arr(patient, "telecom")) {
    for (const auto& t : telecom->GetArray()) {
      std::string system = str(t, "system"), value = str(t, "value");
      if (value.empty()) continue;
      if (system == "phone" || system == "sms") p.phones.push_back(value);
      else if (system == "email") p.emails.push_back(value);
    }
  }
  if (const auto* addresses = arr(patient, "address")) {
    for (const auto& a : addresses->GetArray()) {
      if (!a.IsObject() || str(a, "use") == "old") continue;
      if (const auto* lines = arr(a, "line")) {
        for (const auto& l : lines->GetArray())
          if (l.IsString()) p.addressLines.emplace_back(l.GetString(), l.GetStringLength());
      }
      p.city = str(a, "city");
      p.postcode = str(a, "postalCode");
      p.state = str(a, "state");
      break;
    }
  }
  if (const auto* ids = arr(patient, "identifier")) {
    for (const auto& i : ids->GetArray()) {
      std::string value = str(i, "value");
      if (value.empty()) continue;
      std::string system = str(i, "system");
      if (system.empty() && i.IsObject() && i.HasMember("type")) {
        const auto& type = i["type"];
        if (type.IsObject()) {
          if (const auto* codings = arr(type, "coding"); codings && !codings->Empty())
            system = str((*codings)[0], "code");
        }
      }
      if (system.empty()) system = "id";
      p.identifiers.push_back({system, value});
    }
  }
  return p;
}

Result<PersonRecord> personFromFhirPatientJson(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError()) return fail(ErrorCode::kStructure, "Patient is not valid JSON", "$");
  return personFromFhirPatient(doc);
}

std::vector<std::string> splitFebrlLine(std::string_view line) {
  std::vector<std::string> cells;
  size_t start = 0;
  while (true) {
    size_t comma = line.find(',', start);
    cells.push_back(trim(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start)));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return cells;
}

Result<PersonRecord> personFromFebrlRow(const std::vector<std::string>& c) {
  if (c.size() != 11) {
    return fail(ErrorCode::kStructure, "FEBRL row must have 11 columns, has " + std::to_string(c.size()));
  }
  PersonRecord p;
  p.id = c[0];
  if (!c[1].empty()) p.givenNames.push_back(c[1]);
  if (!c[2].empty()) p.familyNames.push_back(c[2]);
  std::string line1 = c[3].empty() ? c[4] : (c[4].empty() ? c[3] : c[3] + " " + c[4]);
  if (!line1.empty()) p.addressLines.push_back(line1);
  if (!c[5].empty()) p.addressLines.push_back(c[5]);
  p.city = c[6];
  p.postcode = c[7];
  p.state = c[8];
  p.birthDate = c[9];
  if (!c[10].empty()) p.identifiers.push_back({"ssn", c[10]});
  return p;
}

RecordView viewOf(const NormalizedRecord& r) {
  RecordView v;
  v.id = r.id;
  v.given = r.given;
  v.family = r.family;
  v.address = r.address;
  v.city = r.city;
  v.postcode = r.postcode;
  v.state = r.state;
  v.identifiers = r.identifiers;
  v.birthDate = r.birthDate;
  v.sex = r.sex;
  v.phones[0] = r.phones[0];
  v.phones[1] = r.phones[1];
  v.emails[0] = r.emails[0];
  v.emails[1] = r.emails[1];
  v.givenCode = r.givenCode;
  v.familyCode = r.familyCode;
  v.givenCanon = r.givenCanon;
  return v;
}

NormalizedRecord normalizeRecord(const PersonRecord& p, const MatchConfig& config) {
  NormalizedRecord r;
  r.id = p.id;
  for (const auto& g : p.givenNames) {
    std::string f = normalizeGivenName(g);
    if (f.empty()) continue;
    if (!r.given.empty()) r.given.push_back(' ');
    r.given += f;
  }
  for (const auto& g : p.familyNames) {
    std::string f = normalizeFamilyName(g);
    if (f.empty()) continue;
    if (!r.family.empty()) r.family.push_back(' ');
    r.family += f;
  }
  if (!p.addressLines.empty()) r.address = foldText(p.addressLines.front());
  r.city = foldText(p.city);
  r.postcode = normalizePostcode(p.postcode);
  r.state = foldText(p.state);
  for (const auto& id : p.identifiers) {
    std::string value = normalizeIdentifierValue(id.value);
    if (value.empty()) continue;
    if (!r.identifiers.empty()) r.identifiers.push_back('\x1f');
    bool shared = false;
    for (const auto& s : config.familySharedIdentifierSystems) shared = shared || s == id.system;
    if (shared) r.identifiers.push_back('~');
    r.identifiers += id.system + "=" + value;
  }
  r.birthDate = normalizeBirthDate(p.birthDate);
  if (p.sex == "male") r.sex = 'm';
  else if (p.sex == "female") r.sex = 'f';
  else if (p.sex == "other") r.sex = 'o';
  size_t np = 0;
  for (const auto& ph : p.phones) {
    uint64_t n = normalizePhone(ph, config.defaultCallingCode);
    if (n == 0 || (np == 1 && r.phones[0] == n)) continue;
    if (np < 2) r.phones[np++] = n;
  }
  size_t ne = 0;
  for (const auto& e : p.emails) {
    std::string n = normalizeEmail(e, config.gmailDotsOptional);
    if (n.empty()) continue;
    uint64_t h = hash64(n) | 1;
    if (ne == 1 && r.emails[0] == h) continue;
    if (ne < 2) r.emails[ne++] = h;
  }
  std::string_view given = r.given;
  std::string_view first = given.substr(0, given.find(' '));
  r.givenCode = nysiisCode(first);
  r.givenCanon = first.empty() ? 0 : hash64(config.nicknames.canonical(first)) | 1;
  r.familyCode = nysiisCode(r.family);
  return r;
}

}  // namespace switchboard::mpi

// Synthetic patients for bench/mpi. Thread-safety: see synthetic.h.
#include "synthetic.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cmath>
#include <cstdio>
#include <string>

namespace switchboard::mpi::bench {
namespace {

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ULL + 0x1234567ULL) { next(); }
  uint64_t next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545F4914F6CDD1DULL;
  }
  uint64_t below(uint64_t n) { return next() % n; }
  double uniform() { return double(next() >> 11) / double(1ULL << 53); }
  bool chance(double p) { return uniform() < p; }
  // Zipf-like rank in [0, n): P(k) proportional to 1/(k + q), sampled log-uniformly.
  uint64_t zipf(uint64_t n, double q) {
    double u = uniform();
    double x = std::pow(double(n) + q, u) * std::pow(q, 1 - u) - q;
    return std::min<uint64_t>(n - 1, static_cast<uint64_t>(std::max(0.0, x)));
  }

 private:
  uint64_t s_;
};

const char* kGiven[] = {
    "james",     "mary",      "john",      "patricia",  "robert",   "jennifer",  "michael",
    "linda",     "william",   "elizabeth", "david",     "barbara",  "richard",   "susan",
    "joseph",    "jessica",   "thomas",    "sarah",     "charles",  "karen",     "christopher",
    "nancy",     "daniel",    "lisa",      "matthew",   "margaret", "anthony",   "betty",
    "mark",      "sandra",    "donald",    "ashley",    "steven",   "kimberly",  "paul",
    "emily",     "andrew",    "donna",     "joshua",    "michelle", "jose",      "maria",
    "juan",      "guadalupe", "luis",      "ana",       "carlos",   "sofia",     "jorge",
    "camila",    "miguel",    "valentina", "pedro",     "isabella", "francisco", "lucia",
    "alejandro", "fernanda",  "ricardo",   "gabriela",  "eduardo",  "daniela",   "fernando",
    "paula",     "manuel",    "adriana",   "ignacio",   "victoria", "samuel",    "rebecca",
    "benjamin",  "catherine", "nicholas",  "deborah",   "patrick",  "stephanie", "timothy",
    "olivia",    "gregory",   "emma",      "alexander", "ava",      "edward",    "mia",
    "peter",     "chloe",     "jesus",     "zoe",       "liam",     "noah"};
const char* kSyllables[] = {"ka",   "ro",  "mi",  "la",  "ne",  "to",  "sa",  "ri",  "vo",  "de",
                            "lu",   "ma",  "bel", "ton", "son", "ber", "gar", "lin", "mor", "ven",
                            "quin", "zel", "dra", "kov", "ski", "ez",  "ana", "eli", "ost", "han"};
const char* kStreetSuffix[] = {"street", "road",  "avenue", "lane",
                               "drive",  "court", "place",  "way"};
const char* kAccent[][2] = {{"jose", "José"},   {"maria", "María"}, {"sofia", "Sofía"},
                            {"lucia", "Lucía"}, {"jesus", "Jesús"}, {"ramon", "Ramón"}};
const char* kNick[][2] = {{"william", "bill"},   {"robert", "bob"},     {"elizabeth", "liz"},
                          {"richard", "rick"},   {"michael", "mike"},   {"thomas", "tom"},
                          {"joseph", "joe"},     {"daniel", "dan"},     {"jennifer", "jen"},
                          {"catherine", "kate"}, {"francisco", "paco"}, {"guadalupe", "lupe"},
                          {"ignacio", "nacho"},  {"samuel", "sam"},     {"nicholas", "nick"}};

std::string syllableName(uint64_t id, int parts) {
  std::string s;
  for (int i = 0; i < parts; ++i) {
    s += kSyllables[id % 30];
    id /= 30;
  }
  return s;
}

std::string givenName(Rng& r) {
  constexpr size_t n = sizeof(kGiven) / sizeof(kGiven[0]);
  if (r.chance(0.7)) return kGiven[r.zipf(n, 6)];
  return syllableName(r.zipf(20000, 20) * 7919 + 13, 3);
}

std::string familyName(Rng& r) {
  return syllableName(r.zipf(200000, 10) * 104729 + 7, 2 + static_cast<int>(r.below(2)));
}

std::string digits(Rng& r, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(static_cast<char>('0' + r.below(10)));
  return s;
}

std::string date(Rng& r, int fromYear, int toYear) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", fromYear + int(r.below(toYear - fromYear + 1)),
                1 + int(r.below(12)), 1 + int(r.below(28)));
  return buf;
}

void setAddress(PersonRecord& p, Rng& r) {
  uint64_t city = r.zipf(20000, 20);
  p.addressLines = {std::to_string(1 + r.below(9999)) + " " +
                    syllableName(r.below(40000) * 31 + 3, 2) + " " + kStreetSuffix[r.below(8)]};
  p.city = syllableName(city * 17 + 5, 3);
  char pc[8];
  std::snprintf(pc, sizeof pc, "%06u", unsigned(100000 + city * 37 + r.below(12)));
  p.postcode = pc;
  p.state = syllableName(city % 50, 1);
}

PersonRecord newPerson(Rng& r, uint64_t serial) {
  PersonRecord p;
  p.givenNames = {givenName(r)};
  if (r.chance(0.2)) p.givenNames.push_back(givenName(r));
  p.familyNames = {familyName(r)};
  if (r.chance(0.05)) p.familyNames[0] += "-" + familyName(r);
  p.birthDate = date(r, 1930, 2023);
  p.sex = r.chance(0.5) ? "female" : "male";
  p.phones = {"(" + std::to_string(200 + r.below(800)) + ") " + digits(r, 3) + "-" + digits(r, 4)};
  if (r.chance(0.5))
    p.emails = {p.givenNames[0] + "." + p.familyNames[0] + std::to_string(serial % 1000) +
                "@example.com"};
  setAddress(p, r);
  if (r.chance(0.4))
    p.identifiers.push_back({"ssn", std::to_string(100000000 + serial * 7 + r.below(7))});
  if (r.chance(0.5)) p.identifiers.push_back({"MB", "M" + digits(r, 9)});
  return p;
}

void typo(std::string& s, Rng& r) {
  if (s.size() < 3) return;
  size_t i = 1 + r.below(s.size() - 2);
  switch (r.below(3)) {
    case 0:
      s[i] = static_cast<char>('a' + r.below(26));
      break;
    case 1:
      std::swap(s[i], s[i + 1]);
      break;
    default:
      s.erase(i, 1);
  }
}

}  // namespace

PersonRecord perturb(const PersonRecord& src, uint64_t seed) {
  Rng r(seed);
  PersonRecord p = src;
  int errors = 1 + static_cast<int>(r.below(3));
  for (int e = 0; e < errors; ++e) {
    switch (r.below(11)) {
      case 0:
        if (!p.givenNames.empty()) typo(p.givenNames[0], r);
        break;
      case 1:
        if (!p.familyNames.empty()) typo(p.familyNames[0], r);
        break;
      case 2:
        for (auto& n : kNick)
          if (!p.givenNames.empty() && p.givenNames[0] == n[0]) p.givenNames[0] = n[1];
        for (auto& a : kAccent)
          if (!p.givenNames.empty() && p.givenNames[0] == a[0]) p.givenNames[0] = a[1];
        break;
      case 3:  // day and month transposed, or one digit off
        if (p.birthDate.size() == 10) {
          if (r.chance(0.5) && p.birthDate[8] <= '1') {
            std::string d = p.birthDate;
            p.birthDate = d.substr(0, 5) + d.substr(8, 2) + "-" + d.substr(5, 2);
          } else {
            p.birthDate[9] = static_cast<char>('0' + (p.birthDate[9] - '0' + 1) % 10);
          }
        }
        break;
      case 4:  // new phone
        p.phones = {"(" + std::to_string(200 + r.below(800)) + ") " + digits(r, 3) + "-" +
                    digits(r, 4)};
        break;
      case 5:  // moved
        setAddress(p, r);
        break;
      case 6:
        p.emails.clear();
        break;
      case 7:
        p.identifiers.clear();
        break;
      case 8:
        if (r.chance(0.3) && !p.givenNames.empty() && !p.familyNames.empty())
          std::swap(p.givenNames[0], p.familyNames[0]);
        break;
      case 9:
        p.phones.clear();
        break;
      default:  // formatting differences only
        if (!p.phones.empty()) p.phones[0] = "+1 " + p.phones[0];
        if (!p.familyNames.empty() && !p.familyNames[0].empty())
          p.familyNames[0][0] = static_cast<char>(p.familyNames[0][0] - 'a' + 'A');
    }
  }
  return p;
}

SyntheticPatients generatePatients(size_t n, uint64_t seed, double duplicateRate) {
  Rng r(seed);
  SyntheticPatients out;
  out.records.reserve(n);
  out.person.reserve(n);
  uint32_t persons = 0;
  while (out.records.size() < n) {
    const size_t i = out.records.size();
    PersonRecord p;
    uint32_t who;
    if (i > 100 && r.chance(duplicateRate)) {
      size_t src = r.below(i);
      p = perturb(out.records[src], r.next());
      who = out.person[src];
    } else if (i > 100 && r.chance(0.06)) {
      // Household member of an earlier record: same family name, phone and address.
      const PersonRecord& h = out.records[r.below(i)];
      p = newPerson(r, i);
      p.familyNames = h.familyNames;
      p.phones = h.phones;
      p.addressLines = h.addressLines;
      p.city = h.city;
      p.postcode = h.postcode;
      p.state = h.state;
      double kind = r.uniform();
      if (kind < 0.1) {
        p.birthDate = h.birthDate;  // twin
        while (!p.givenNames.empty() && !h.givenNames.empty() &&
               p.givenNames[0][0] == h.givenNames[0][0])
          p.givenNames[0] = givenName(r);
      } else if (kind < 0.2 && h.birthDate.size() == 10 && h.birthDate < "1983") {
        p.givenNames = h.givenNames;  // junior: same name, born 20-40 years later
        p.birthDate = std::to_string(std::stoi(h.birthDate.substr(0, 4)) + 20 + int(r.below(20))) +
                      h.birthDate.substr(4);
      }
      who = persons++;
    } else {
      p = newPerson(r, i);
      who = persons++;
    }
    p.id = "pt-" + std::to_string(i);
    out.records.push_back(std::move(p));
    out.person.push_back(who);
  }
  return out;
}

std::string toFhirJson(const PersonRecord& p) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("resourceType");
  w.String("Patient");
  w.Key("id");
  w.String(p.id);
  w.Key("name");
  w.StartArray();
  w.StartObject();
  if (!p.familyNames.empty()) {
    w.Key("family");
    w.String(p.familyNames[0]);
  }
  w.Key("given");
  w.StartArray();
  for (const auto& g : p.givenNames) w.String(g);
  w.EndArray();
  w.EndObject();
  w.EndArray();
  if (!p.birthDate.empty()) {
    w.Key("birthDate");
    w.String(p.birthDate);
  }
  if (!p.sex.empty()) {
    w.Key("gender");
    w.String(p.sex);
  }
  w.Key("telecom");
  w.StartArray();
  for (const auto& t : p.phones) {
    w.StartObject();
    w.Key("system");
    w.String("phone");
    w.Key("value");
    w.String(t);
    w.EndObject();
  }
  for (const auto& t : p.emails) {
    w.StartObject();
    w.Key("system");
    w.String("email");
    w.Key("value");
    w.String(t);
    w.EndObject();
  }
  w.EndArray();
  w.Key("address");
  w.StartArray();
  w.StartObject();
  w.Key("line");
  w.StartArray();
  for (const auto& l : p.addressLines) w.String(l);
  w.EndArray();
  w.Key("city");
  w.String(p.city);
  w.Key("postalCode");
  w.String(p.postcode);
  w.Key("state");
  w.String(p.state);
  w.EndObject();
  w.EndArray();
  w.Key("identifier");
  w.StartArray();
  for (const auto& i : p.identifiers) {
    w.StartObject();
    w.Key("system");
    w.String(i.system);
    w.Key("value");
    w.String(i.value);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace switchboard::mpi::bench

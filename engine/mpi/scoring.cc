// Fellegi-Sunter scoring with term-frequency adjustment and hard negatives (docs/mpi.md 2-4).
// Thread-safety: see scoring.h.
#include "engine/mpi/scoring.h"

#include <cmath>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "engine/mpi/comparators.h"

namespace switchboard::mpi {
namespace {

constexpr uint8_t L(int x) { return static_cast<uint8_t>(x); }

std::string_view firstToken(std::string_view s) { return s.substr(0, s.find(' ')); }

bool sameWithoutSpaces(std::string_view a, std::string_view b) {
  size_t i = 0, j = 0;
  while (true) {
    while (i < a.size() && a[i] == ' ') ++i;
    while (j < b.size() && b[j] == ' ') ++j;
    if (i == a.size() || j == b.size()) return i == a.size() && j == b.size();
    if (a[i] != b[j]) return false;
    ++i;
    ++j;
  }
}

template <typename F>
void forEachTokenSep(std::string_view s, F&& f) {
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find('\x1f', i);
    if (j == std::string_view::npos) j = s.size();
    f(s.substr(i, j - i));
    i = j + 1;
  }
}

template <typename F>
void forEachToken(std::string_view s, F&& f) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(' ', i);
    if (j == std::string_view::npos) j = s.size();
    if (j > i) f(s.substr(i, j - i));
    i = j + 1;
  }
}

// given: exact, nickname, jw92, jw80OrPhonetic, disagree
uint8_t givenLevel(std::string_view a, std::string_view b, uint64_t codeA, uint64_t codeB,
                   uint64_t canonA, uint64_t canonB) {
  if (a.empty() || b.empty()) return kNullLevel;
  std::string_view fa = firstToken(a), fb = firstToken(b);
  if (a == b || fa == fb) return L(0);
  if (canonA != 0 && canonA == canonB) return L(1);
  double jw = std::max(jaroWinkler(a, b), jaroWinkler(fa, fb));
  if (jw >= 0.92) return L(2);
  if (jw >= 0.80 || (codeA != 0 && codeA == codeB)) return L(3);
  return L(4);
}

// family: exact, part, jw92, jw80OrPhonetic, disagree
uint8_t familyLevel(std::string_view a, std::string_view b, uint64_t codeA, uint64_t codeB) {
  if (a.empty() || b.empty()) return kNullLevel;
  if (a == b || sameWithoutSpaces(a, b)) return L(0);
  if (a.find(' ') != std::string_view::npos || b.find(' ') != std::string_view::npos) {
    bool part = false;
    forEachToken(a, [&](std::string_view ta) {
      if (ta.size() < 2 || part) return;
      forEachToken(b, [&](std::string_view tb) { part = part || ta == tb; });
    });
    if (part) return L(1);
  }
  double jw = jaroWinkler(a, b);
  if (jw >= 0.92) return L(2);
  if (jw >= 0.80 || (codeA != 0 && codeA == codeB)) return L(3);
  return L(4);
}

uint8_t birthDateLevel(uint32_t a, uint32_t b) {
  if (a == 0 || b == 0) return kNullLevel;
  switch (compareDates(a, b)) {
    case DateCloseness::kExact:
      return L(0);
    case DateCloseness::kTypoOrTransposed:
      return L(1);
    case DateCloseness::kNear:
      return L(2);
    case DateCloseness::kDifferent:
      break;
  }
  return L(3);
}

uint8_t anyEqualLevel(const uint64_t (&a)[2], const uint64_t (&b)[2]) {
  if (a[0] == 0 || b[0] == 0) return kNullLevel;
  for (uint64_t x : a)
    for (uint64_t y : b)
      if (x != 0 && x == y) return L(0);
  return L(1);
}

// address: exact, jw90, partial, disagree
uint8_t addressLevel(std::string_view a, std::string_view b) {
  if (a.empty() || b.empty()) return kNullLevel;
  if (a == b) return L(0);
  if (jaroWinkler(a, b) >= 0.90) return L(1);
  std::string_view na = firstToken(a), nb = firstToken(b);
  bool digitsA = !na.empty() && na[0] >= '0' && na[0] <= '9';
  bool digitsB = !nb.empty() && nb[0] >= '0' && nb[0] <= '9';
  if (digitsA && digitsB && na == nb) return L(2);
  std::string_view ra = digitsA && na.size() < a.size() ? a.substr(na.size() + 1) : a;
  std::string_view rb = digitsB && nb.size() < b.size() ? b.substr(nb.size() + 1) : b;
  if (!ra.empty() && (ra == rb || jaroWinkler(ra, rb) >= 0.92)) return L(2);
  return L(3);
}

uint8_t cityLevel(std::string_view a, std::string_view b) {
  if (a.empty() || b.empty()) return kNullLevel;
  if (a == b) return L(0);
  return jaroWinkler(a, b) >= 0.90 ? L(1) : L(2);
}

uint8_t postcodeLevel(std::string_view a, std::string_view b) {
  if (a.empty() || b.empty()) return kNullLevel;
  if (a == b) return L(0);
  return oneEditApart(a, b) ? L(1) : L(2);
}

uint8_t exactLevel(std::string_view a, std::string_view b) {
  if (a.empty() || b.empty()) return kNullLevel;
  return a == b ? L(0) : L(1);
}

// True when a and b hold the same value for an identifier system that is not family-shared.
bool personIdentifierAgrees(std::string_view a, std::string_view b) {
  bool agree = false;
  forEachTokenSep(a, [&](std::string_view ea) {
    if (agree || ea.empty() || ea[0] == '~') return;
    forEachTokenSep(b, [&](std::string_view eb) { agree = agree || ea == eb; });
  });
  return agree;
}

uint8_t identifierLevel(std::string_view a, std::string_view b) {
  if (a.empty() || b.empty()) return kNullLevel;
  uint8_t best = kNullLevel;
  size_t i = 0;
  while (i <= a.size()) {
    size_t j = a.find('\x1f', i);
    if (j == std::string_view::npos) j = a.size();
    std::string_view ea = a.substr(i, j - i);
    size_t eqa = ea.find('=');
    size_t k = 0;
    while (k <= b.size() && eqa != std::string_view::npos) {
      size_t l = b.find('\x1f', k);
      if (l == std::string_view::npos) l = b.size();
      std::string_view eb = b.substr(k, l - k);
      size_t eqb = eb.find('=');
      if (eqb != std::string_view::npos && ea.substr(0, eqa) == eb.substr(0, eqb)) {
        std::string_view va = ea.substr(eqa + 1), vb = eb.substr(eqb + 1);
        uint8_t lv = va == vb ? L(0) : (oneEditApart(va, vb) ? L(1) : L(2));
        if (best == kNullLevel || lv < best) best = lv;
      }
      k = l + 1;
    }
    i = j + 1;
  }
  return best;
}

}  // namespace

void FrequencyTable::add(const RecordView& r) {
  ++total_;
  if (!r.given.empty()) ++counts_[key(Field::kGiven, firstToken(r.given))];
  if (!r.family.empty()) ++counts_[key(Field::kFamily, r.family)];
  if (!r.city.empty()) ++counts_[key(Field::kCity, r.city)];
  if (!r.postcode.empty()) ++counts_[key(Field::kPostcode, r.postcode)];
}

void FrequencyTable::remove(const RecordView& r) {
  if (total_ > 0) --total_;
  auto dec = [&](Field f, std::string_view v) {
    if (v.empty()) return;
    auto it = counts_.find(key(f, v));
    if (it != counts_.end() && --it->second == 0) counts_.erase(it);
  };
  dec(Field::kGiven, firstToken(r.given));
  dec(Field::kFamily, r.family);
  dec(Field::kCity, r.city);
  dec(Field::kPostcode, r.postcode);
}

double FrequencyTable::frequency(Field f, std::string_view value) const {
  if (total_ == 0) return 0;
  auto it = counts_.find(key(f, value));
  if (it == counts_.end()) return 0;
  return static_cast<double>(it->second) / static_cast<double>(total_);
}

size_t FrequencyTable::memoryBytes() const {
  // Node-based map: bucket pointer plus a node holding next pointer, key, value and hash.
  return counts_.bucket_count() * sizeof(void*) + counts_.size() * 32;
}

uint64_t FrequencyTable::key(Field f, std::string_view value) {
  return hash64(value, 1469598103934665603ULL ^ (static_cast<uint64_t>(f) + 1) * 0x9E3779B97F4A7C15ULL);
}

ComparisonVector compareRecords(const RecordView& a, const RecordView& b, const MatchConfig& c) {
  ComparisonVector v;
  auto& lv = v.level;
  lv[size_t(Field::kGiven)] = givenLevel(a.given, b.given, a.givenCode, b.givenCode, a.givenCanon, b.givenCanon);
  lv[size_t(Field::kFamily)] = familyLevel(a.family, b.family, a.familyCode, b.familyCode);
  const uint8_t givenDisagree = 4, familyDisagree = 4;
  if ((lv[size_t(Field::kGiven)] == givenDisagree || lv[size_t(Field::kFamily)] == familyDisagree) &&
      !a.given.empty() && !a.family.empty() && !b.given.empty() && !b.family.empty()) {
    uint8_t sg = givenLevel(a.given, b.family, a.givenCode, b.familyCode, 0, 0);
    uint8_t sf = familyLevel(a.family, b.given, a.familyCode, b.givenCode);
    double direct = c.weight(Field::kGiven, lv[size_t(Field::kGiven)]) +
                    c.weight(Field::kFamily, lv[size_t(Field::kFamily)]);
    double swapped = c.weight(Field::kGiven, sg) + c.weight(Field::kFamily, sf);
    // A swap explains the data only when both crossed names agree closely.
    if (sg <= 2 && sf <= 2 && swapped > direct) {
      lv[size_t(Field::kGiven)] = sg;
      lv[size_t(Field::kFamily)] = sf;
      v.swappedNames = true;
    }
  }
  lv[size_t(Field::kBirthDate)] = birthDateLevel(a.birthDate, b.birthDate);
  lv[size_t(Field::kSex)] = (a.sex == 0 || b.sex == 0) ? kNullLevel : (a.sex == b.sex ? L(0) : L(1));
  lv[size_t(Field::kPhone)] = anyEqualLevel(a.phones, b.phones);
  lv[size_t(Field::kEmail)] = anyEqualLevel(a.emails, b.emails);
  lv[size_t(Field::kAddress)] = addressLevel(a.address, b.address);
  lv[size_t(Field::kCity)] = cityLevel(a.city, b.city);
  lv[size_t(Field::kPostcode)] = postcodeLevel(a.postcode, b.postcode);
  lv[size_t(Field::kState)] = exactLevel(a.state, b.state);
  lv[size_t(Field::kIdentifier)] = identifierLevel(a.identifiers, b.identifiers);
  return v;
}

double weightToProbability(double weight, const MatchConfig& c) {
  double x = weight + c.priorLogOdds();
  if (x > 60) return 1.0;
  if (x < -60) return 0.0;
  return 1.0 / (1.0 + std::exp2(-x));
}

uint8_t hardNegativeRules(const ComparisonVector& v, const RecordView& a, const RecordView& b,
                          const MatchConfig& c) {
  const auto& lv = v.level;
  uint8_t given = lv[size_t(Field::kGiven)], family = lv[size_t(Field::kFamily)];
  uint8_t dob = lv[size_t(Field::kBirthDate)], phone = lv[size_t(Field::kPhone)];
  uint8_t address = lv[size_t(Field::kAddress)];
  uint8_t rules = kHardNegativeNone;
  bool sharedHome = phone == 0 || address == 0 || address == 1;
  // Given names count as different from "jw80OrPhonetic" on: twins and spouses often have
  // similar names (Daniel / Danielle), and a sex disagreement settles a "jw92" one.
  const uint8_t sex = lv[size_t(Field::kSex)];
  bool givenDiffers = (given >= 3 && given != kNullLevel) || (given == 2 && sex == 1);
  if (family <= 2 && dob == 0 && sharedHome && givenDiffers) rules |= kHardNegativeTwins;
  // Juniors are often born 20 or 30 years later: one digit of the year apart, so any date level
  // counts once the years are far apart.
  if (given <= 2 && family <= 3 && dob != kNullLevel && dob != 0 &&
      yearsApart(a.birthDate, b.birthDate) >= c.parentChildYears) {
    rules |= kHardNegativeParentChild;
  }
  if (phone == 0 && givenDiffers && dob >= 2 && dob != kNullLevel) rules |= kHardNegativeSpouses;
  // Household-only evidence: family name, residence and phone are shared by a household; an
  // automatic link also needs the person's own given name and birth date to agree (at least
  // approximately), unless a person-level identifier does.
  bool personEvidence = given <= 2 && dob <= 1;
  if (!personEvidence) rules |= kHardNegativeHouseholdOnly;
  // The same person-level identifier (not a family-shared one such as a member id) is
  // stronger evidence than any of these patterns.
  if (rules != kHardNegativeNone && lv[size_t(Field::kIdentifier)] == 0 &&
      personIdentifierAgrees(a.identifiers, b.identifiers)) {
    rules = kHardNegativeNone;
  }
  return rules;
}

PairScore Scorer::scoreVector(const ComparisonVector& v, const RecordView& a) const {
  PairScore s;
  s.swappedNames = v.swappedNames;
  double total = 0;
  for (size_t i = 0; i < kFieldCount; ++i) {
    auto& fc = s.fields[i];
    fc.level = v.level[i];
    if (fc.level == kNullLevel) continue;
    const auto& fm = config_.fields[i];
    double w = fm.weights[fc.level];
    if (fc.level == 0 && fm.termFrequency && tf_ != nullptr &&
        tf_->total() >= config_.tfMinRecords) {
      std::string_view value;
      Field f = static_cast<Field>(i);
      if (f == Field::kGiven) value = firstToken(v.swappedNames ? a.family : a.given);
      else if (f == Field::kFamily) value = v.swappedNames ? a.given : a.family;
      else if (f == Field::kCity) value = a.city;
      else if (f == Field::kPostcode) value = a.postcode;
      double freq = tf_->frequency(f, value);
      if (freq > 0) {
        w = std::log2(fm.m[0] / std::max(freq, config_.tfFloor));
        fc.termFrequencyAdjusted = true;
      }
    }
    fc.weight = static_cast<float>(w);
    total += w;
  }
  // Address, city, postcode and state describe one residence and are strongly correlated:
  // their positive evidence together is capped (scaled down proportionally, so the
  // explanation still adds up).
  const Field location[] = {Field::kAddress, Field::kCity, Field::kPostcode, Field::kState};
  double positive = 0;
  for (Field f : location) positive += std::max(0.0f, s.fields[size_t(f)].weight);
  if (positive > config_.locationCap) {
    double scale = config_.locationCap / positive;
    for (Field f : location) {
      auto& fc = s.fields[size_t(f)];
      if (fc.weight > 0) {
        total -= fc.weight * (1 - scale);
        fc.weight = static_cast<float>(fc.weight * scale);
      }
    }
  }
  s.weight = total;
  s.probability = weightToProbability(total, config_);
  if (total >= config_.matchThreshold) s.decision = Decision::kMatch;
  else if (total >= config_.possibleThreshold) s.decision = Decision::kPossibleMatch;
  return s;
}

PairScore Scorer::score(const RecordView& a, const RecordView& b) const {
  ComparisonVector v = compareRecords(a, b, config_);
  PairScore s = scoreVector(v, a);
  s.hardNegatives = hardNegativeRules(v, a, b, config_);
  if (s.weight < config_.matchThreshold) s.hardNegatives &= uint8_t(~kHardNegativeHouseholdOnly);
  if (s.hardNegatives != kHardNegativeNone && s.decision == Decision::kMatch) {
    s.decision = Decision::kPossibleMatch;
  }
  return s;
}

std::string Scorer::explainJson(const PairScore& s) const {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("weight");
  w.Double(std::round(s.weight * 1000) / 1000);
  w.Key("probability");
  w.Double(std::round(s.probability * 1e6) / 1e6);
  w.Key("decision");
  w.String(decisionName(s.decision));
  w.Key("thresholds");
  w.StartObject();
  w.Key("match");
  w.Double(config_.matchThreshold);
  w.Key("possible");
  w.Double(config_.possibleThreshold);
  w.EndObject();
  w.Key("swappedNames");
  w.Bool(s.swappedNames);
  w.Key("hardNegatives");
  w.StartArray();
  if (s.hardNegatives & kHardNegativeTwins) w.String("twins");
  if (s.hardNegatives & kHardNegativeParentChild) w.String("parentChild");
  if (s.hardNegatives & kHardNegativeSpouses) w.String("spouses");
  if (s.hardNegatives & kHardNegativeHouseholdOnly) w.String("householdOnly");
  w.EndArray();
  w.Key("fields");
  w.StartArray();
  for (size_t i = 0; i < kFieldCount; ++i) {
    const auto& fc = s.fields[i];
    w.StartObject();
    w.Key("field");
    w.String(fieldName(static_cast<Field>(i)));
    w.Key("level");
    if (fc.level == kNullLevel) w.String("null");
    else w.String(levelNames(static_cast<Field>(i))[fc.level]);
    w.Key("weight");
    w.Double(std::round(fc.weight * 1000.0) / 1000.0);
    if (fc.termFrequencyAdjusted) {
      w.Key("termFrequency");
      w.Bool(true);
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace switchboard::mpi

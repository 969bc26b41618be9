// Loading, defaults and serialisation of the MPI matching model (conf/mpi.json).
// Thread-safety: MatchConfig is immutable once loaded.
#include "engine/mpi/match_config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

namespace switchboard::mpi {

const char* fieldName(Field f) {
  static const char* kNames[kFieldCount] = {"given",   "family",   "birthDate", "sex",
                                            "phone",   "email",    "address",   "city",
                                            "postcode", "state",   "identifier"};
  return kNames[static_cast<size_t>(f)];
}

const std::vector<std::string>& levelNames(Field f) {
  static const std::array<std::vector<std::string>, kFieldCount> kLevels = {{
      {"exact", "nickname", "jw92", "jw80OrPhonetic", "disagree"},
      {"exact", "part", "jw92", "jw80OrPhonetic", "disagree"},
      {"exact", "typoOrTransposed", "near", "disagree"},
      {"exact", "disagree"},
      {"exact", "disagree"},
      {"exact", "disagree"},
      {"exact", "jw90", "partial", "disagree"},
      {"exact", "jw90", "disagree"},
      {"exact", "oneEdit", "disagree"},
      {"exact", "disagree"},
      {"exact", "oneEdit", "disagree"},
  }};
  return kLevels[static_cast<size_t>(f)];
}

const char* decisionName(Decision d) {
  switch (d) {
    case Decision::kMatch:
      return "MATCH";
    case Decision::kPossibleMatch:
      return "POSSIBLE_MATCH";
    case Decision::kNoMatch:
      break;
  }
  return "NO_MATCH";
}

MatchConfig MatchConfig::defaults() {
  MatchConfig c;
  auto set = [&](Field f, std::vector<double> m, std::vector<double> u, bool tf) {
    auto& fm = c.fields[static_cast<size_t>(f)];
    fm.m = std::move(m);
    fm.u = std::move(u);
    fm.termFrequency = tf;
  };
  set(Field::kGiven, {0.85, 0.03, 0.05, 0.04, 0.03}, {0.01, 0.002, 0.005, 0.03, 0.953}, true);
  set(Field::kFamily, {0.85, 0.02, 0.06, 0.04, 0.03}, {0.005, 0.001, 0.003, 0.02, 0.971}, true);
  set(Field::kBirthDate, {0.85, 0.08, 0.03, 0.04}, {0.002, 0.005, 0.02, 0.973}, false);
  set(Field::kSex, {0.97, 0.03}, {0.5, 0.5}, false);
  set(Field::kPhone, {0.8, 0.2}, {0.005, 0.995}, false);
  set(Field::kEmail, {0.8, 0.2}, {0.0005, 0.9995}, false);
  set(Field::kAddress, {0.75, 0.1, 0.07, 0.08}, {0.001, 0.002, 0.05, 0.947}, false);
  set(Field::kCity, {0.85, 0.07, 0.08}, {0.01, 0.005, 0.985}, true);
  set(Field::kPostcode, {0.85, 0.07, 0.08}, {0.01, 0.05, 0.94}, true);
  set(Field::kState, {0.9, 0.1}, {0.3, 0.7}, false);
  set(Field::kIdentifier, {0.85, 0.08, 0.07}, {0.0001, 0.0005, 0.9994}, false);
  c.deriveWeights();
  return c;
}

void MatchConfig::deriveWeights() {
  for (auto& fm : fields) {
    fm.weights.resize(fm.m.size());
    for (size_t i = 0; i < fm.m.size(); ++i) {
      fm.weights[i] = std::log2(std::max(fm.m[i], 1e-12) / std::max(fm.u[i], 1e-12));
    }
  }
}

double MatchConfig::priorLogOdds() const { return std::log2(lambda / (1.0 - lambda)); }

namespace {

Result<double> number(const rapidjson::Value& v, const std::string& path) {
  if (!v.IsNumber()) return fail(ErrorCode::kValue, "expected a number", path);
  return v.GetDouble();
}

Result<double> probability(const rapidjson::Value& v, const std::string& path) {
  auto d = number(v, path);
  if (!d) return d;
  if (!(*d > 0.0 && *d <= 1.0)) return fail(ErrorCode::kValue, "expected a probability in (0,1]", path);
  return d;
}

}  // namespace

Result<MatchConfig> MatchConfig::fromJson(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError()) {
    return fail(ErrorCode::kStructure,
                std::string("mpi config is not JSON: ") + rapidjson::GetParseError_En(doc.GetParseError()),
                "offset " + std::to_string(doc.GetErrorOffset()));
  }
  if (!doc.IsObject()) return fail(ErrorCode::kStructure, "mpi config must be an object", "$");
  MatchConfig c = defaults();
  for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
    std::string key = it->name.GetString();
    const auto& v = it->value;
    std::string path = "$." + key;
    if (key == "thresholds") {
      if (!v.IsObject()) return fail(ErrorCode::kValue, "expected an object", path);
      for (auto t = v.MemberBegin(); t != v.MemberEnd(); ++t) {
        std::string tk = t->name.GetString();
        auto d = number(t->value, path + "." + tk);
        if (!d) return std::unexpected(d.error());
        if (tk == "match") c.matchThreshold = *d;
        else if (tk == "possible") c.possibleThreshold = *d;
        else return fail(ErrorCode::kValue, "unknown key (expected match, possible)", path + "." + tk);
      }
    } else if (key == "lambda") {
      auto d = probability(v, path);
      if (!d) return std::unexpected(d.error());
      c.lambda = std::min(*d, 0.999999);
    } else if (key == "termFrequencyFloor") {
      auto d = probability(v, path);
      if (!d) return std::unexpected(d.error());
      c.tfFloor = *d;
    } else if (key == "termFrequencyMinRecords") {
      if (!v.IsUint64()) return fail(ErrorCode::kValue, "expected a non-negative integer", path);
      c.tfMinRecords = v.GetUint64();
    } else if (key == "locationCap") {
      auto d = number(v, path);
      if (!d) return std::unexpected(d.error());
      if (*d <= 0) return fail(ErrorCode::kValue, "expected a positive number of bits", path);
      c.locationCap = *d;
    } else if (key == "parentChildYears") {
      if (!v.IsInt() || v.GetInt() < 1) return fail(ErrorCode::kValue, "expected a positive integer", path);
      c.parentChildYears = v.GetInt();
    } else if (key == "maxBlockSize") {
      if (!v.IsUint() || v.GetUint() < 2) return fail(ErrorCode::kValue, "expected an integer >= 2", path);
      c.maxBlockSize = v.GetUint();
    } else if (key == "defaultCallingCode") {
      if (!v.IsString()) return fail(ErrorCode::kValue, "expected a string of digits", path);
      c.defaultCallingCode = v.GetString();
      for (char ch : c.defaultCallingCode)
        if (ch < '0' || ch > '9') return fail(ErrorCode::kValue, "expected a string of digits", path);
    } else if (key == "gmailDotsOptional") {
      if (!v.IsBool()) return fail(ErrorCode::kValue, "expected a boolean", path);
      c.gmailDotsOptional = v.GetBool();
    } else if (key == "familySharedIdentifierSystems") {
      if (!v.IsArray()) return fail(ErrorCode::kValue, "expected an array of strings", path);
      c.familySharedIdentifierSystems.clear();
      for (const auto& s : v.GetArray()) {
        if (!s.IsString()) return fail(ErrorCode::kValue, "expected a string", path);
        c.familySharedIdentifierSystems.emplace_back(s.GetString());
      }
    } else if (key == "learning") {
      if (!v.IsObject()) return fail(ErrorCode::kValue, "expected an object", path);
      for (auto t = v.MemberBegin(); t != v.MemberEnd(); ++t) {
        std::string tk = t->name.GetString();
        if (tk != "priorStrength") return fail(ErrorCode::kValue, "unknown key", path + "." + tk);
        auto d = number(t->value, path + "." + tk);
        if (!d) return std::unexpected(d.error());
        c.learningPriorStrength = *d;
      }
    } else if (key == "nicknames") {
      if (!v.IsObject()) return fail(ErrorCode::kValue, "expected an object of name -> [variants]", path);
      for (auto t = v.MemberBegin(); t != v.MemberEnd(); ++t) {
        std::string canonical = t->name.GetString();
        if (!t->value.IsArray()) return fail(ErrorCode::kValue, "expected an array of strings", path + "." + canonical);
        std::vector<std::string> variants;
        for (const auto& s : t->value.GetArray()) {
          if (!s.IsString()) return fail(ErrorCode::kValue, "expected a string", path + "." + canonical);
          variants.emplace_back(s.GetString());
        }
        c.nicknames.add(canonical, variants);
        c.extraNicknames.emplace_back(canonical, variants);
      }
    } else if (key == "fields") {
      if (!v.IsObject()) return fail(ErrorCode::kValue, "expected an object", path);
      for (auto t = v.MemberBegin(); t != v.MemberEnd(); ++t) {
        std::string fk = t->name.GetString();
        std::string fpath = path + "." + fk;
        size_t fi = kFieldCount;
        for (size_t i = 0; i < kFieldCount; ++i)
          if (fk == fieldName(static_cast<Field>(i))) fi = i;
        if (fi == kFieldCount) return fail(ErrorCode::kValue, "unknown field", fpath);
        if (!t->value.IsObject()) return fail(ErrorCode::kValue, "expected an object", fpath);
        auto& fm = c.fields[fi];
        const auto& names = levelNames(static_cast<Field>(fi));
        for (auto p = t->value.MemberBegin(); p != t->value.MemberEnd(); ++p) {
          std::string pk = p->name.GetString();
          if (pk == "termFrequency") {
            if (!p->value.IsBool()) return fail(ErrorCode::kValue, "expected a boolean", fpath + ".termFrequency");
            fm.termFrequency = p->value.GetBool();
          } else if (pk == "levels") {
            if (!p->value.IsObject()) return fail(ErrorCode::kValue, "expected an object", fpath + ".levels");
            for (auto l = p->value.MemberBegin(); l != p->value.MemberEnd(); ++l) {
              std::string lk = l->name.GetString();
              std::string lpath = fpath + ".levels." + lk;
              size_t li = names.size();
              for (size_t i = 0; i < names.size(); ++i)
                if (names[i] == lk) li = i;
              if (li == names.size()) return fail(ErrorCode::kValue, "unknown level", lpath);
              if (!l->value.IsObject() || !l->value.HasMember("m") || !l->value.HasMember("u") ||
                  l->value.MemberCount() != 2) {
                return fail(ErrorCode::kValue, "expected {\"m\": p, \"u\": p}", lpath);
              }
              auto m = probability(l->value["m"], lpath + ".m");
              if (!m) return std::unexpected(m.error());
              auto u = probability(l->value["u"], lpath + ".u");
              if (!u) return std::unexpected(u.error());
              fm.m[li] = *m;
              fm.u[li] = *u;
            }
          } else {
            return fail(ErrorCode::kValue, "unknown key (expected termFrequency, levels)", fpath + "." + pk);
          }
        }
      }
    } else if (key == "$comment" || key == "description") {
      // documentation only
    } else {
      return fail(ErrorCode::kValue, "unknown key", path);
    }
  }
  if (c.possibleThreshold > c.matchThreshold) {
    return fail(ErrorCode::kValue, "thresholds.possible must not exceed thresholds.match", "$.thresholds");
  }
  c.deriveWeights();
  return c;
}

Result<MatchConfig> MatchConfig::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::kNotFound, "cannot read mpi config", path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = fromJson(ss.str());
  if (!c) {
    Error e = c.error();
    e.location = path + ": " + e.location;
    return std::unexpected(e);
  }
  return c;
}

std::string MatchConfig::toJson() const {
  rapidjson::StringBuffer sb;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
  w.SetIndent(' ', 2);
  w.SetFormatOptions(rapidjson::kFormatSingleLineArray);
  w.StartObject();
  w.Key("thresholds");
  w.StartObject();
  w.Key("match");
  w.Double(std::round(matchThreshold * 1000) / 1000);
  w.Key("possible");
  w.Double(std::round(possibleThreshold * 1000) / 1000);
  w.EndObject();
  w.Key("lambda");
  w.Double(lambda);
  w.Key("termFrequencyFloor");
  w.Double(tfFloor);
  w.Key("termFrequencyMinRecords");
  w.Uint64(tfMinRecords);
  w.Key("locationCap");
  w.Double(locationCap);
  w.Key("parentChildYears");
  w.Int(parentChildYears);
  w.Key("maxBlockSize");
  w.Uint(maxBlockSize);
  w.Key("defaultCallingCode");
  w.String(defaultCallingCode);
  w.Key("gmailDotsOptional");
  w.Bool(gmailDotsOptional);
  w.Key("familySharedIdentifierSystems");
  w.StartArray();
  for (const auto& s : familySharedIdentifierSystems) w.String(s);
  w.EndArray();
  w.Key("learning");
  w.StartObject();
  w.Key("priorStrength");
  w.Double(learningPriorStrength);
  w.EndObject();
  w.Key("nicknames");
  w.StartObject();
  for (const auto& [canonical, variants] : extraNicknames) {
    w.Key(canonical);
    w.StartArray();
    for (const auto& v : variants) w.String(v);
    w.EndArray();
  }
  w.EndObject();
  w.Key("fields");
  w.StartObject();
  for (size_t i = 0; i < kFieldCount; ++i) {
    const auto& fm = fields[i];
    w.Key(fieldName(static_cast<Field>(i)));
    w.StartObject();
    w.Key("termFrequency");
    w.Bool(fm.termFrequency);
    w.Key("levels");
    w.StartObject();
    const auto& names = levelNames(static_cast<Field>(i));
    for (size_t l = 0; l < names.size(); ++l) {
      w.Key(names[l]);
      w.StartObject();
      w.Key("m");
      w.Double(std::max(1e-6, std::round(fm.m[l] * 1e6) / 1e6));
      w.Key("u");
      w.Double(std::max(1e-7, std::round(fm.u[l] * 1e7) / 1e7));
      w.EndObject();
    }
    w.EndObject();
    w.EndObject();
  }
  w.EndObject();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize()) + "\n";
}

}  // namespace switchboard::mpi

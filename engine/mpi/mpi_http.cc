// MPI HTTP handlers. Thread-safety: see mpi_http.h.
#include "engine/mpi/mpi_http.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "engine/core/connector.h"

namespace switchboard::mpi {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;
constexpr const char* kFhirJson = "application/fhir+json";
constexpr const char* kMatchGradeUrl = "http://hl7.org/fhir/StructureDefinition/match-grade";

core::HttpResponse error(const Error& e, int status = 0) {
  core::HttpResponse r =
      core::HttpResponse::json(status ? status : httpStatusFor(e), core::operationOutcomeJson(e));
  r.contentType = kFhirJson;
  return r;
}

core::HttpResponse error(ErrorCode code, std::string msg, std::string loc = {}, int status = 0) {
  return error(Error(code, std::move(msg), std::move(loc)), status);
}

core::HttpResponse methodNotAllowed(const char* allow) {
  auto r =
      error(ErrorCode::kNotSupported, std::string("method not allowed; use ") + allow, "", 405);
  r.headers.push_back({"Allow", allow});
  return r;
}

// JSON bodies: application/json or application/fhir+json (parameters allowed), or no type.
bool jsonMediaType(const core::HttpRequest& req) {
  const std::string* ct = req.header("Content-Type");
  if (!ct || ct->empty()) return true;
  std::string_view t(*ct);
  t = t.substr(0, t.find(';'));
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  return core::equalsIgnoreCase(t, "application/json") ||
         core::equalsIgnoreCase(t, "application/fhir+json");
}

void raw(Writer& w, const std::string& json) {
  if (json.empty()) {
    w.Null();
    return;
  }
  w.RawValue(json.c_str(), json.size(), rapidjson::kObjectType);
}

void reviewItemJson(Writer& w, const ReviewItem& r, bool withContributions) {
  w.StartObject();
  w.Key("id");
  w.Int64(r.id);
  w.Key("sourceId");
  w.String(r.sourceId);
  w.Key("candidateId");
  w.String(r.candidateId);
  w.Key("score");
  w.Double(r.score);
  w.Key("weight");
  w.Double(r.weight);
  w.Key("status");
  w.String(reviewStatusName(r.status));
  w.Key("createdAt");
  w.Int64(r.createdAt);
  if (r.status != ReviewStatus::kOpen) {
    w.Key("reviewer");
    w.String(r.reviewer);
    w.Key("reason");
    w.String(r.reason);
    w.Key("decidedAt");
    w.Int64(r.decidedAt);
  }
  if (r.mergeEventId != 0) {
    w.Key("mergeEventId");
    w.Int64(r.mergeEventId);
  }
  if (withContributions) {
    w.Key("contributions");
    raw(w, r.contributions);
  }
  w.EndObject();
}

void linkJson(Writer& w, const MpiLink& l) {
  w.StartObject();
  w.Key("sourceId");
  w.String(l.sourceId);
  w.Key("goldenId");
  w.String(l.goldenId);
  w.Key("matchResult");
  w.String(decisionName(l.result));
  w.Key("linkSource");
  w.String(linkOriginName(l.origin));
  w.Key("score");
  w.Double(l.score);
  w.Key("weight");
  w.Double(l.weight);
  if (l.origin == LinkOrigin::kManual) {
    w.Key("reviewer");
    w.String(l.reviewer);
    w.Key("reason");
    w.String(l.reason);
  }
  w.Key("updatedAt");
  w.Int64(l.updatedAt);
  w.EndObject();
}

core::HttpResponse ok(rapidjson::StringBuffer& sb, const char* type = "application/json") {
  core::HttpResponse r = core::HttpResponse::json(200, std::string(sb.GetString(), sb.GetSize()));
  r.contentType = type;
  return r;
}

std::optional<int64_t> parseId(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v <= 0) return std::nullopt;
  return v;
}

std::string baseUrl(const core::HttpRequest& req) {
  if (req.host.empty()) return "";
  return (req.scheme.empty() ? std::string("http") : req.scheme) + "://" + req.host + "/fhir/";
}

void decisionOutcomeJson(Writer& w, const DecisionOutcome& o) {
  w.StartObject();
  w.Key("item");
  reviewItemJson(w, o.item, false);
  w.Key("merge");
  if (o.merge) {
    w.StartObject();
    w.Key("id");
    w.Int64(o.merge->id);
    w.Key("from");
    w.String(o.merge->fromGolden);
    w.Key("into");
    w.String(o.merge->intoGolden);
    if (o.merge->undoneAt) {
      w.Key("undoneAt");
      w.Int64(o.merge->undoneAt);
    }
    w.EndObject();
  } else {
    w.Null();
  }
  // The FHIR transaction Bundle to send to the EHR (null when nothing changed there).
  w.Key("bundle");
  raw(w, o.bundle);
  w.EndObject();
}

}  // namespace

int httpStatusFor(const Error& e) {
  switch (e.code) {
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kConflict:
    case ErrorCode::kDuplicate:
      return 409;
    case ErrorCode::kSecurity:
      return 401;
    case ErrorCode::kNotSupported:
      return 405;
    case ErrorCode::kTransient:
    case ErrorCode::kTimeout:
    case ErrorCode::kThrottled:
      return 503;
    case ErrorCode::kException:
      return 500;
    default:
      return 400;  // invalid, structure, required, value, invariant, too-long, code
  }
}

core::HttpResponse handlePatientMatch(MpiService& mpi, const core::HttpRequest& req) {
  if (req.method != "POST") return methodNotAllowed("POST");
  if (!jsonMediaType(req)) {
    return error(ErrorCode::kNotSupported, "expected application/fhir+json", "", 415);
  }
  rapidjson::Document d;
  d.Parse(req.body.c_str(), req.body.size());
  if (d.HasParseError() || !d.IsObject()) {
    return error(ErrorCode::kStructure, "body is not a JSON object", "$");
  }
  if (!d.HasMember("resourceType") || !d["resourceType"].IsString() ||
      std::string_view(d["resourceType"].GetString()) != "Parameters") {
    return error(ErrorCode::kInvalid, "body must be a Parameters resource",
                 "Parameters.resourceType");
  }
  const rapidjson::Value* patient = nullptr;
  bool onlyCertain = false;
  int64_t count = 10;
  if (d.HasMember("parameter")) {
    if (!d["parameter"].IsArray()) {
      return error(ErrorCode::kStructure, "parameter must be an array", "Parameters.parameter");
    }
    for (const auto& p : d["parameter"].GetArray()) {
      if (!p.IsObject() || !p.HasMember("name") || !p["name"].IsString()) {
        return error(ErrorCode::kStructure, "each parameter needs a name",
                     "Parameters.parameter.name");
      }
      std::string_view name = p["name"].GetString();
      std::string loc = "Parameters.parameter.where(name='" + std::string(name) + "')";
      if (name == "resource") {
        if (!p.HasMember("resource") || !p["resource"].IsObject()) {
          return error(ErrorCode::kRequired, "resource parameter needs a resource", loc);
        }
        patient = &p["resource"];
      } else if (name == "onlyCertainMatches") {
        if (!p.HasMember("valueBoolean") || !p["valueBoolean"].IsBool()) {
          return error(ErrorCode::kValue, "onlyCertainMatches needs valueBoolean", loc);
        }
        onlyCertain = p["valueBoolean"].GetBool();
      } else if (name == "count") {
        if (!p.HasMember("valueInteger") || !p["valueInteger"].IsInt() ||
            p["valueInteger"].GetInt() < 1) {
          return error(ErrorCode::kValue, "count needs a positive valueInteger", loc);
        }
        count = std::min(p["valueInteger"].GetInt(), 100);
      } else {
        return error(ErrorCode::kNotSupported,
                     "unknown parameter '" + std::string(name) + "' for Patient/$match", loc, 400);
      }
    }
  }
  if (!patient) {
    return error(ErrorCode::kRequired, "the resource parameter (a Patient) is required",
                 "Parameters.parameter");
  }
  if (!patient->HasMember("resourceType") || !(*patient)["resourceType"].IsString() ||
      std::string_view((*patient)["resourceType"].GetString()) != "Patient") {
    return error(ErrorCode::kInvalid, "the resource parameter must be a Patient",
                 "Parameters.parameter.where(name='resource').resource");
  }
  rapidjson::StringBuffer pb;
  Writer pw(pb);
  patient->Accept(pw);
  auto matches = mpi.match(std::string_view(pb.GetString(), pb.GetSize()), onlyCertain,
                           static_cast<size_t>(count));
  if (!matches) return error(matches.error());
  const std::string base = baseUrl(req);
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  w.Key("resourceType");
  w.String("Bundle");
  w.Key("type");
  w.String("searchset");
  w.Key("total");
  w.Uint64(matches->size());
  w.Key("entry");
  w.StartArray();
  for (const auto& m : *matches) {
    w.StartObject();
    w.Key("fullUrl");
    w.String(base + "Patient/" + m.goldenId);
    w.Key("resource");
    raw(w, m.resource);
    w.Key("search");
    w.StartObject();
    w.Key("extension");
    w.StartArray();
    w.StartObject();
    w.Key("url");
    w.String(kMatchGradeUrl);
    w.Key("valueCode");
    w.String(m.grade);
    w.EndObject();
    w.EndArray();
    w.Key("mode");
    w.String("match");
    w.Key("score");
    w.Double(std::round(m.score.probability * 1e6) / 1e6);
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return ok(sb, kFhirJson);
}

core::HttpResponse handleReviewList(MpiService& mpi, const core::HttpRequest& req) {
  if (req.method != "GET") return methodNotAllowed("GET");
  ReviewFilter f;
  f.status = ReviewStatus::kOpen;
  for (const auto& [k, v] : core::parseForm(req.query)) {
    if (k == "status") {
      if (v == "all") {
        f.status.reset();
      } else if (auto s = parseReviewStatus(v)) {
        f.status = *s;
      } else {
        return error(ErrorCode::kValue, "status must be open, merged, not-duplicate or all",
                     "status");
      }
    } else if (k == "minScore") {
      char* end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      if (v.empty() || end != v.c_str() + v.size() || !(d >= 0 && d <= 1)) {
        return error(ErrorCode::kValue, "minScore must be a number between 0 and 1", "minScore");
      }
      f.minScore = d;
    } else if (k == "limit") {
      auto n = parseId(v);
      if (!n || *n > 500) {
        return error(ErrorCode::kValue, "limit must be an integer from 1 to 500", "limit");
      }
      f.limit = static_cast<int>(*n);
    } else if (k == "before") {
      auto n = parseId(v);
      if (!n) return error(ErrorCode::kValue, "before must be a review item id", "before");
      f.afterId = *n;
    } else {
      return error(ErrorCode::kNotSupported, "unknown query parameter '" + k + "'", k, 400);
    }
  }
  auto items = mpi.reviews(f);
  if (!items) return error(items.error());
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  w.Key("items");
  w.StartArray();
  for (const auto& r : *items) reviewItemJson(w, r, false);
  w.EndArray();
  // Cursor for the next page (pass as before=), null on the last page.
  w.Key("next");
  if (static_cast<int>(items->size()) == f.limit && !items->empty()) {
    w.String(std::to_string(items->back().id));
  } else {
    w.Null();
  }
  w.EndObject();
  return ok(sb);
}

core::HttpResponse handleReviewGet(MpiService& mpi, const std::string& idText) {
  auto id = parseId(idText);
  if (!id) return error(ErrorCode::kNotFound, "no review item '" + idText + "'");
  auto d = mpi.review(*id);
  if (!d) return error(d.error());
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  w.Key("item");
  reviewItemJson(w, d->item, true);
  for (auto [key, side] : {std::pair{"left", &d->left}, {"right", &d->right}}) {
    w.Key(key);
    w.StartObject();
    w.Key("sourceId");
    w.String(side->sourceId);
    w.Key("goldenId");
    w.String(side->goldenId);
    w.Key("resource");
    raw(w, side->resource);
    w.EndObject();
  }
  w.Key("comparison");
  w.RawValue(d->comparison.c_str(), d->comparison.size(), rapidjson::kArrayType);
  w.EndObject();
  return ok(sb);
}

core::HttpResponse handleReviewDecision(MpiService& mpi, const core::HttpRequest& req,
                                        const std::string& idText, const std::string& reviewer) {
  if (req.method != "POST") return methodNotAllowed("POST");
  if (reviewer.empty()) return error(ErrorCode::kSecurity, "no reviewer identity", "", 401);
  if (!jsonMediaType(req)) {
    return error(ErrorCode::kNotSupported, "expected application/json", "", 415);
  }
  auto id = parseId(idText);
  if (!id) return error(ErrorCode::kNotFound, "no review item '" + idText + "'");
  rapidjson::Document d;
  d.Parse(req.body.c_str(), req.body.size());
  if (d.HasParseError() || !d.IsObject()) {
    return error(ErrorCode::kStructure, "body is not a JSON object", "$");
  }
  std::optional<ReviewVerdict> verdict;
  std::string reason;
  for (const auto& m : d.GetObject()) {
    std::string_view k(m.name.GetString(), m.name.GetStringLength());
    if (k == "decision") {
      std::string v = m.value.IsString() ? m.value.GetString() : "";
      if (v == "merge")
        verdict = ReviewVerdict::kMerge;
      else if (v == "not-duplicate")
        verdict = ReviewVerdict::kNotDuplicate;
      else
        return error(ErrorCode::kValue, "decision must be merge or not-duplicate", "$.decision");
    } else if (k == "reason") {
      if (!m.value.IsString())
        return error(ErrorCode::kValue, "reason must be a string", "$.reason");
      reason.assign(m.value.GetString(), m.value.GetStringLength());
    } else {
      return error(ErrorCode::kStructure, "unknown member '" + std::string(k) + "'",
                   "$." + std::string(k));
    }
  }
  if (!verdict) return error(ErrorCode::kRequired, "decision is required", "$.decision");
  auto out = mpi.decide(*id, *verdict, reviewer, reason);
  if (!out) return error(out.error());
  rapidjson::StringBuffer sb;
  Writer w(sb);
  decisionOutcomeJson(w, *out);
  return ok(sb);
}

core::HttpResponse handleReviewUndo(MpiService& mpi, const core::HttpRequest& req,
                                    const std::string& idText, const std::string& reviewer) {
  if (req.method != "POST") return methodNotAllowed("POST");
  if (reviewer.empty()) return error(ErrorCode::kSecurity, "no reviewer identity", "", 401);
  auto id = parseId(idText);
  if (!id) return error(ErrorCode::kNotFound, "no review item '" + idText + "'");
  std::string reason;
  if (!req.body.empty()) {
    if (!jsonMediaType(req)) {
      return error(ErrorCode::kNotSupported, "expected application/json", "", 415);
    }
    rapidjson::Document d;
    d.Parse(req.body.c_str(), req.body.size());
    if (d.HasParseError() || !d.IsObject()) {
      return error(ErrorCode::kStructure, "body is not a JSON object", "$");
    }
    for (const auto& m : d.GetObject()) {
      std::string_view k(m.name.GetString(), m.name.GetStringLength());
      if (k != "reason") {
        return error(ErrorCode::kStructure, "unknown member '" + std::string(k) + "'",
                     "$." + std::string(k));
      }
      if (!m.value.IsString())
        return error(ErrorCode::kValue, "reason must be a string", "$.reason");
      reason.assign(m.value.GetString(), m.value.GetStringLength());
    }
  }
  auto out = mpi.undo(*id, reviewer, reason);
  if (!out) return error(out.error());
  rapidjson::StringBuffer sb;
  Writer w(sb);
  decisionOutcomeJson(w, *out);
  return ok(sb);
}

core::HttpResponse handleGoldenGet(MpiService& mpi, const std::string& id) {
  auto g = mpi.golden(id);
  if (!g) return error(g.error());
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  w.Key("id");
  w.String(g->record.id);
  w.Key("active");
  w.Bool(g->record.active);
  w.Key("replacedBy");
  if (g->record.replacedBy.empty())
    w.Null();
  else
    w.String(g->record.replacedBy);
  w.Key("resource");
  raw(w, g->record.resource);
  w.Key("provenance");
  raw(w, g->record.provenance);
  w.Key("links");
  w.StartArray();
  for (const auto& l : g->links) linkJson(w, l);
  w.EndArray();
  w.EndObject();
  return ok(sb);
}

std::optional<core::HttpResponse> routeMpiHttp(MpiService& mpi, const core::HttpRequest& req,
                                               const std::string& reviewer) {
  std::string_view path = req.path;
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (path == "/fhir/Patient/$match") return handlePatientMatch(mpi, req);
  constexpr std::string_view kReviews = "/api/mpi/reviews";
  constexpr std::string_view kGolden = "/api/mpi/golden/";
  if (path == kReviews) return handleReviewList(mpi, req);
  if (path.starts_with(kGolden) && path.size() > kGolden.size()) {
    std::string id(path.substr(kGolden.size()));
    if (id.find('/') != std::string::npos) return std::nullopt;
    if (req.method != "GET") return methodNotAllowed("GET");
    return handleGoldenGet(mpi, id);
  }
  if (!path.starts_with(kReviews) || path[kReviews.size()] != '/') return std::nullopt;
  std::string_view rest = path.substr(kReviews.size() + 1);
  size_t slash = rest.find('/');
  std::string id(rest.substr(0, slash));
  if (slash == std::string_view::npos) {
    if (req.method != "GET") return methodNotAllowed("GET");
    return handleReviewGet(mpi, id);
  }
  std::string_view action = rest.substr(slash + 1);
  if (action == "decision") return handleReviewDecision(mpi, req, id, reviewer);
  if (action == "undo") return handleReviewUndo(mpi, req, id, reviewer);
  return std::nullopt;
}

}  // namespace switchboard::mpi

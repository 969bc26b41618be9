// MpiService: linking, review decisions, merges and undo over MpiStore and MpiIndex.
// Thread-safety: see mpi_service.h.
#include "engine/mpi/mpi_service.h"

#include <algorithm>
#include <cstdio>
#include <mutex>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "engine/mpi/json_arena.h"

namespace switchboard::mpi {
namespace {

using rapidjson::Document;
using rapidjson::Value;

std::string write(const Value& v) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  v.Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}

Value str(std::string_view s, Document::AllocatorType& a) {
  return Value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
}

std::string getStr(const Value& o, const char* k) {
  if (!o.IsObject()) return {};
  auto it = o.FindMember(k);
  return it != o.MemberEnd() && it->value.IsString()
             ? std::string(it->value.GetString(), it->value.GetStringLength())
             : std::string();
}

Value linkJson(const MpiLink& l, Document::AllocatorType& a) {
  Value o(rapidjson::kObjectType);
  o.AddMember("sourceId", str(l.sourceId, a), a);
  o.AddMember("goldenId", str(l.goldenId, a), a);
  o.AddMember("matchResult", str(decisionName(l.result), a), a);
  o.AddMember("linkSource", str(linkOriginName(l.origin), a), a);
  o.AddMember("score", l.score, a);
  o.AddMember("weight", l.weight, a);
  o.AddMember("contributions", str(l.contributions, a), a);
  o.AddMember("reviewer", str(l.reviewer, a), a);
  o.AddMember("reason", str(l.reason, a), a);
  o.AddMember("updatedAt", static_cast<int64_t>(l.updatedAt), a);
  return o;
}

MpiLink linkFromJson(const Value& o) {
  MpiLink l;
  l.sourceId = getStr(o, "sourceId");
  l.goldenId = getStr(o, "goldenId");
  l.result = parseDecision(getStr(o, "matchResult")).value_or(Decision::kNoMatch);
  l.origin = parseLinkOrigin(getStr(o, "linkSource")).value_or(LinkOrigin::kAuto);
  l.score = o.HasMember("score") && o["score"].IsNumber() ? o["score"].GetDouble() : 0;
  l.weight = o.HasMember("weight") && o["weight"].IsNumber() ? o["weight"].GetDouble() : 0;
  l.contributions = getStr(o, "contributions");
  l.reviewer = getStr(o, "reviewer");
  l.reason = getStr(o, "reason");
  l.updatedAt =
      o.HasMember("updatedAt") && o["updatedAt"].IsInt64() ? o["updatedAt"].GetInt64() : 0;
  return l;
}

Value goldenJson(const GoldenRecord& g, Document::AllocatorType& a) {
  Value o(rapidjson::kObjectType);
  o.AddMember("id", str(g.id, a), a);
  o.AddMember("active", g.active, a);
  o.AddMember("replacedBy", str(g.replacedBy, a), a);
  o.AddMember("resource", str(g.resource, a), a);
  o.AddMember("provenance", str(g.provenance, a), a);
  o.AddMember("createdAt", static_cast<int64_t>(g.createdAt), a);
  o.AddMember("updatedAt", static_cast<int64_t>(g.updatedAt), a);
  return o;
}

GoldenRecord goldenFromJson(const Value& o) {
  GoldenRecord g;
  g.id = getStr(o, "id");
  g.active = o.HasMember("active") && o["active"].IsBool() && o["active"].GetBool();
  g.replacedBy = getStr(o, "replacedBy");
  g.resource = getStr(o, "resource");
  g.provenance = getStr(o, "provenance");
  g.createdAt =
      o.HasMember("createdAt") && o["createdAt"].IsInt64() ? o["createdAt"].GetInt64() : 0;
  g.updatedAt =
      o.HasMember("updatedAt") && o["updatedAt"].IsInt64() ? o["updatedAt"].GetInt64() : 0;
  return g;
}

// The normalised form kept in mpi_source_patients.normalized (text fields only).
std::string normalizedJson(const NormalizedRecord& n) {
  JsonArena arena;
  Document d = arena.document();
  d.SetObject();
  auto& a = d.GetAllocator();
  d.AddMember("given", str(n.given, a), a);
  d.AddMember("family", str(n.family, a), a);
  d.AddMember("birthDate", n.birthDate, a);
  d.AddMember("sex", str(n.sex ? std::string(1, n.sex) : "", a), a);
  d.AddMember("address", str(n.address, a), a);
  d.AddMember("city", str(n.city, a), a);
  d.AddMember("postcode", str(n.postcode, a), a);
  d.AddMember("state", str(n.state, a), a);
  std::string ids = n.identifiers;
  std::replace(ids.begin(), ids.end(), '\x1f', ' ');
  d.AddMember("identifiers", str(ids, a), a);
  return write(d);
}

// Replaces id, active and link of the Patient object d with the given values (added last).
void setIdActiveLinks(Document& d, const std::string& id, bool active,
                      const std::vector<std::pair<std::string, std::string>>& links) {
  auto& a = d.GetAllocator();
  d.RemoveMember("id");
  d.RemoveMember("active");
  d.RemoveMember("link");
  d.AddMember("id", str(id, a), a);
  d.AddMember("active", active, a);
  if (!links.empty()) {
    Value arr(rapidjson::kArrayType);
    for (const auto& [other, type] : links) {
      Value l(rapidjson::kObjectType), ref(rapidjson::kObjectType);
      ref.AddMember("reference", str("Patient/" + other, a), a);
      l.AddMember("other", ref, a);
      l.AddMember("type", str(type, a), a);
      arr.PushBack(l, a);
    }
    d.AddMember("link", arr, a);
  }
}

// A Patient resource with active and link replaced by the given values.
std::string patchPatient(const std::string& resource, const std::string& id, bool active,
                         const std::vector<std::pair<std::string, std::string>>& links) {
  JsonArena arena;
  Document d = arena.document();
  d.Parse(resource.c_str());
  if (d.HasParseError() || !d.IsObject()) {
    d.SetObject();
    d.AddMember("resourceType", "Patient", d.GetAllocator());
  }
  setIdActiveLinks(d, id, active, links);
  return write(d);
}

// The golden ids a golden Patient's link elements point at ("Patient/<id>").
std::vector<std::string> linkedGoldenIds(const Document& patient) {
  std::vector<std::string> out;
  if (!patient.IsObject() || !patient.HasMember("link") || !patient["link"].IsArray()) return out;
  for (const auto& l : patient["link"].GetArray()) {
    if (!l.IsObject() || !l.HasMember("other")) continue;
    std::string ref = getStr(l["other"], "reference");
    if (ref.starts_with("Patient/")) out.push_back(ref.substr(8));
  }
  return out;
}

// The FHIR transaction Bundle that carries golden records to the EHR (see
// DecisionOutcome::bundle): `primaries` first, in order, then every golden record their links
// name, transitively, read from the store.
std::string ehrBundle(MpiTx& tx, const std::vector<GoldenRecord>& primaries) {
  std::vector<GoldenRecord> all = primaries;
  std::set<std::string> included;
  for (const auto& g : all) included.insert(g.id);
  Document d(rapidjson::kObjectType);
  auto& a = d.GetAllocator();
  d.AddMember("resourceType", "Bundle", a);
  d.AddMember("type", "transaction", a);
  Value entries(rapidjson::kArrayType);
  // `all` grows while it is walked: each record's link targets join the Bundle once.
  for (size_t i = 0; i < all.size(); ++i) {
    Document r;
    r.Parse(all[i].resource.c_str());
    if (r.HasParseError() || !r.IsObject()) continue;
    for (const auto& other : linkedGoldenIds(r)) {
      if (included.contains(other)) continue;
      if (auto g = tx.golden(other)) {
        included.insert(other);
        all.push_back(std::move(*g));
      }
    }
    const std::string id = all[i].id;
    Value res(rapidjson::kObjectType);
    for (auto& m : r.GetObject()) {
      const std::string_view key(m.name.GetString(), m.name.GetStringLength());
      if (key == "id" || key == "identifier" || key == "link") continue;
      Value k(m.name, a), v(m.value, a);
      res.AddMember(k, v, a);
    }
    // Identifiers: the enterprise id of this record only (a copied one of another record would
    // make the conditional update match two EHR Patients).
    Value ids(rapidjson::kArrayType);
    if (r.HasMember("identifier") && r["identifier"].IsArray()) {
      for (const auto& ident : r["identifier"].GetArray()) {
        if (getStr(ident, "system") == kEnterpriseIdSystem) continue;
        ids.PushBack(Value(ident, a), a);
      }
    }
    Value own(rapidjson::kObjectType);
    own.AddMember("system", Value(kEnterpriseIdSystem, a), a);
    own.AddMember("value", str(id, a), a);
    ids.PushBack(own, a);
    res.AddMember("identifier", ids, a);
    if (r.HasMember("link") && r["link"].IsArray()) {
      Value links(rapidjson::kArrayType);
      for (const auto& l : r["link"].GetArray()) {
        std::string ref =
            l.IsObject() && l.HasMember("other") ? getStr(l["other"], "reference") : "";
        if (!ref.starts_with("Patient/") || !included.contains(ref.substr(8))) continue;
        Value nl(rapidjson::kObjectType), other(rapidjson::kObjectType);
        other.AddMember("reference", str(enterpriseFullUrl(ref.substr(8)), a), a);
        nl.AddMember("other", other, a);
        nl.AddMember("type", str(getStr(l, "type"), a), a);
        links.PushBack(nl, a);
      }
      if (!links.Empty()) res.AddMember("link", links, a);
    }
    Value e(rapidjson::kObjectType), req(rapidjson::kObjectType);
    e.AddMember("fullUrl", str(enterpriseFullUrl(id), a), a);
    e.AddMember("resource", res, a);
    req.AddMember("method", "PUT", a);
    req.AddMember("url",
                  str(std::string("Patient?identifier=") + kEnterpriseIdSystem + "|" + id, a), a);
    e.AddMember("request", req, a);
    entries.PushBack(e, a);
  }
  d.AddMember("entry", entries, a);
  return write(d);
}

std::string joined(const std::vector<std::string>& v, const char* sep = " ") {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

}  // namespace

std::string enterpriseFullUrl(const std::string& goldenId) {
  std::string hex;
  const bool canonical = goldenId.size() == 33 && goldenId[0] == 'g' &&
                         std::all_of(goldenId.begin() + 1, goldenId.end(), [](char c) {
                           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                         });
  if (canonical) {
    hex = goldenId.substr(1);
  } else {
    // Not an id this service made: two FNV-1a hashes give a stable 128-bit value.
    char buf[40];
    uint64_t h1 = 1469598103934665603ULL, h2 = 1099511628211ULL * 31;
    for (unsigned char c : goldenId) {
      h1 = (h1 ^ c) * 1099511628211ULL;
      h2 = (h2 ^ c) * 1099511628211ULL + 0x9E3779B97F4A7C15ULL;
    }
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h1),
                  static_cast<unsigned long long>(h2));
    hex = buf;
  }
  hex[12] = '8';                                                    // version 8 (RFC 9562: custom)
  hex[16] = "89ab"[std::stoi(hex.substr(16, 1), nullptr, 16) & 3];  // variant 10
  return "urn:uuid:" + hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

const char* matchGrade(const PairScore& s, const MatchConfig& c) {
  if (s.decision == Decision::kMatch) return "certain";
  if (s.decision == Decision::kPossibleMatch &&
      s.weight >= (c.matchThreshold + c.possibleThreshold) / 2) {
    return "probable";
  }
  if (s.decision == Decision::kPossibleMatch) return "possible";
  return "certainly-not";
}

MpiService::MpiService(MatchConfig config, std::unique_ptr<MpiStore> store,
                       const core::Clock* clock)
    : index_(std::move(config)),
      store_(std::move(store)),
      clock_(clock ? clock : &systemClock_),
      rng_(std::random_device{}()) {}

Result<std::unique_ptr<MpiService>> MpiService::open(MatchConfig config,
                                                     std::unique_ptr<MpiStore> store,
                                                     const core::Clock* clock) {
  if (!store) return fail(ErrorCode::kInvalid, "MpiService needs a store");
  std::unique_ptr<MpiService> s(new MpiService(std::move(config), std::move(store), clock));
  {
    std::unique_lock lock(s->mutex_);
    s->seenLost_ = s->store_->lostBatches();
    if (auto r = s->loadLocked(); !r) return std::unexpected(r.error());
  }
  return s;
}

Result<void> MpiService::syncLocked(bool commitBatch) {
  // A failed commit is seen below as a lost batch; the caller's own change does not depend on it.
  if (commitBatch) (void)store_->commit();
  // Bounded: the rebuild's own read commits any open batch first, and should that commit fail
  // too, the state is rebuilt once more.
  for (int attempt = 0; stale_ || store_->lostBatches() != seenLost_; ++attempt) {
    if (attempt == 3) {
      return fail(ErrorCode::kTransient, "MPI: rebuilding the in-memory index keeps failing");
    }
    seenLost_ = store_->lostBatches();
    stale_ = true;
    index_.clear();
    recordOf_.clear();
    owner_.clear();
    noMatch_.clear();
    replaces_.clear();
    if (auto r = loadLocked(); !r) return r;
    stale_ = false;
  }
  return {};
}

Result<void> MpiService::settle(std::uint64_t first, std::uint64_t last) {
  Result<void> committed;
  {
    // Exclusively: a failed commit rebuilds the in-memory state before anyone uses it.
    std::unique_lock lock(mutex_);
    committed = store_->commit();
    (void)syncLocked(false);  // a failed rebuild leaves stale_ set: the next change retries it
  }
  if (!committed) return committed;
  if (store_->batchLost(first, std::max(first, last))) {
    return fail(ErrorCode::kTransient,
                "MPI: a batch holding these submissions failed to commit; they are lost");
  }
  return store_->flush();
}

int64_t MpiService::now() const { return clock_->nowMs(); }

std::string MpiService::newGoldenId() {
  // The first 48 bits are the time in milliseconds and the other 80 random (as a UUIDv7): ids
  // made later sort later, so a new golden record's key lands at the end of the store's indexes
  // on golden ids, on pages the batch's other new records share, instead of on a random page
  // each. 80 random bits keep the ids unguessable and distinct within a millisecond.
  char buf[40];
  const auto ms = static_cast<unsigned long long>(now()) & 0xffffffffffffULL;
  std::snprintf(buf, sizeof buf, "%012llx%04llx%016llx", ms,
                static_cast<unsigned long long>(rng_() & 0xffff),
                static_cast<unsigned long long>(rng_()));
  return std::string("g") + buf;
}

std::string MpiService::explain(const PairScore& s) const {
  return Scorer(index_.config(), nullptr).explainJson(s);
}

Result<void> MpiService::loadLocked() {
  size_t bad = 0;
  auto r = store_->transaction([&](MpiTx& tx) -> Result<void> {
    tx.forEachGolden([&](GoldenRecord&& g) {
      if (!g.active && !g.replacedBy.empty()) replaces_[g.replacedBy].insert(g.id);
    });
    tx.forEachLink([&](MpiLink&& l) {
      if (l.result == Decision::kNoMatch) {
        noMatch_.insert({l.sourceId, l.goldenId});
      } else {
        owner_[l.sourceId] = {l.goldenId, l.result, l.origin};
      }
    });
    tx.forEachSource([&](SourcePatient&& s) {
      auto p = personFromFhirPatientJson(s.resource);
      if (!p) {
        ++bad;
        return;
      }
      p->id = s.id;
      recordOf_[s.id] = index_.add(index_.normalize(*p));
    });
    return {};
  });
  if (!r) return r;
  if (bad > 0) {
    return fail(ErrorCode::kStructure,
                std::to_string(bad) + " stored source patients are not valid Patient JSON");
  }
  return {};
}

size_t MpiService::sourceCount() const {
  std::shared_lock lock(mutex_);
  return recordOf_.size();
}

std::vector<MpiService::Candidate> MpiService::candidatesLocked(const NormalizedRecord& q,
                                                                const std::string& self,
                                                                size_t limit) const {
  std::vector<Candidate> out;
  for (auto& c : index_.match(q, 64, Decision::kPossibleMatch)) {
    if (c.id == self) continue;
    auto o = owner_.find(c.id);
    if (o == owner_.end()) continue;
    const std::string& g = o->second.goldenId;
    if (!self.empty() && noMatch_.count({self, g})) continue;
    if (std::any_of(out.begin(), out.end(), [&](const Candidate& x) { return x.goldenId == g; }))
      continue;  // candidates come best first: keep the best source per golden record
    out.push_back({g, c.id, c.score});
    if (out.size() >= limit) break;
  }
  return out;
}

const std::set<std::string>& MpiService::replacesOf(const std::string& goldenId) const {
  static const std::set<std::string> kNone;
  auto it = replaces_.find(goldenId);
  return it == replaces_.end() ? kNone : it->second;
}

void MpiService::rebuildGolden(MpiTx& tx, GoldenRecord& g, const std::set<std::string>& replaces) {
  rebuildGolden(g, tx.membersOfGolden(g.id), replaces);
}

void MpiService::rebuildGolden(GoldenRecord& g, std::vector<SourcePatient> members,
                               const std::set<std::string>& replaces) {
  // Most recent first; ties by id so the result is deterministic.
  std::sort(members.begin(), members.end(), [](const SourcePatient& a, const SourcePatient& b) {
    return a.updatedAt != b.updatedAt ? a.updatedAt > b.updatedAt : a.id < b.id;
  });
  JsonArena arena;
  Document out = arena.document(), prov = arena.document();
  out.SetObject();
  prov.SetObject();
  auto& a = out.GetAllocator();
  auto& pa = prov.GetAllocator();
  out.AddMember("resourceType", "Patient", a);
  std::vector<Document> docs;
  docs.reserve(members.size());
  for (const auto& m : members) docs.emplace_back(&arena.allocator()).Parse(m.resource.c_str());
  auto usable = [](const Document& d, const char* k) {
    if (d.HasParseError() || !d.IsObject() || !d.HasMember(k)) return false;
    const Value& v = d[k];
    return !(v.IsArray() && v.Empty()) && !(v.IsString() && v.GetStringLength() == 0) &&
           !v.IsNull();
  };
  // Union rules: every distinct value of all members, newest first.
  for (const char* field : {"identifier", "telecom"}) {
    Value arr(rapidjson::kArrayType), sources(rapidjson::kArrayType);
    std::set<std::string> seen;
    for (size_t i = 0; i < members.size(); ++i) {
      if (!usable(docs[i], field) || !docs[i][field].IsArray()) continue;
      bool contributed = false;
      for (const auto& item : docs[i][field].GetArray()) {
        std::string key = getStr(item, "system") + "|" + getStr(item, "value");
        if (!seen.insert(key).second) continue;
        Value copy;
        copy.CopyFrom(item, a);
        arr.PushBack(copy, a);
        contributed = true;
      }
      if (contributed) sources.PushBack(str(members[i].id, pa), pa);
    }
    if (arr.Empty()) continue;
    out.AddMember(Value(field, a), arr, a);
    Value p(rapidjson::kObjectType);
    p.AddMember("sources", sources, pa);
    p.AddMember("rule", "union", pa);
    prov.AddMember(Value(field, pa), p, pa);
  }
  // Most-recent rules: the newest member that has the element.
  for (const char* field : {"name", "gender", "birthDate", "address"}) {
    for (size_t i = 0; i < members.size(); ++i) {
      if (!usable(docs[i], field)) continue;
      Value copy;
      copy.CopyFrom(docs[i][field], a);
      out.AddMember(Value(field, a), copy, a);
      Value p(rapidjson::kObjectType);
      p.AddMember("source", str(members[i].id, pa), pa);
      p.AddMember("rule", "most-recent", pa);
      prov.AddMember(Value(field, pa), p, pa);
      break;
    }
  }
  std::vector<std::pair<std::string, std::string>> links;
  if (!g.active && !g.replacedBy.empty()) links.push_back({g.replacedBy, "replaced-by"});
  for (const auto& r : replaces) links.push_back({r, "replaces"});
  // As patchPatient(write(out), ...) did, without writing and parsing the record once more.
  setIdActiveLinks(out, g.id, g.active, links);
  g.resource = write(out);
  g.provenance = write(prov);
}

Result<SubmitDecision> MpiService::submit(std::string_view patientJson,
                                          std::string_view sourceSystem, std::string_view actor,
                                          MpiStore::Durability durability) {
  JsonArena arena;
  Document doc = arena.document();
  doc.Parse(patientJson.data(), patientJson.size());
  if (doc.HasParseError()) return fail(ErrorCode::kStructure, "Patient is not valid JSON", "$");
  return submit(doc, patientJson, sourceSystem, actor, durability);
}

Result<SubmitDecision> MpiService::submit(const rapidjson::Value& patient,
                                          std::string_view patientJson,
                                          std::string_view sourceSystem, std::string_view actor,
                                          MpiStore::Durability durability) {
  JsonArena arena;  // the documents of survivorship and the normalised form
  auto person = personFromFhirPatient(patient);
  if (!person) return std::unexpected(person.error());
  std::string key = person->id;
  if (key.empty() && !person->identifiers.empty()) {
    key = person->identifiers[0].system + "|" + person->identifiers[0].value;
  }
  if (key.empty()) {
    return fail(ErrorCode::kRequired, "Patient needs an id or an identifier", "Patient.id");
  }
  if (sourceSystem.empty()) sourceSystem = "default";
  const std::string sourceId = std::string(sourceSystem) + "/" + key;
  if (sourceId.size() > 200) {
    return fail(ErrorCode::kTooLong, "source system and Patient id exceed 200 characters",
                "Patient.id");
  }
  person->id = sourceId;
  NormalizedRecord norm = index_.normalize(*person);
  std::string resource(patientJson);

  std::unique_lock lock(mutex_);
  const bool batched = durability == MpiStore::Durability::kDeferred;
  if (auto s = syncLocked(!batched); !s) return std::unexpected(s.error());
  std::uint64_t batch = 0;
  const int64_t t = now();
  if (auto known = recordOf_.find(sourceId); known != recordOf_.end()) {
    const Owner owner = owner_[sourceId];
    // The new record replaces the old one in the index before the automatic pass looks for
    // candidates; the update and the pass are one transaction, and the index change is undone
    // when it fails.
    const uint32_t oldRecord = known->second;
    index_.remove(oldRecord);
    const uint32_t newRecord = index_.add(norm);
    std::vector<Candidate> cands;
    if (owner.origin == LinkOrigin::kAuto) cands = rematchCandidatesLocked(norm, sourceId, owner);
    SubmitDecision d;
    RematchOutcome outcome;
    auto r = store_->transaction([&](MpiTx& tx) -> Result<void> {
      auto old = tx.source(sourceId);
      tx.putSource({sourceId, std::string(sourceSystem), resource, normalizedJson(norm),
                    old ? old->createdAt : t, t});
      if (auto g = tx.golden(owner.goldenId)) {
        g->updatedAt = t;
        rebuildGolden(tx, *g, replacesOf(g->id));
        tx.putGolden(*g);
      }
      tx.appendAudit({0, t, std::string(actor), "source.update", sourceId, "{}"});
      // Manual decisions are never undone by the machine.
      if (owner.origin == LinkOrigin::kManual) {
        decisionInTx(tx, sourceId, owner, d);
        return {};
      }
      return rematchInTx(tx, sourceId, owner, cands, now(), actor, d, outcome);
    }, durability, &batch);
    if (!r) {
      index_.remove(newRecord);
      index_.restore(oldRecord);
      return std::unexpected(r.error());
    }
    d.batch = batch;
    known->second = newRecord;
    applyRematch(sourceId, cands, outcome);
    d.updatedSource = true;
    return d;
  }

  std::vector<Candidate> cands = candidatesLocked(norm, sourceId, 6);
  SubmitDecision d;
  d.sourceId = sourceId;
  std::vector<const Candidate*> toReview;
  const Candidate* linkTo = nullptr;
  if (!cands.empty() && cands[0].score.decision == Decision::kMatch) {
    linkTo = &cands[0];
    d.result = Decision::kMatch;
    d.enterpriseId = cands[0].goldenId;
    for (size_t i = 1; i < cands.size(); ++i) toReview.push_back(&cands[i]);
  } else {
    d.createdGolden = true;
    d.enterpriseId = newGoldenId();
    d.result = cands.empty() ? Decision::kNoMatch : Decision::kPossibleMatch;
    for (const auto& c : cands) toReview.push_back(&c);
  }
  if (!cands.empty()) {
    d.score = cands[0].score.probability;
    d.weight = cands[0].score.weight;
    d.contributions = explain(cands[0].score);
  }
  const Decision ownerResult =
      d.result == Decision::kPossibleMatch ? Decision::kPossibleMatch : Decision::kMatch;
  SourcePatient source{sourceId, std::string(sourceSystem), std::move(resource),
                       normalizedJson(norm), t, t};
  auto r = store_->transaction([&](MpiTx& tx) -> Result<void> {
    d.reviewItemIds.clear();
    tx.putSource(source);
    tx.putLink({sourceId, d.enterpriseId, ownerResult, LinkOrigin::kAuto, d.score, d.weight,
                d.contributions, "", "", t});
    GoldenRecord g;
    if (linkTo) {
      auto existing = tx.golden(d.enterpriseId);
      if (!existing) return fail(ErrorCode::kException, "golden record missing from the store");
      g = std::move(*existing);
      g.updatedAt = t;
      rebuildGolden(tx, g, replacesOf(g.id));
    } else {
      // A new golden record (fresh random id): its only member is this source.
      g.id = d.enterpriseId;
      g.createdAt = t;
      g.updatedAt = t;
      rebuildGolden(g, {source}, replacesOf(g.id));
    }
    tx.putGolden(g);
    for (const Candidate* c : toReview) {
      if (tx.openReviewForPair(sourceId, c->sourceId)) continue;
      ReviewItem item;
      item.sourceId = sourceId;
      item.candidateId = c->sourceId;
      item.score = c->score.probability;
      item.weight = c->score.weight;
      item.contributions = explain(c->score);
      item.createdAt = t;
      d.reviewItemIds.push_back(tx.insertReview(item));
    }
    std::string detail = std::string(R"({"golden":")") + d.enterpriseId + R"(","result":")" +
                         decisionName(d.result) + R"(","reviews":)" +
                         std::to_string(d.reviewItemIds.size()) + "}";
    tx.appendAudit({0, t, std::string(actor), "source.submit", sourceId, detail});
    return {};
  }, durability, &batch);
  if (!r) return std::unexpected(r.error());
  d.batch = batch;
  recordOf_[sourceId] = index_.add(norm);
  owner_[sourceId] = {d.enterpriseId, ownerResult, LinkOrigin::kAuto};
  return d;
}

void MpiService::decisionInTx(MpiTx& tx, const std::string& sourceId, const Owner& owner,
                              SubmitDecision& d) const {
  d = SubmitDecision{};
  d.sourceId = sourceId;
  d.enterpriseId = owner.goldenId;
  d.origin = owner.origin;
  d.result = owner.result;
  for (const auto& l : tx.linksOfSource(sourceId)) {
    if (l.goldenId != d.enterpriseId) continue;
    d.score = l.score;
    d.weight = l.weight;
    d.contributions = l.contributions.empty() ? "{}" : l.contributions;
  }
}

Result<SubmitDecision> MpiService::currentDecision(const std::string& sourceId) {
  auto o = owner_.find(sourceId);
  if (o == owner_.end()) return fail(ErrorCode::kNotFound, "unknown source patient");
  const Owner owner = o->second;
  SubmitDecision d;
  auto r = store_->transaction([&](MpiTx& tx) -> Result<void> {
    decisionInTx(tx, sourceId, owner, d);
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return d;
}

std::vector<MpiService::Candidate> MpiService::rematchCandidatesLocked(
    const NormalizedRecord& norm, const std::string& sourceId, const Owner& owner) const {
  std::vector<Candidate> cands = candidatesLocked(norm, sourceId, 6);
  std::erase_if(cands, [&](const Candidate& c) { return c.goldenId == owner.goldenId; });
  return cands;
}

Result<void> MpiService::rematchInTx(MpiTx& tx, const std::string& sourceId, const Owner& owner,
                                     const std::vector<Candidate>& cands, int64_t t,
                                     std::string_view actor, SubmitDecision& d,
                                     RematchOutcome& out) {
  size_t members = 0;
  for (const auto& l : tx.linksOfGolden(owner.goldenId))
    if (l.result != Decision::kNoMatch) ++members;
  out = RematchOutcome{};
  out.move = !cands.empty() && cands[0].score.decision == Decision::kMatch && members == 1;
  std::vector<int64_t> reviewIds;
  if (out.move) {
    const Candidate& best = cands[0];
    tx.deleteLink(sourceId, owner.goldenId);
    tx.putLink({sourceId, best.goldenId, Decision::kMatch, LinkOrigin::kAuto,
                best.score.probability, best.score.weight, explain(best.score), "", "", t});
    auto old = tx.golden(owner.goldenId);
    auto into = tx.golden(best.goldenId);
    if (!old || !into) return fail(ErrorCode::kException, "golden record missing from the store");
    old->active = false;
    old->replacedBy = best.goldenId;
    old->updatedAt = t;
    old->resource = patchPatient(old->resource, old->id, false, {{best.goldenId, "replaced-by"}});
    tx.putGolden(*old);
    out.newReplaces = replacesOf(best.goldenId);
    out.newReplaces.insert(owner.goldenId);
    into->updatedAt = t;
    rebuildGolden(tx, *into, out.newReplaces);
    tx.putGolden(*into);
    tx.appendAudit({0, t, std::string(actor), "source.relink", sourceId,
                    R"({"from":")" + owner.goldenId + R"(","to":")" + best.goldenId + "\"}"});
  }
  for (size_t i = out.move ? 1 : 0; i < cands.size(); ++i) {
    if (tx.openReviewForPair(sourceId, cands[i].sourceId)) continue;
    ReviewItem item;
    item.sourceId = sourceId;
    item.candidateId = cands[i].sourceId;
    item.score = cands[i].score.probability;
    item.weight = cands[i].score.weight;
    item.contributions = explain(cands[i].score);
    item.createdAt = t;
    reviewIds.push_back(tx.insertReview(item));
  }
  decisionInTx(tx, sourceId,
               out.move ? Owner{cands[0].goldenId, Decision::kMatch, LinkOrigin::kAuto} : owner, d);
  d.reviewItemIds = std::move(reviewIds);
  return {};
}

void MpiService::applyRematch(const std::string& sourceId, const std::vector<Candidate>& cands,
                              RematchOutcome& out) {
  if (!out.move) return;
  owner_[sourceId] = {cands[0].goldenId, Decision::kMatch, LinkOrigin::kAuto};
  replaces_[cands[0].goldenId] = std::move(out.newReplaces);
}

Result<SubmitDecision> MpiService::rematch(const std::string& sourceId, std::string_view actor) {
  std::unique_lock lock(mutex_);
  if (auto s = syncLocked(true); !s) return std::unexpected(s.error());
  return rematchLocked(sourceId, actor);
}

Result<SubmitDecision> MpiService::rematchLocked(const std::string& sourceId,
                                                 std::string_view actor) {
  auto o = owner_.find(sourceId);
  auto rec = recordOf_.find(sourceId);
  if (o == owner_.end() || rec == recordOf_.end()) {
    return fail(ErrorCode::kNotFound, "unknown source patient");
  }
  // Manual decisions are never undone by the machine.
  if (o->second.origin == LinkOrigin::kManual) return currentDecision(sourceId);
  const Owner owner = o->second;
  std::optional<SourcePatient> src;
  auto r = store_->transaction([&](MpiTx& tx) -> Result<void> {
    src = tx.source(sourceId);
    return {};
  });
  if (!r) return std::unexpected(r.error());
  if (!src) return fail(ErrorCode::kNotFound, "unknown source patient");
  auto person = personFromFhirPatientJson(src->resource);
  if (!person) return std::unexpected(person.error());
  person->id = sourceId;
  const std::vector<Candidate> cands =
      rematchCandidatesLocked(index_.normalize(*person), sourceId, owner);
  const int64_t t = now();
  SubmitDecision d;
  RematchOutcome outcome;
  r = store_->transaction([&](MpiTx& tx) -> Result<void> {
    return rematchInTx(tx, sourceId, owner, cands, t, actor, d, outcome);
  });
  if (!r) return std::unexpected(r.error());
  applyRematch(sourceId, cands, outcome);
  return d;
}

Result<std::vector<GoldenMatch>> MpiService::match(std::string_view patientJson, bool onlyCertain,
                                                   size_t count) const {
  auto person = personFromFhirPatientJson(patientJson);
  if (!person) return std::unexpected(person.error());
  person->id.clear();
  NormalizedRecord q = index_.normalize(*person);
  std::shared_lock lock(mutex_);
  std::vector<Candidate> cands = candidatesLocked(q, "", std::max<size_t>(count, 1));
  std::vector<GoldenMatch> out;
  auto r = store_->transaction([&](MpiTx& tx) -> Result<void> {
    for (const auto& c : cands) {
      const char* grade = matchGrade(c.score, index_.config());
      if (onlyCertain && std::string_view(grade) != "certain") continue;
      auto g = tx.golden(c.goldenId);
      if (!g || !g->active) continue;
      out.push_back({c.goldenId, c.sourceId, c.score, grade, g->resource, explain(c.score)});
    }
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<std::vector<ReviewItem>> MpiService::reviews(const ReviewFilter& filter) const {
  std::vector<ReviewItem> out;
  auto r = store_->transaction([&](MpiTx& tx) -> Result<void> {
    out = tx.reviews(filter);
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<ReviewDetail> MpiService::review(int64_t id) const {
  ReviewDetail d;
  bool found = false;
  std::shared_lock lock(mutex_);
  auto r = store_->transaction([&](MpiTx& tx) -> Result<void> {
    auto item = tx.review(id);
    if (!item) return {};
    found = true;
    d.item = *item;
    for (auto [side, sid] : {std::pair{&d.left, item->sourceId}, {&d.right, item->candidateId}}) {
      side->sourceId = sid;
      if (auto o = owner_.find(sid); o != owner_.end()) side->goldenId = o->second.goldenId;
      if (auto s = tx.source(sid)) side->resource = s->resource;
    }
    return {};
  });
  if (!r) return std::unexpected(r.error());
  if (!found) return fail(ErrorCode::kNotFound, "no review item " + std::to_string(id));
  // Side-by-side values with the stored per-field contributions.
  PersonRecord a, b;
  if (auto p = personFromFhirPatientJson(d.left.resource)) a = *p;
  if (auto p = personFromFhirPatientJson(d.right.resource)) b = *p;
  auto values = [](const PersonRecord& p, std::string_view f) -> std::string {
    if (f == "given") return joined(p.givenNames);
    if (f == "family") return joined(p.familyNames);
    if (f == "birthDate") return p.birthDate;
    if (f == "sex") return p.sex;
    if (f == "phone") return joined(p.phones, ", ");
    if (f == "email") return joined(p.emails, ", ");
    if (f == "address") return joined(p.addressLines, ", ");
    if (f == "city") return p.city;
    if (f == "postcode") return p.postcode;
    if (f == "state") return p.state;
    if (f == "identifier") {
      std::vector<std::string> v;
      for (const auto& i : p.identifiers) v.push_back(i.system + "|" + i.value);
      return joined(v, ", ");
    }
    return {};
  };
  Document contrib;
  contrib.Parse(d.item.contributions.c_str());
  Document cmp(rapidjson::kArrayType);
  auto& al = cmp.GetAllocator();
  for (size_t i = 0; i < kFieldCount; ++i) {
    const char* f = fieldName(static_cast<Field>(i));
    Value row(rapidjson::kObjectType);
    row.AddMember("field", str(f, al), al);
    row.AddMember("left", str(values(a, f), al), al);
    row.AddMember("right", str(values(b, f), al), al);
    std::string level = "null";
    double weight = 0;
    if (!contrib.HasParseError() && contrib.IsObject() && contrib.HasMember("fields") &&
        contrib["fields"].IsArray()) {
      for (const auto& fc : contrib["fields"].GetArray()) {
        if (getStr(fc, "field") != f) continue;
        level = getStr(fc, "level");
        if (fc.HasMember("weight") && fc["weight"].IsNumber()) weight = fc["weight"].GetDouble();
      }
    }
    row.AddMember("level", str(level, al), al);
    row.AddMember("weight", weight, al);
    cmp.PushBack(row, al);
  }
  d.comparison = write(cmp);
  return d;
}

Result<DecisionOutcome> MpiService::decide(int64_t id, ReviewVerdict verdict,
                                           const std::string& reviewer, const std::string& reason) {
  if (reviewer.empty()) return fail(ErrorCode::kRequired, "a reviewer identity is required");
  std::unique_lock lock(mutex_);
  if (auto s = syncLocked(true); !s) return std::unexpected(s.error());
  const int64_t t = now();
  DecisionOutcome out;
  // In-memory changes to apply after the commit.
  std::vector<std::pair<std::string, Owner>> newOwners;
  std::vector<std::pair<std::string, std::string>> addNoMatch, dropNoMatch;
  std::optional<std::pair<std::string, std::set<std::string>>> newReplaces;
  auto r = store_->transaction([&](MpiTx& tx) -> Result<void> {
    newOwners.clear();
    addNoMatch.clear();
    dropNoMatch.clear();
    newReplaces.reset();
    auto item = tx.review(id);
    if (!item) return fail(ErrorCode::kNotFound, "no review item " + std::to_string(id));
    if (item->status != ReviewStatus::kOpen) {
      return fail(ErrorCode::kConflict, std::string("review item is already decided (") +
                                            reviewStatusName(item->status) + ")");
    }
    auto so = owner_.find(item->sourceId), co = owner_.find(item->candidateId);
    if (so == owner_.end() || co == owner_.end()) {
      return fail(ErrorCode::kConflict, "a record of this pair is no longer linked");
    }
    const std::string from = so->second.goldenId, into = co->second.goldenId;
    item->reviewer = reviewer;
    item->reason = reason;
    item->decidedAt = t;
    std::string auditDetail;
    if (verdict == ReviewVerdict::kMerge) {
      item->status = ReviewStatus::kMerged;
      if (from != into) {
        auto gFrom = tx.golden(from), gInto = tx.golden(into);
        if (!gFrom || !gInto) return fail(ErrorCode::kException, "golden record missing");
        if (!gFrom->active || !gInto->active) {
          return fail(ErrorCode::kConflict, "a golden record of this pair is no longer active");
        }
        // Snapshot for undo: both goldens and every link of the sources that move.
        Document snap(rapidjson::kObjectType);
        auto& a = snap.GetAllocator();
        Value goldens(rapidjson::kArrayType), links(rapidjson::kArrayType);
        goldens.PushBack(goldenJson(*gFrom, a), a);
        goldens.PushBack(goldenJson(*gInto, a), a);
        std::vector<std::string> moved;
        for (const auto& l : tx.linksOfGolden(from))
          if (l.result != Decision::kNoMatch) moved.push_back(l.sourceId);
        for (const auto& m : moved)
          for (const auto& l : tx.linksOfSource(m)) links.PushBack(linkJson(l, a), a);
        snap.AddMember("goldens", goldens, a);
        snap.AddMember("links", links, a);
        for (const auto& m : moved) {
          MpiLink keep;
          for (const auto& l : tx.linksOfSource(m)) {
            if (l.goldenId == from) keep = l;
            if (l.goldenId == from || l.goldenId == into) tx.deleteLink(m, l.goldenId);
            if (l.goldenId == into && l.result == Decision::kNoMatch)
              dropNoMatch.push_back({m, into});
          }
          MpiLink nl = keep;
          nl.sourceId = m;
          nl.goldenId = into;
          nl.result = Decision::kMatch;
          nl.updatedAt = t;
          if (m == item->sourceId) {
            nl.origin = LinkOrigin::kManual;
            nl.reviewer = reviewer;
            nl.reason = reason;
            nl.score = item->score;
            nl.weight = item->weight;
            nl.contributions = item->contributions;
          }
          tx.putLink(nl);
          newOwners.push_back({m, {into, Decision::kMatch, nl.origin}});
        }
        gFrom->active = false;
        gFrom->replacedBy = into;
        gFrom->updatedAt = t;
        gFrom->resource = patchPatient(gFrom->resource, from, false, {{into, "replaced-by"}});
        tx.putGolden(*gFrom);
        std::set<std::string> rep = replaces_[into];
        rep.insert(from);
        gInto->updatedAt = t;
        rebuildGolden(tx, *gInto, rep);
        tx.putGolden(*gInto);
        newReplaces = std::pair{into, rep};
        MergeEvent ev{0, from, into, reviewer, reason, id, write(snap), t, 0, ""};
        ev.id = tx.insertMerge(ev);
        item->mergeEventId = ev.id;
        out.merge = ev;
        out.bundle = ehrBundle(tx, {*gInto, *gFrom});
        tx.appendAudit({0, t, reviewer, "merge", into,
                        R"({"from":")" + from + R"(","into":")" + into + R"(","event":)" +
                            std::to_string(ev.id) + "}"});
      }
      auditDetail = R"({"decision":"merge","from":")" + from + R"(","into":")" + into + "\"}";
    } else {
      if (from == into) {
        return fail(ErrorCode::kConflict,
                    "both records already belong to one golden record; splitting is not supported");
      }
      item->status = ReviewStatus::kNotDuplicate;
      Document snap(rapidjson::kObjectType);
      auto& a = snap.GetAllocator();
      Value ownerLink(rapidjson::kNullType);
      for (const auto& l : tx.linksOfSource(item->sourceId))
        if (l.goldenId == from) ownerLink = linkJson(l, a);
      snap.AddMember("owner", ownerLink, a);
      Value nm(rapidjson::kArrayType);
      for (const auto& [s, g] : {std::pair{item->sourceId, into}, {item->candidateId, from}}) {
        bool existed = false;
        for (const auto& l : tx.linksOfSource(s)) existed = existed || l.goldenId == g;
        if (existed) continue;  // never overwrite another link of the pair
        tx.putLink({s, g, Decision::kNoMatch, LinkOrigin::kManual, item->score, item->weight,
                    item->contributions, reviewer, reason, t});
        addNoMatch.push_back({s, g});
        Value p(rapidjson::kArrayType);
        p.PushBack(str(s, a), a).PushBack(str(g, a), a);
        nm.PushBack(p, a);
      }
      snap.AddMember("noMatch", nm, a);
      // A provisional record with nothing left to review is confirmed as its own person.
      if (so->second.result == Decision::kPossibleMatch) {
        bool othersOpen = false;
        for (const auto& o : tx.openReviewsOf(item->sourceId))
          othersOpen = othersOpen || o.id != id;
        if (!othersOpen) {
          for (auto l : tx.linksOfSource(item->sourceId)) {
            if (l.goldenId != from) continue;
            l.result = Decision::kMatch;
            l.origin = LinkOrigin::kManual;
            l.reviewer = reviewer;
            l.reason = reason;
            l.updatedAt = t;
            tx.putLink(l);
            newOwners.push_back({item->sourceId, {from, Decision::kMatch, LinkOrigin::kManual}});
          }
        }
      }
      item->undoState = write(snap);
      auditDetail = R"({"decision":"not-duplicate"})";
    }
    tx.updateReview(*item);
    tx.appendAudit({0, t, reviewer, "review.decide", "review/" + std::to_string(id), auditDetail});
    out.item = *item;
    return {};
  });
  if (!r) return std::unexpected(r.error());
  for (auto& [s, o] : newOwners) owner_[s] = o;
  for (auto& p : dropNoMatch) noMatch_.erase(p);
  for (auto& p : addNoMatch) noMatch_.insert(p);
  if (newReplaces) replaces_[newReplaces->first] = newReplaces->second;
  return out;
}

Result<DecisionOutcome> MpiService::undo(int64_t id, const std::string& reviewer,
                                         const std::string& reason) {
  if (reviewer.empty()) return fail(ErrorCode::kRequired, "a reviewer identity is required");
  std::unique_lock lock(mutex_);
  if (auto s = syncLocked(true); !s) return std::unexpected(s.error());
  const int64_t t = now();
  DecisionOutcome out;
  std::vector<std::pair<std::string, std::optional<Owner>>> newOwners;
  std::vector<std::pair<std::string, std::string>> addNoMatch, dropNoMatch;
  std::optional<std::pair<std::string, std::set<std::string>>> newReplaces;
  auto r = store_->transaction([&](MpiTx& tx) -> Result<void> {
    newOwners.clear();
    addNoMatch.clear();
    dropNoMatch.clear();
    newReplaces.reset();
    auto item = tx.review(id);
    if (!item) return fail(ErrorCode::kNotFound, "no review item " + std::to_string(id));
    if (item->status == ReviewStatus::kOpen) {
      return fail(ErrorCode::kConflict, "review item is open: nothing to undo");
    }
    std::string detail;
    if (item->status == ReviewStatus::kMerged && item->mergeEventId != 0) {
      auto ev = tx.merge(item->mergeEventId);
      if (!ev) return fail(ErrorCode::kException, "merge event missing");
      if (ev->undoneAt != 0) return fail(ErrorCode::kConflict, "merge already undone");
      auto gInto = tx.golden(ev->intoGolden);
      if (!gInto || !gInto->active) {
        return fail(ErrorCode::kConflict, "the surviving record " + ev->intoGolden +
                                              " has since been merged; undo that merge first");
      }
      Document snap;
      snap.Parse(ev->before.c_str());
      if (snap.HasParseError() || !snap.IsObject()) {
        return fail(ErrorCode::kException, "merge snapshot is not valid JSON");
      }
      GoldenRecord gFrom = goldenFromJson(snap["goldens"][0]);
      std::map<std::string, std::vector<MpiLink>> before;
      for (const auto& l : snap["links"].GetArray()) {
        MpiLink link = linkFromJson(l);
        before[link.sourceId].push_back(link);
      }
      for (const auto& [src, links] : before) {
        // Only sources still in the survivor move back.
        auto cur = tx.linksOfSource(src);
        bool inInto = std::any_of(cur.begin(), cur.end(), [&](const MpiLink& l) {
          return l.goldenId == ev->intoGolden && l.result != Decision::kNoMatch;
        });
        if (!inInto) continue;
        for (const auto& l : cur) {
          tx.deleteLink(src, l.goldenId);
          if (l.result == Decision::kNoMatch) dropNoMatch.push_back({src, l.goldenId});
        }
        std::optional<Owner> owner;
        for (const auto& l : links) {
          tx.putLink(l);
          if (l.result == Decision::kNoMatch)
            addNoMatch.push_back({src, l.goldenId});
          else
            owner = Owner{l.goldenId, l.result, l.origin};
        }
        newOwners.push_back({src, owner});
      }
      gFrom.active = true;
      gFrom.replacedBy.clear();
      gFrom.updatedAt = t;
      rebuildGolden(tx, gFrom, replaces_[gFrom.id]);
      tx.putGolden(gFrom);
      std::set<std::string> rep = replaces_[ev->intoGolden];
      rep.erase(gFrom.id);
      gInto->updatedAt = t;
      rebuildGolden(tx, *gInto, rep);
      tx.putGolden(*gInto);
      newReplaces = std::pair{ev->intoGolden, rep};
      ev->undoneAt = t;
      ev->undoneBy = reviewer;
      tx.updateMergeUndo(*ev);
      out.merge = *ev;
      out.bundle = ehrBundle(tx, {gFrom, *gInto});
      tx.appendAudit(
          {0, t, reviewer, "merge.undo", ev->intoGolden,
           R"({"from":")" + ev->fromGolden + R"(","event":)" + std::to_string(ev->id) + "}"});
    } else if (item->status == ReviewStatus::kNotDuplicate) {
      Document snap;
      snap.Parse(item->undoState.c_str());
      if (!snap.HasParseError() && snap.IsObject()) {
        if (snap.HasMember("noMatch") && snap["noMatch"].IsArray()) {
          for (const auto& p : snap["noMatch"].GetArray()) {
            std::string s = p[0].GetString(), g = p[1].GetString();
            tx.deleteLink(s, g);
            dropNoMatch.push_back({s, g});
          }
        }
        if (snap.HasMember("owner") && snap["owner"].IsObject()) {
          MpiLink before = linkFromJson(snap["owner"]);
          auto o = owner_.find(before.sourceId);
          if (o != owner_.end() && o->second.goldenId == before.goldenId) {
            tx.putLink(before);
            newOwners.push_back(
                {before.sourceId, Owner{before.goldenId, before.result, before.origin}});
          }
        }
      }
    }
    detail = R"({"undid":")" + std::string(reviewStatusName(item->status)) + "\"}";
    item->status = ReviewStatus::kOpen;
    item->reviewer.clear();
    item->reason.clear();
    item->decidedAt = 0;
    item->mergeEventId = 0;
    item->undoState.clear();
    tx.updateReview(*item);
    tx.appendAudit(
        {0, t, reviewer, "review.undo", "review/" + std::to_string(id),
         detail.substr(0, detail.size() - 1) + R"(,"reason":)" +
             write(Value(reason.c_str(), static_cast<rapidjson::SizeType>(reason.size()))) + "}"});
    out.item = *item;
    return {};
  });
  if (!r) return std::unexpected(r.error());
  for (auto& p : dropNoMatch) noMatch_.erase(p);
  for (auto& p : addNoMatch) noMatch_.insert(p);
  for (auto& [s, o] : newOwners) {
    if (o) owner_[s] = *o;
  }
  if (newReplaces) replaces_[newReplaces->first] = newReplaces->second;
  return out;
}

Result<GoldenDetail> MpiService::golden(const std::string& id) const {
  GoldenDetail d;
  bool found = false;
  auto r = store_->transaction([&](MpiTx& tx) -> Result<void> {
    auto g = tx.golden(id);
    if (!g) return {};
    found = true;
    d.record = std::move(*g);
    d.links = tx.linksOfGolden(id);
    return {};
  });
  if (!r) return std::unexpected(r.error());
  if (!found) return fail(ErrorCode::kNotFound, "no golden record " + id);
  return d;
}

Result<MpiLink> MpiService::linkOf(const std::string& sourceId) const {
  std::shared_lock lock(mutex_);
  auto o = owner_.find(sourceId);
  if (o == owner_.end()) return fail(ErrorCode::kNotFound, "unknown source patient");
  std::optional<MpiLink> out;
  auto r = store_->transaction([&](MpiTx& tx) -> Result<void> {
    for (auto& l : tx.linksOfSource(sourceId))
      if (l.goldenId == o->second.goldenId) out = std::move(l);
    return {};
  });
  if (!r) return std::unexpected(r.error());
  if (!out) return fail(ErrorCode::kNotFound, "link missing");
  return *out;
}

Result<std::vector<AuditEntry>> MpiService::audit(const std::string& subject) const {
  std::vector<AuditEntry> out;
  auto r = store_->transaction([&](MpiTx& tx) -> Result<void> {
    out = tx.audit(subject, 1000);
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return out;
}

}  // namespace switchboard::mpi
